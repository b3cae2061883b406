#!/usr/bin/env -S npx zx
/**
 * docs/recipe.md steps 14–18 on every minion: kubelet kubeconfig, /etc/kubernetes/{config,kubelet,proxy}, restart kubelet and
 * kube-proxy when (and only when) their inputs changed, then wait until both are active.
 *   npx zx scripts/minions.ts [--inventory cluster.yaml] [--dry-run] [--only NAME[,NAME]] [--concurrency N]
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { common, helpFor, intFlag, main, onlyFlag, parseFlags } from '../lib/cli.ts';
import { kubeletApi } from '../lib/inventory.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { acquireLock } from '../lib/lock.ts';
import { log } from '../lib/log.ts';
import { forHosts, selectHosts, summarize } from '../lib/remote/hosts.ts';
import { withRollback } from '../lib/rollout/converge.ts';
import { minionSteps } from '../lib/rollout/steps.ts';
import { recordOwed, recordRollout, refuseDuringRotation } from '../lib/state.ts';

const USAGE = `
usage: npx zx scripts/minions.ts [options]

Configures every minion to talk TLS to the apiserver: the kubelet kubeconfig (CA, the minion's certificate and key, the
token), the KUBE_MASTER / KUBELET_* / KUBE_PROXY_ARGS variables, and restarts of what changed. Run master.ts first.
With kubelet.certificates: api in cluster.yaml, a bootstrap kubeconfig instead: each kubelet then rotates its own
client certificate and asks for its serving one, which this run approves by cluster.yaml's rules (as approve.ts).

  --replace-ca       send a kubeconfig of the local CA to minions that hold another CA (see master.ts --help)
${helpFor('inventory', 'dry-run', 'only', 'concurrency', 'accept-new-host-keys')}
`;

await main(async () => {
  const { values: f } = parseFlags({
    inventory: common.inventory,
    'dry-run': common['dry-run'],
    only: common.only,
    concurrency: common.concurrency,
    'accept-new-host-keys': common['accept-new-host-keys'],
    'replace-ca': { type: 'boolean', default: false },
  }, USAGE);
  const only = onlyFlag(f.only, USAGE);
  const concurrency = intFlag(f.concurrency, '--concurrency', 16, USAGE);
  const inv = loadInventory(f.inventory);
  const o = { dryRun: f['dry-run'], concurrency, acceptNewHostKeys: f['accept-new-host-keys'], replaceCa: f['replace-ca'] };
  if (!o.dryRun) acquireLock(inv, 'minions.ts'); // one writer at a time: renew.ts from cron may be running
  refuseDuringRotation(inv, 'minions.ts'); // its phases decide what each host holds until it ends
  const minions = selectHosts(inv.minions, only);
  // api: no key of a node (each kubelet makes its own); a join's token is made as admin, and the gate approves each
  // kubelet's serving CSR as approve.ts does, with approve.ts's identity
  const missing = (kubeletApi(inv) ? ['ca.crt', 'approver.crt', 'admin.crt'] : minions.map((m) => `${m.name}.crt`).concat('ca.crt', 'tokens.csv')).filter((n) => !existsSync(path.join(inv.pki.dir, n)));
  if (missing.length && !o.dryRun) throw new Error(`${missing.join(', ')} missing in ${inv.pki.dir}: run scripts/master.ts first`);
  recordOwed(inv, minions.map((m) => m.name), o.dryRun); // before the first write: a run killed anywhere is finished by renew.ts
  log.phase(`minions: recipe steps 14–18 (${minions.length} host(s), ${concurrency} at once)`);
  const outcomes = await forHosts(inv, minions, o, (r, step, out) => withRollback(inv, r, out, o, () => minionSteps(inv, r, step, out, o)));
  recordRollout(inv, outcomes, o.dryRun, () => true); // a host that failed is owed the files: cron's renew.ts finishes it
  const { text, code } = summarize(outcomes, o.dryRun);
  log.print(text);
  return code;
});
