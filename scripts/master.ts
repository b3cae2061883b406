#!/usr/bin/env -S npx zx
/**
 * docs/recipe.md steps 1–13: build or refresh the PKI, then put it on the master and the minions.
 *   npx zx scripts/master.ts [--inventory cluster.yaml] [--pki-only] [--dry-run] [--only NAME[,NAME]] [--concurrency N]
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { common, ExitError, helpFor, intFlag, main, onlyFlag, parseFlags, usageError } from '../lib/cli.ts';
import { allHosts, kubeletApi } from '../lib/inventory.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { acquireLock } from '../lib/lock.ts';
import { log } from '../lib/log.ts';
import { applyPki } from '../lib/pki/apply.ts';
import { tightenModes } from '../lib/pki/dir.ts';
import { planPki, summary } from '../lib/pki/plan.ts';
import { API_BINDINGS, APPROVER_ROLE, ensureApproverRbac, ensureKubeletApiBinding, ensureKubeletApiRbac, KUBELET_API_BINDING } from '../lib/rbac.ts';
import { forHosts, selectHosts, summarize } from '../lib/remote/hosts.ts';
import { withRollback } from '../lib/rollout/converge.ts';
import { rollControl } from '../lib/rollout/roll.ts';
import { etcdSteps, masterSteps, pkiToMinion } from '../lib/rollout/steps.ts';
import { EXPIRED, readPending, recordOwed, recordRollout, refuseDuringRotation } from '../lib/state.ts';
import { table } from '../lib/table.ts';

const USAGE = `
usage: npx zx scripts/master.ts [options]

Builds the cluster's PKI with openssl in pki.dir (CA, apiserver cert, token, one cert per minion), then installs it
on the master and the minions and restarts what changed.

  --pki-only         build/refresh the local PKI only; no SSH
  --replace-ca       send the local CA to hosts that hold another one (every certificate, kubeconfig and
                     service-account token signed by the old CA stops working); without it such a host is refused
${helpFor('inventory', 'dry-run', 'only', 'concurrency', 'accept-new-host-keys')}
`;

await main(async () => {
  const { values: f } = parseFlags({
    inventory: common.inventory,
    'pki-only': { type: 'boolean', default: false },
    'dry-run': common['dry-run'],
    only: common.only,
    concurrency: common.concurrency,
    'accept-new-host-keys': common['accept-new-host-keys'],
    'replace-ca': { type: 'boolean', default: false },
  }, USAGE);
  const only = onlyFlag(f.only, USAGE);
  if (f['pki-only'] && only !== undefined) usageError('--pki-only and --only cannot be used together', USAGE);
  const concurrency = intFlag(f.concurrency, '--concurrency', 16, USAGE);
  const inv = loadInventory(f.inventory);
  const hosts = selectHosts(allHosts(inv), only); // a bad --only is exit 2 before the PKI is touched
  if (inv.example) log.warn(`${inv.file} is the example inventory shipped with kubetls: its PKI is a demo CA. For a real cluster copy it outside the checkout (e.g. /etc/kubetls/cluster.yaml), remove its first line, and pass --inventory PATH or set KUBETLS_INVENTORY`);
  const dryRun = f['dry-run'];
  if (!dryRun) acquireLock(inv, 'master.ts'); // one writer at a time: renew.ts from cron may be running
  refuseDuringRotation(inv, 'master.ts'); // its phases decide what each host holds until it ends
  tightenModes(inv, dryRun); // a key or token others can read is set back to 0600, with a warning

  const plan = planPki(inv);
  log.phase(`PKI in ${inv.pki.dir} (${inv.profile} profile)`);
  if (plan.ca.status === 'expired') throw new ExitError(`${plan.ca.reasons.join('; ')}: refusing to sign with an expired CA (nothing was written). ${EXPIRED('ca')}`, 1);
  // owed before the first write: the hosts this run installs on keep their record until they are done, so that a run
  // killed anywhere is finished by the next renew.ts, restarts included. --pki-only installs nothing and records nothing:
  // the local PKI is the operator's to look at until master.ts installs it (renew.ts still finds an apiserver serving
  // an older server.crt by asking it)
  const owed = f['pki-only'] ? [] : hosts.map((h) => h.name);
  const owedBefore = new Set(existsSync(inv.pki.dir) ? readPending(inv, dryRun) : []);
  recordOwed(inv, owed, dryRun);
  await applyPki(inv, plan, { dryRun });
  recordOwed(inv, owed, dryRun); // a first run: pki.dir exists only now
  if (plan.ca.status !== 'ok' && plan.ca.status !== 'missing') log.warn(`${plan.ca.reasons.join('; ')}: kubetls never renews the CA by itself; rotate it now: npx zx scripts/renew.ts --rotate-ca cluster`);
  // kubelet.certificates: api: a node's pairs from its push days are keys kubetls no longer needs (each kubelet has its own)
  const pushed = (o: string) => kubeletApi(inv) && inv.minions.some((m) => [`${m.name}.`, `kubelet-${m.name}.`].some((p) => path.basename(o).startsWith(p)));
  for (const o of plan.orphans) {
    log.warn(pushed(o) ? `${o}: a node's pair from before kubelet.certificates: api, which nothing uses now: kept; delete it by hand once minions.ts switched that node (kubetls then holds no key of it)`
      : `${o} belongs to no host of the inventory: kept (delete it by hand if the minion is gone)`);
  }
  const rows = summary(inv, plan, dryRun);
  log.print(table(['FILE', 'SUBJECT', 'SANS', 'NOT AFTER', 'ACTION'], rows.map((r) => [r.file, r.subject, r.sans, r.notAfter, r.action])));
  const changed = plan.items.some((i) => i.action !== 'keep');
  log.print(changed ? (dryRun ? 'dry run: nothing was written' : `PKI ready in ${inv.pki.dir}`) : 'PKI: nothing to do');
  if (f['pki-only']) return 0;

  const o = { dryRun, concurrency, acceptNewHostKeys: f['accept-new-host-keys'], replaceCa: f['replace-ca'] };
  const outcomes = [];
  // the control plane one host at a time once etcd runs; all at once while a new etcd cluster forms (rollControl)
  const control = hosts.filter((h) => h.role === 'master' || h.role === 'etcd');
  if (control.length) {
    const masters = control.filter((h) => h.role === 'master').map((h) => h.name);
    const members = control.filter((h) => h.role === 'etcd').map((h) => h.name);
    log.phase(`master${masters.length > 1 ? 's' : ''} ${masters.join(', ') || '-'}: recipe steps 7, 9–11${members.length ? ` (and etcd on ${members.join(', ')})` : ''}`);
    // a master whose apiserver does not come back with the new files gets its old files and services back
    outcomes.push(...await rollControl(inv, control, o, (r, step, out) => withRollback(inv, r, out, o,
      () => (r.host.role === 'master' ? masterSteps(inv, r, step, out, o) : etcdSteps(inv, r, step, out, o)))));
  }
  // modern: the API objects kubetls makes (lib/rbac.ts): the binding the kubelets' Webhook authorization needs for the
  // apiserver's own requests, and approve.ts's role; asked through the balancer once a master is up; counted on the
  // first master that finished
  const master = outcomes.find((x) => inv.masters.some((m) => m.name === x.host) && !x.failed);
  if (inv.profile === 'modern' && master) {
    if (dryRun) {
      log.info(`would check clusterrolebinding ${KUBELET_API_BINDING}, clusterrole and clusterrolebinding ${APPROVER_ROLE}, and create what is missing; `
        + `the bindings of kubelet.certificates: api (${API_BINDINGS.map((b) => b.name).join(', ')}): ${kubeletApi(inv) ? 'create what is missing' : 'delete what is there'}`, master.host);
    } else {
      try {
        if (await ensureKubeletApiBinding(inv) === 'created') master.done.push('rbac');
        if (await ensureApproverRbac(inv) === 'created') master.done.push('rbac approver');
        // kubelet.certificates: api lets every node renew its own client certificate; push takes that back
        const nodes = await ensureKubeletApiRbac(inv, kubeletApi(inv));
        if (nodes === 'created' || nodes === 'removed') master.done.push(`rbac kubelet api ${nodes}`);
      } catch (e) {
        master.failed = 'rbac';
        master.error = (e as Error).message;
        log.error(master.error, master.host);
      }
    }
  }
  const minions = hosts.filter((h) => h.role === 'minion');
  // any control-plane host that failed, even one only unreachable, keeps the minions as they are: what they would get
  // (a new CA, a token) may be what that master does not have yet
  if (minions.length && outcomes.some((x) => x.failed)) {
    log.warn(`not touching ${minions.map((m) => m.name).join(', ')}: the control plane failed, so they keep what they have; rerun once it is fixed`);
  } else if (minions.length) {
    log.phase(`minions: recipe step 13 (${minions.length} host(s), ${concurrency} at once)`);
    outcomes.push(...await forHosts(inv, minions, o, (r, step, out) => withRollback(inv, r, out, o, () => pkiToMinion(inv, r, step, out, o))));
  }
  // a host that failed is owed the files: cron's renew.ts finishes it. A minion is done by master.ts only when step 13
  // changed nothing there and nothing was owed it before: anything new on it is minions.ts's to finish (its kubeconfig,
  // the restarts it defers)
  const untouched = new Set(outcomes.filter((x) => !x.failed && x.writes === 0).map((x) => x.host));
  recordRollout(inv, outcomes, dryRun, (h) => !inv.minions.some((m) => m.name === h) || (untouched.has(h) && !owedBefore.has(h)));
  const { text, code } = summarize(outcomes, dryRun);
  log.print(text);
  return code;
});
