/**
 * Renewal as phases (kubeadm's check → renew → restart → verify), made for cron:
 *   check   — local only: which leaf certificates are due or drifted; hosts a failed run left behind
 *   renew   — reissue them with the current CA (new keys), nothing else
 *   restart — master first, then minions: install, restart what the files touch, health gate; on a failed gate the
 *             host's backups are restored and its units restarted again, and hosts not yet touched are left alone
 *   verify  — the recipe's checks against the new certificates
 * The CA is never renewed here: inside its window every run says so and exits 1.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ExitError } from './cli.ts';
import { faultPoint } from './fault.ts';
import { apiTarget, etcdHosts, type Host, type Inventory } from './inventory.ts';
import { log, shown } from './log.ts';
import { applyPki } from './pki/apply.ts';
import { untilDue } from './pki/check.ts';
import { type Plan, planPki } from './pki/plan.ts';
import { PkiError, readCert } from './pki/read.ts';
import { dropRetiringToken, retiringToken } from './pki/token.ts';
import { rootBytes } from './pki/trust.ts';
import { forHosts, type HostOutcome, type RolloutOptions, summarize } from './remote/hosts.ts';
import { withRollback } from './rollout/converge.ts';
import { hostsReached, wherePlaced } from './rollout/desired.ts';
import { servedMismatch, waitReady } from './rollout/gates.ts';
import { rollControl } from './rollout/roll.ts';
import { etcdSteps, masterSteps, minionSteps, pkiToMinion } from './rollout/steps.ts';
import { PHASE_TEXT, readPending, runningRotation, writePending } from './state.ts';
import { apiChecks } from './verify.ts';

export interface RenewResult { code: number; happened: boolean; outcomes: HostOutcome[]; renewed: string[] }

/** `nothing to renew; next due: server.crt in 287 d` — the leaf that becomes due first. */
function nextDue(inv: Inventory, plan: Plan): string {
  const now = new Date();
  let best: [string, number] | undefined;
  for (const i of plan.items.filter((x) => x.spec)) {
    const info = readCert(path.join(inv.pki.dir, `${i.name}.crt`)); // unreadable: a PkiError naming the file
    if (!info) continue;
    const ms = untilDue(inv, info.notAfter, now); // exact, like checkLeaf; whole days only for the message
    if (!best || ms < best[1]) best = [`${i.name}.crt`, ms];
  }
  if (best) best[1] = Math.floor(best[1] / 86_400_000);
  return best ? `${best[0]} in ${best[1]} d` : 'nothing issued yet';
}

/** What the operator named: `--cert NAME[,NAME]` (file base names; `--force`: even when not due) and `--only HOST[,HOST]`. */
export interface RenewSelection { certs?: string[]; force?: boolean; only?: string[] }

/** The names `--cert` takes: every leaf's base name and `tokens`, in plan order. */
export function certNames(plan: Plan): string[] {
  return plan.items.filter((i) => i.kind !== 'ca' && i.kind !== 'sa').map((i) => i.name);
}

export async function renew(inv: Inventory, o: RolloutOptions = {}, sel: RenewSelection = {}): Promise<RenewResult> {
  log.phase('check');
  const plan = planPki(inv);
  if (sel.certs) {
    const unknown = sel.certs.filter((c) => !certNames(plan).includes(c));
    if (unknown.length) throw new ExitError(`--cert names no certificate of this inventory: ${unknown.join(', ')} (known: ${certNames(plan).join(', ')})`, 2);
    // --cert: only these; --force: now, even when not due (kubeadm certs renew)
    for (const i of plan.items) {
      if (i.kind === 'ca') continue;
      if (!sel.certs.includes(i.name)) i.action = 'keep';
      else if (i.action === 'keep' && sel.force) { i.action = 'reissue'; i.reason = 'asked for (--cert --force)'; }
    }
  }
  if (sel.only) {
    // only what reaches the named hosts; a renewed file's other hosts are recorded as pending for the next run
    for (const i of plan.items) if (i.kind !== 'ca' && i.action !== 'keep' && ![...hostsReached(inv, i.files)].some((h) => sel.only!.includes(h))) i.action = 'keep';
  }
  // a CA rotation that is not finished (parked at its service-account wait, or stopped by a host): what it does not
  // touch is renewed as usual, so a due leaf is never left to expire behind it; the leaves of the CAs it replaces (and
  // sa.key) are its own, phase 3 reissues every one of them. Every run says what to run to finish it, and exits 1.
  const rot = runningRotation(inv);
  if (rot && rot.phase !== 'new') { // phase 1 has sent nothing yet (and may wait for the operator's root): renew as usual
    for (const i of plan.items) {
      const mine = (i.spec && rot.targets.includes(i.spec.ca)) || (i.kind === 'sa' && rot.targets.includes('sa'));
      if (i.kind === 'ca' || i.action === 'keep' || !mine) continue;
      log.warn(`${i.files.at(-1)}: ${i.reason || 'due'}, but the CA rotation of ${rot.what} replaces ${i.spec ? `its CA (${i.spec.ca}) and reissues it` : 'it'}`);
      i.action = 'keep';
    }
  }
  const unfinished = () => {
    const unsigned = rot?.phase === 'new' ? rot.targets.filter((t) => existsSync(path.join(inv.pki.dir, `${t}.next.csr`))).map((t) => `${t}.next.csr`) : [];
    if (rot) log.error(`a CA rotation of ${rot.what} is not finished (${PHASE_TEXT[rot.phase]}, started ${rot.started}): `
      + `${unsigned.length ? `${unsigned.join(', ')} ${unsigned.length === 1 ? 'waits' : 'wait'} to be signed by your root and imported (ca.ts import), then ` : ''}finish it with npx zx scripts/renew.ts --rotate-ca ${rot.what}`);
    return rot ? 1 : 0;
  };
  if (plan.ca.status === 'missing') throw new PkiError(`no CA in ${inv.pki.dir}: run scripts/master.ts first (renew never creates a CA)`);
  const caDue = plan.ca.status !== 'ok';
  if (caDue && rootBytes(inv, 'ca')) {
    log.error(`${plan.ca.reasons.join('; ')} — THE CA IS NOT RENEWED AUTOMATICALLY. Rotate it now, without downtime: npx zx scripts/renew.ts --rotate-ca cluster (it is an intermediate under your own root: phase 1 asks your root to sign the next one, docs/own-root.md).`);
  } else if (caDue) log.error(`${plan.ca.reasons.join('; ')} — THE CA IS NOT RENEWED AUTOMATICALLY. Rotate it now, without downtime: npx zx scripts/renew.ts --rotate-ca cluster (every certificate and kubeconfig depends on it).`);
  const due = plan.items.filter((i) => i.kind !== 'ca' && i.action !== 'keep');
  if (due.some((i) => i.kind === 'token')) {
    // a second rotation before the first one ends would drop the token some hosts still use
    if (retiringToken(inv) !== undefined) throw new ExitError('a token rotation is still running (tokens.csv still accepts the old token until every host has the new one): run renew.ts without --cert to finish it, then rotate again', 2);
    // the master must accept the new token before any kubeconfig carries it
    const missing = sel.only ? inv.masters.filter((m) => !sel.only!.includes(m.name)).map((m) => m.name) : [];
    if (missing.length) throw new ExitError(`--cert tokens needs the master${inv.masters.length > 1 ? 's' : ''} first: add ${missing.join(', ')} to --only`, 2);
  }
  const pending = readPending(inv, o.dryRun);
  if (!o.dryRun) for (const m of inv.masters) if (!pending.includes(m.name) && await servedIsStale(inv, m)) pending.push(m.name);
  // a token rotation left unfinished (a host failed, or the run was killed): the old token is still accepted
  const retiring = retiringToken(inv) !== undefined && !due.some((i) => i.kind === 'token');
  if (!due.length && !pending.length && !retiring) {
    log.info(`nothing to renew; next due: ${nextDue(inv, plan)}`);
    const rotating = unfinished();
    return { code: caDue || rotating ? 1 : 0, happened: caDue || rotating > 0, outcomes: [], renewed: [] };
  }
  for (const i of due) log.info(`${i.files.at(-1)}: ${i.action === 'create' ? 'missing' : i.reason}`);
  if (pending.length) log.info(`left behind by an earlier run: ${pending.join(', ')}`);
  if (retiring) log.info('tokens.csv still accepts the token a rotation replaced: retired once every host has the new one');

  if (o.dryRun) {
    for (const w of wherePlaced(inv, due.flatMap((i) => i.files))) log.info(`would install ${w.path}${w.units.length ? `, restarting ${w.units.join(', ')}` : ''}`, w.host);
  }
  log.phase('renew');
  const renewPlan: Plan = { ...plan, items: plan.items.map((i) => (i.kind === 'ca' ? { ...i, action: 'keep' as const } : i)) };
  const all = new Set([...hostsReached(inv, due.flatMap((i) => i.files)), ...pending]);
  const touched = new Set([...all].filter((h) => !sel.only || sel.only.includes(h)));
  const later = [...all].filter((h) => !touched.has(h));
  if (later.length) log.info(`not now (--only): ${later.join(', ')}; the next run without --only finishes them`);
  // recorded before the first certificate is reissued: a run killed after reissuing leaves the hosts owed, so the
  // next run rolls out what is already renewed here instead of saying "nothing to renew"
  if (!o.dryRun) writePending(inv, [...all]);
  await applyPki(inv, renewPlan, { dryRun: o.dryRun });
  faultPoint('renewed');

  log.phase(`restart (${[...touched].join(', ')})`);
  const outcomes: HostOutcome[] = [];
  let stop = false;
  const minions = inv.minions.filter((m) => touched.has(m.name));
  const control = [...inv.masters, ...etcdHosts(inv)].filter((h) => touched.has(h.name));
  if (control.length) {
    // each control-plane host that finished is no longer owed anything: a run killed in the middle of the roll leaves
    // only the hosts after it for the next run
    const owed = new Set(all);
    const done = (h: string) => { owed.delete(h); if (!o.dryRun) writePending(inv, [...owed]); };
    outcomes.push(...await rollControl(inv, control, o, (r, step, out) => withRollback(inv, r, out, o, async () => {
      if (r.host.role === 'etcd') return etcdSteps(inv, r, step, out, o);
      await masterSteps(inv, r, step, out, o);
      if (!o.dryRun && out.restarts.includes('kube-apiserver')) {
        await step('verify', () => mustPass(apiChecks(inv, inv.minions.filter((m) => !touched.has(m.name)), r.host)));
      }
    }), done));
    // the other masters are done even when one could not be reached (rollControl); the minions wait for all of them,
    // as a minion's new token or kubeconfig may be what that master does not accept yet
    stop = outcomes.some((x) => x.failed);
    // the minions talk to the control plane as it is now: when it was restarted (etcd above all, which every apiserver
    // waits for), it must answer ready where the minions reach it before any of them is touched (bounded)
    if (!stop && !o.dryRun && inv.profile === 'modern' && minions.length && outcomes.some((x) => x.restarts.length)) {
      try {
        await waitReady(inv, apiTarget(inv));
      } catch (e) {
        log.error(`the control plane is not ready after its restarts: ${(e as Error).message}`);
        stop = true;
      }
    }
  }
  if (stop && minions.length) log.warn(`not touching ${minions.map((m) => m.name).join(', ')}: they keep their current, still valid certificates`);
  else if (minions.length) {
    outcomes.push(...await forHosts(inv, minions, o, (r, step, out) => {
      if (stop) throw new Error('skipped: an earlier host failed, this one keeps its current certificates');
      return withRollback(inv, r, out, o, async () => {
        await pkiToMinion(inv, r, step, out, o);
        await minionSteps(inv, r, step, out, o);
        if (!o.dryRun) await step('verify', () => mustPass(apiChecks(inv, [r.host]).then((res) => res.filter((x) => x.check !== 'served certificate'))));
      }).catch((e) => { stop = true; throw e; });
    }));
  }
  const failedHosts = outcomes.filter((x) => x.failed).map((x) => x.host);
  const notReached = [...touched].filter((h) => !outcomes.some((x) => x.host === h));
  if (!o.dryRun) writePending(inv, [...failedHosts, ...notReached, ...later]);

  // a token rotation ends here: once every host has the kubeconfig with the new token (no host failed, none left for
  // later), the master's tokens.csv drops the old one; until then both are accepted, so no client is refused mid-way
  const behind = [...failedHosts, ...notReached, ...later, ...(o.dryRun ? [] : readPending(inv))];
  if (retiringToken(inv) !== undefined && !stop && !behind.length) outcomes.push(...await retireOldToken(inv, o));
  else if (retiringToken(inv) !== undefined) {
    // one host may be behind for two reasons (left for later, and pending from an earlier run): named, and counted, once
    const names = [...new Set(behind)];
    log.info(`the old token stays valid until ${names.join(', ')} ${names.length > 1 ? 'have' : 'has'} the new one (the next run)`);
  }

  const { text, code } = summarize(outcomes, o.dryRun);
  log.print(text);
  const rotating = unfinished(); // said whatever else failed: the cron mail names the command that finishes it
  const result = code || caDue || notReached.length || rotating ? 1 : 0;
  return { code: result, happened: true, outcomes, renewed: due.map((i) => i.files.at(-1)!) };
}

/** The last step of a token rotation: tokens.csv keeps only the current token, on the master (apiserver restarted, gated). */
async function retireOldToken(inv: Inventory, o: RolloutOptions): Promise<HostOutcome[]> {
  log.phase('retire the old token');
  if (o.dryRun) {
    log.info(`would rewrite ${shown(path.join(inv.pki.dir, 'tokens.csv'))} without the old token and install it, restarting kube-apiserver`, inv.masters.map((m) => m.name).join(', '));
    return [];
  }
  const owed = new Set(inv.masters.map((m) => m.name));
  writePending(inv, [...owed]); // a run killed from here on finishes it next time (the masters are due)
  dropRetiringToken(inv);
  const outcomes = await rollControl(inv, inv.masters, o, (r, step, out) => withRollback(inv, r, out, o, () => masterSteps(inv, r, step, out, o)),
    (h) => { owed.delete(h); writePending(inv, [...owed]); });
  writePending(inv, outcomes.filter((x) => x.failed).map((x) => x.host));
  return outcomes;
}

/** Throw when any check failed, naming them. */
async function mustPass(p: Promise<{ ok: boolean; check: string; target: string; detail: string }[]>): Promise<void> {
  const bad = (await p).filter((r) => !r.ok);
  if (bad.length) throw new Error(bad.map((b) => `${b.check} ${b.target}: ${b.detail}`).join('; '));
}

/**
 * The check phase asks 6443 which certificate it serves (one TLS handshake, no SSH): an apiserver still serving an
 * older server.crt than the local one owes a restart, whatever the files and the pending list say (a run killed
 * between installing and restarting). An apiserver that does not answer is reported, not treated as due: monitoring
 * (status.ts --prometheus) covers a down apiserver, and a cron run must stay a no-op when nothing is due.
 */
async function servedIsStale(inv: Inventory, master: Host): Promise<boolean> {
  const m = await servedMismatch(inv, master);
  if (m) log.info(`${master.address}:${inv.apiserver.port} serves server.crt serial ${m.served}, the local one is ${m.local}: ${master.name} is due`, master.name);
  return m !== undefined;
}
