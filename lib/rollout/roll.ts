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
import { parseCert } from '../pki/read.ts';
import { clientTrust } from '../pki/trust.ts';
import { httpsGet } from '../probe.ts';
import { forHosts, type HostOutcome, type RolloutOptions, type Step } from '../remote/hosts.ts';
import type { Remote } from '../remote/remote.ts';
import { isEtcdMember } from './desired.ts';

/**
 * The control plane (masters, and etcd members of their own), one host at a time: each host is installed, restarted and
 * gated (its apiserver serves the new certificate and is ready, also through the balancer) before the next one starts,
 * so that at most one apiserver and one etcd member are down at any instant. A host that fails a step after connecting
 * stops the roll: it is rolled back (withRollback, in `fn`) and the hosts after it are not touched. A host that cannot
 * be reached is skipped: the others are done, it stays pending for the next run.
 *
 * One exception: etcd keeps a quorum only when a majority of its members can talk to each other, and a member started
 * alone waits for it (`systemctl restart etcd` with Type=notify). When no member is healthy — a new cluster, every
 * member stopped, or every member's certificate expired, so that a member renewed alone could never be heard by its
 * peers — every host is installed and restarted together, as when a cluster forms. Healthy means: it answers /health
 * over TLS from here, or, over SSH, its unit is active and the peer certificate it runs with is still valid (a
 * firewall between the operator and port 2379 must not turn a roll into a restart of every master). `done(host)` is
 * called after each host that finished, in order (renew.ts records progress).
 */
export async function rollControl(inv: Inventory, hosts: Host[], o: RolloutOptions,
  fn: (r: Remote, step: Step, out: HostOutcome) => Promise<void>, done: (host: string) => void = () => {}): Promise<HostOutcome[]> {
  if (hosts.length < 2 || o.dryRun || !(await etcdHealthy(inv, hosts, o))) {
    const outcomes = await forHosts(inv, hosts, o, fn);
    for (const x of outcomes) if (!x.failed) done(x.host);
    return outcomes;
  }
  log.info(`one at a time: ${hosts.map((h) => h.name).join(' → ')} (each gated before the next)`);
  const outcomes: HostOutcome[] = [];
  for (const h of hosts) {
    const stopped = outcomes.find((x) => x.failed && x.failed !== 'connect');
    if (stopped) {
      const error = `not started: ${stopped.host} failed (${stopped.failed}), so this host was not touched (it keeps the files it has); rerun once that is fixed`;
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

/**
 * Whether some etcd member among `hosts` is healthy (see rollControl); says which way the roll goes when etcd does not
 * answer from here. Unreachable members say nothing.
 */
async function etcdHealthy(inv: Inventory, hosts: Host[], o: RolloutOptions): Promise<boolean> {
  if (await etcdAnswers(inv)) return true;
  const members = hosts.filter((h) => isEtcdMember(inv, h));
  const seen: { host: string; data: boolean; active: boolean; expired?: string }[] = [];
  await forHosts(inv, members, { ...o, report: false, quiet: true }, async (r) => {
    const data = (await r.run(['test', '-d', `${ETCD_DATA_DIR}/member`], { ok: [0, 1], quiet: true })).code === 0;
    const active = (await r.run(['systemctl', 'is-active', 'etcd'], { ok: [0, 1, 3, 4], quiet: true })).code === 0;
    let expired: string | undefined;
    try {
      const peer = await r.read(`${inv.pki.remoteDir}/etcd-peer.crt`);
      const info = peer ? parseCert(peer) : undefined;
      if (info && info.notAfter <= new Date()) expired = info.notAfter.toISOString().slice(0, 10);
    } catch { /* not a certificate: judged by the unit alone */ }
    seen.push({ host: r.host.name, data, active, expired });
  });
  const healthy = seen.filter((m) => m.active && !m.expired);
  const names = hosts.map((h) => h.name).join(', ');
  if (healthy.length) {
    log.info(`etcd answers on no member from here, but it runs on ${healthy.map((m) => m.host).join(', ')}: a running cluster, one host at a time`);
    return true;
  }
  if (!seen.some((m) => m.data)) {
    log.info(`a new etcd cluster (no member answers, none holds data): ${names} at once (its members must start together)`);
  } else {
    const why = seen.some((m) => m.expired) ? `the peer certificates of ${seen.filter((m) => m.expired).map((m) => `${m.host} (expired ${m.expired})`).join(', ')} have expired` : 'no member runs';
    log.info(`no etcd member is healthy (none answers from here; ${why}): ${names} at once, as when a cluster forms (its members must start together)`);
  }
  return false;
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
