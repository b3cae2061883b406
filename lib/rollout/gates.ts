/**
 * Restart, and the health gates after it: a unit is restarted only when something it reads changed (or an earlier run
 * owes it), `systemctl reset-failed` first, then gated before the next one: the apiserver must serve the local
 * server.crt and be ready (also through the balancer); any other unit must be active and stay up; a kubelet must
 * serve its new certificate. The restart owed on the host is cleared only after its gate passed.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PENDING_DIR } from '../../config/files.ts';
import { KUBELET_PORT } from '../../config/profiles.ts';
import { faultPoint } from '../fault.ts';
import { approvePending } from '../csr/approve.ts';
import { apiTarget, type ApiTarget, type Host, type Inventory, isHa, kubeletApi, masterTarget } from '../inventory.ts';
import { log } from '../log.ts';
import { parseCert, readCert } from '../pki/read.ts';
import { clientTrust } from '../pki/trust.ts';
import { httpsGet, readServed, servedCert } from '../probe.ts';
import type { HostOutcome, RolloutOptions } from '../remote/hosts.ts';
import type { Remote } from '../remote/remote.ts';

/**
 * Restart each unit in order and gate it before the next one: `systemctl reset-failed` first (a unit in a crash loop,
 * the state an operator runs kubetls to repair, may have used up systemd's start limit: this deliberate restart must
 * not be refused for it), then `systemctl restart`, the gate, and only then the owed restart is cleared on the host.
 */
export async function restartAndGate(r: Remote, units: string[], gate: (unit: string) => Promise<void>, out: HostOutcome, o: RolloutOptions): Promise<void> {
  for (const unit of units) {
    out.restarts.push(unit); // counted when attempted: a rollback restarts it again even if this restart failed
    await r.run(['systemctl', 'reset-failed', unit], { ok: [0, 1] });
    await r.run(['systemctl', 'restart', unit]);
    faultPoint('restarted');
    if (!o.dryRun) await gate(unit);
    faultPoint('gated');
    await r.run(['rm', '-f', '--', `${PENDING_DIR}/restart.${unit}`], { quiet: true });
  }
  // every restart passed its gate: nothing left to roll back to
  await r.run(['sh', '-c', 'ls "$1"/restart.* >/dev/null 2>&1 || rm -f -- "$1/rollback.list"', 'sh', PENDING_DIR], { quiet: true });
}

/**
 * The gate after restarting a unit: the apiserver must serve the local server.crt; anything else must be active
 * (etcd's unit is Type=notify: active means it has joined its cluster and serves clients; verify.ts asks it with
 * etcdctl from the operator's machine).
 */
export function gateFor(inv: Inventory, r: Remote): (unit: string) => Promise<void> {
  return async (unit) => {
    if (unit === 'kube-apiserver') {
      const self = masterTarget(inv, r.host);
      await waitServing(inv, self);
      // modern: serving is not ready. The real apiserver answers TLS before its post-start hooks made the default
      // RBAC (rbac/bootstrap-roles); a controller-manager restarted then cannot read its configmap and exits.
      if (inv.profile === 'modern') await waitReady(inv, self);
      // HA: and the balancer answers ready too (its health checks see this master again before the next one goes)
      if (isHa(inv)) await waitReady(inv, apiTarget(inv));
      return;
    }
    await waitActive(r, [unit]);
    await waitSettled(r, unit);
    // modern: a kubelet must also serve its local serving certificate on :10250, verified for its name; api: the
    // certificate it asked for, which this gate approves by cluster.yaml's rules (approve.ts's pass) while it waits
    if (unit === 'kubelet' && kubeletApi(inv)) await waitKubeletApproved(inv, r.host);
    else if (unit === 'kubelet' && inv.profile === 'modern') await waitKubeletServing(inv, r.host);
  };
}

/** Wait (bounded) until a kubelet serves exactly the local kubelet-<name>.crt, verified against ca.crt for its name. */
async function waitKubeletServing(inv: Inventory, host: Host, timeoutMs = 20_000): Promise<void> {
  const want = readCert(path.join(inv.pki.dir, `kubelet-${host.name}.crt`))?.fingerprint;
  const ca = clientTrust(inv);
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const got = await readServed(host.address, KUBELET_PORT, host.name, ca, 3000);
      if (got.authorized && got.info.fingerprint === want) {
        log.info(`${host.address}:${KUBELET_PORT} serves kubelet-${host.name}.crt serial ${got.info.serial}`, host.name);
        return;
      }
      last = got.authorized ? `serves serial ${got.info.serial}, not the local kubelet-${host.name}.crt` : `${got.error}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > end) throw new Error(`the kubelet does not serve its new certificate on :${KUBELET_PORT} after ${timeoutMs / 1000} s: ${last}`);
    await sleep(300);
  }
}

/**
 * kubelet.certificates: api: wait (bounded) until the kubelet, which first renews its client certificate through the
 * CSR API and then asks for a serving one, serves a certificate of the cluster CA for its name on :10250. Each round
 * runs one approve.ts pass (lib/csr/approve.ts: the same rules, as the approver's own identity, never admin).
 */
async function waitKubeletApproved(inv: Inventory, host: Host, timeoutMs = 90_000): Promise<void> {
  const ca = clientTrust(inv);
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      await approvePending(inv, { watch: true });
      const got = await readServed(host.address, KUBELET_PORT, host.name, ca, 3000);
      if (got.authorized) {
        log.info(`${host.address}:${KUBELET_PORT} serves its own certificate, serial ${got.info.serial}, issued by ${got.info.issuer}`, host.name);
        return;
      }
      last = `${got.error}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > end) throw new Error(`the kubelet serves no certificate of the cluster CA for ${host.name} on :${KUBELET_PORT} after ${timeoutMs / 1000} s (its serving CSR approved? kubectl get csr): ${last}`);
    await sleep(1000);
  }
}

/**
 * What the master's 6443 serves, compared with the local server.crt on every run: a run that died after installing the
 * files but before the restart (or an apiserver restarted by hand with old files) is work to do, whatever the files say.
 */
export async function staleApiserver(inv: Inventory, r: Remote): Promise<string[]> {
  const m = await servedMismatch(inv, r.host);
  if (!m) return [];
  log.info(`${r.host.address}:${inv.apiserver.port} serves serial ${m.served}, the local server.crt is ${m.local}: kube-apiserver owes a restart`, r.host.name);
  return ['kube-apiserver'];
}

/**
 * The serials a master's 6443 serves and the local server.crt has, when they differ (master.ts and renew.ts both ask,
 * on every run). An apiserver that does not answer is reported and treated as no difference: monitoring covers a down
 * apiserver, and a cron run must stay a no-op when nothing is due.
 */
export async function servedMismatch(inv: Inventory, master: Host): Promise<{ served: string; local: string } | undefined> {
  const local = readCert(path.join(inv.pki.dir, 'server.crt'))?.serial;
  if (!local) return undefined;
  try {
    const served = (await servedCert(inv, masterTarget(inv, master), 3000)).serial;
    return served === local ? undefined : { served, local };
  } catch (e) {
    log.warn(`cannot ask ${master.address}:${inv.apiserver.port} which certificate it serves: ${(e as Error).message}`, master.name);
    return undefined;
  }
}


/**
 * A unit that is active may still die a moment later (a component that exits on its first error), and a unit with
 * Restart=on-failure, as the distro units have, is then started again by systemd: `is-active` alone would call that
 * a success. Active, then the same MainPID and no new NRestarts after SETTLE_MS, is a unit that stayed up.
 */
export const SETTLE_MS = 2000;
export async function waitSettled(r: Remote, unit: string, settleMs = SETTLE_MS): Promise<void> {
  const show = async () => {
    const res = await r.run(['systemctl', 'show', '--property=MainPID,NRestarts', unit], { quiet: true });
    const kv = Object.fromEntries(res.stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
    return { pid: Number(kv.MainPID ?? 0), restarts: Number(kv.NRestarts ?? 0) };
  };
  const before = await show();
  await sleep(settleMs);
  const after = await show();
  if (!(before.pid > 0) || after.pid !== before.pid || after.restarts !== before.restarts) {
    throw new Error(`${unit} did not stay up: it exited within ${settleMs / 1000} s of its restart (main PID ${before.pid} → ${after.pid}, restarts ${before.restarts} → ${after.restarts}); see journalctl -u ${unit}`);
  }
}

/** After `systemctl restart`, wait (bounded) until each unit reports active. */
export async function waitActive(r: Remote, unitNames: string[], timeoutMs = 20_000): Promise<void> {
  for (const u of unitNames) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const res = await r.run(['systemctl', 'is-active', u], { ok: [0, 3, 4], quiet: true });
      if (res.code === 0) break;
      if (Date.now() > end) throw new Error(`${u} is ${res.stdout.trim() || 'not active'} after ${timeoutMs / 1000} s`);
      await sleep(500);
    }
  }
}

/** Step 11 done right: wait until a master's port answers and serves exactly the local server.crt (serials compared). */
export async function waitServing(inv: Inventory, t: ApiTarget = masterTarget(inv, inv.master), timeoutMs = 30_000): Promise<void> {
  const want = parseCert(readFileSync(path.join(inv.pki.dir, 'server.crt'))).serial;
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const got = await servedCert(inv, t);
      if (got.serial === want) {
        log.info(`${t.address}:${t.port} serves server.crt serial ${want}`, t.name);
        return;
      }
      last = `serves serial ${got.serial}, expected ${want}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > end) throw new Error(`${t.address}:${t.port} not serving the new server.crt after ${timeoutMs / 1000} s: ${last}`);
    await sleep(300);
  }
}

/**
 * Wait (bounded) until an apiserver's /readyz says ok (etcd, every post-start hook: the default RBAC among them),
 * asked as admin (pki/admin.crt, system:masters) over TLS verified against ca.crt for the target's name: a master, or
 * the balancer (whose health checks must have found a ready master).
 */
export async function waitReady(inv: Inventory, t: ApiTarget = masterTarget(inv, inv.master), timeoutMs = 60_000): Promise<void> {
  const pki = (f: string) => path.join(inv.pki.dir, f);
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const { status, body } = await httpsGet({
        host: t.address, port: t.port, servername: t.name, path: '/readyz',
        ca: clientTrust(inv), cert: readFileSync(pki('admin.crt')), key: readFileSync(pki('admin.key')),
      });
      if (status === 200) return;
      last = `${status}: ${body.split('\n').filter((l) => l.startsWith('[-]')).join(', ') || body.trim().slice(0, 200)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > end) throw new Error(`${t.name} (${t.address}:${t.port}) is not ready after ${timeoutMs / 1000} s: /readyz ${last}`);
    await sleep(300);
  }
}
