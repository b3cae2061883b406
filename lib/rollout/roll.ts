/**
 * The HA roll: the control plane (masters, and etcd members of their own) one host at a time, each gated before the
 * next starts, so that at most one apiserver and one etcd member are down at any instant; all at once only while a new
 * etcd cluster forms (docs/ha.md).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ETCD_CLIENT_PORT, ETCD_DATA_DIR } from '../../config/profiles.ts';
import { faultPoint } from '../fault.ts';
import type { Host, Inventory } from '../inventory.ts';
import { log } from '../log.ts';
import { clientTrust } from '../pki/trust.ts';
import { httpsGet } from '../probe.ts';
import { forHosts, type HostOutcome, type RolloutOptions, type Step } from '../remote/hosts.ts';
import type { Remote } from '../remote/remote.ts';
import { isEtcdMember } from './desired.ts';

/**
 * The control plane (masters, and etcd members of their own), one host at a time: each host is installed, restarted and
 * gated (its apiserver serves the new certificate and is ready, also through the balancer) before the next one starts,
 * so that at most one apiserver and one etcd member are down at any instant. A host that fails a step after connecting
 * stops the roll: it is rolled back (withRollback, in `fn`) and the hosts after it are not touched, keeping their old,
 * working state. A host that cannot be reached is skipped: the others are done, it stays pending for the next run.
 *
 * One exception: a new etcd cluster forms only when a majority of its members start together (`systemctl restart etcd`
 * waits for it), so a cluster that is new goes all at once, as before there was HA. New means both: no member answers
 * /health from here, and no member reachable over SSH holds etcd data (`member/` in ETCD_DATA_DIR). Either sign of a
 * running cluster means one at a time (a firewall between the operator and port 2379 must not turn a roll into a
 * restart of every master). `done(host)` is called after each host that finished, in order (renew.ts records progress).
 */
export async function rollControl(inv: Inventory, hosts: Host[], o: RolloutOptions,
  fn: (r: Remote, step: Step, out: HostOutcome) => Promise<void>, done: (host: string) => void = () => {}): Promise<HostOutcome[]> {
  if (hosts.length < 2 || o.dryRun || !(await etcdAnswers(inv) || await etcdHasData(inv, hosts, o))) {
    if (hosts.length > 1 && !o.dryRun) log.info(`a new etcd cluster (no member answers, none holds data): ${hosts.map((h) => h.name).join(', ')} at once (its members must start together)`);
    const outcomes = await forHosts(inv, hosts, o, fn);
    for (const x of outcomes) if (!x.failed) done(x.host);
    return outcomes;
  }
  log.info(`one at a time: ${hosts.map((h) => h.name).join(' → ')} (each gated before the next)`);
  const outcomes: HostOutcome[] = [];
  for (const h of hosts) {
    const stopped = outcomes.find((x) => x.failed && x.failed !== 'connect');
    if (stopped) {
      const error = `not started: ${stopped.host} failed (${stopped.failed}), so this host keeps its current, working state; rerun once that is fixed`;
      log.warn(error, h.name);
      outcomes.push({ host: h.name, done: [], failed: 'not started', error, writes: 0, restarts: [] });
      continue;
    }
    const [out] = await forHosts(inv, [h], o, fn);
    outcomes.push(out!);
    if (!out!.failed) {
      done(h.name);
      faultPoint(`rolled-${outcomes.filter((x) => !x.failed).length}`);
    }
  }
  return outcomes;
}

/** Whether a member among `hosts` holds etcd data (it joined a cluster once), asked over SSH; unreachable ones say nothing. */
async function etcdHasData(inv: Inventory, hosts: Host[], o: RolloutOptions): Promise<boolean> {
  const members = hosts.filter((h) => isEtcdMember(inv, h));
  const found: string[] = [];
  await forHosts(inv, members, { ...o, report: false, quiet: true }, async (r) => {
    const res = await r.run(['test', '-d', `${ETCD_DATA_DIR}/member`], { ok: [0, 1], quiet: true });
    if (res.code === 0) found.push(r.host.name);
  });
  if (found.length) log.info(`etcd answers on no member from here, but ${found.join(', ')} hold${found.length === 1 ? 's' : ''} etcd data: a running cluster, one host at a time`);
  return found.length > 0;
}

/**
 * Whether any etcd member answers /health over TLS (modern; the apiserver's etcd client certificate, the etcd CA). A
 * member that answers means a running cluster, which rollControl changes one member at a time.
 */
export async function etcdAnswers(inv: Inventory): Promise<boolean> {
  if (inv.profile !== 'modern') return true; // nothing to form: the legacy master runs no etcd kubetls manages
  const pki = (f: string) => path.join(inv.pki.dir, f);
  let cred: { ca: Buffer; cert: Buffer; key: Buffer };
  try {
    cred = { ca: clientTrust(inv, 'etcd-ca'), cert: readFileSync(pki('apiserver-etcd-client.crt')), key: readFileSync(pki('apiserver-etcd-client.key')) };
  } catch {
    return false; // no etcd PKI yet: no cluster can be running with it
  }
  const asked = await Promise.all(inv.etcd.members.map((m) => httpsGet({ host: m.address, port: ETCD_CLIENT_PORT, servername: m.name, path: '/health', ...cred }, 3000)
    .then((r) => r.status === 200, () => false)));
  return asked.some(Boolean);
}
