/**
 * The remote half of the recipe: which files go where with which owner and mode, which variables are set, which
 * units restart (only those whose inputs changed, in order) and the health gates after a restart.
 *
 *   forHosts(inv, hosts, opts, async (r, step) => { … })   // bounded parallelism, one connection per host, summary
 *   masterSteps / pkiToMinion / minionSteps                  // SEED.md 7–11, 13 and 14–18 for one host
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import pLimit from 'p-limit';
import * as modes from '../config/files.ts';
import { masterEnv, minionEnv, units, type FlagContext } from '../config/profiles.ts';
import { ExitError } from './cli.ts';
import { quoteValue, setVars } from './envfile.ts';
import type { Host, Inventory } from './inventory.ts';
import { kubeconfig } from './kubeconfig.ts';
import { log, shown } from './log.ts';
import { parseCert } from './pki.ts';
import { table } from './table.ts';
import { connect, dryRemote, type Remote } from './remote.ts';

export interface RolloutOptions {
  dryRun?: boolean;
  concurrency?: number;
  acceptNewHostKeys?: boolean;
  /** false for read-only passes (verify, status): no per-host "done" line */
  report?: boolean;
}

export interface HostOutcome {
  host: string;
  done: string[]; // steps finished
  failed?: string; // the step that failed
  error?: string;
  writes: number; // files written
  restarts: string[]; // units restarted
}

export type Step = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

/** Run `fn` on every host with one connection each, at most `concurrency` at once; a failing host stops only itself. */
export async function forHosts(inv: Inventory, hosts: Host[], o: RolloutOptions,
  fn: (r: Remote, step: Step, out: HostOutcome) => Promise<void>): Promise<HostOutcome[]> {
  const limit = pLimit(o.concurrency ?? 16);
  return Promise.all(hosts.map((host) => limit(async () => {
    const out: HostOutcome = { host: host.name, done: [], writes: 0, restarts: [] };
    let current = 'connect';
    const step: Step = async (name, f) => {
      current = name;
      if (log.tty) log.info(`▸ ${name}${out.done.length ? ` (${out.done.length} done)` : ''}`, host.name); // progress per host on a terminal
      const v = await f();
      out.done.push(name);
      return v;
    };
    let r: Remote | undefined;
    try {
      r = o.dryRun ? dryRemote(host, inv.ssh.sudo) : await connect(inv, host, { acceptNewHostKeys: o.acceptNewHostKeys });
      await fn(r, step, out);
      if (!o.dryRun && o.report !== false) log.info(out.writes || out.restarts.length ? `done: ${out.writes} file(s) written, ${out.restarts.length} restart(s)` : 'done: already up to date', host.name);
    } catch (e) {
      out.failed = current;
      out.error = (e as Error).message;
      log.error(`${current}: ${out.error}`, host.name);
    } finally {
      await r?.close();
    }
    return out;
  })));
}

export function flagContext(inv: Inventory): FlagContext {
  return {
    remoteDir: inv.pki.remoteDir,
    masterUrl: `https://${inv.master.name}:${inv.apiserver.port}`,
    port: inv.apiserver.port,
    clusterDns: inv.clusterDns,
    clusterDomain: inv.clusterDomain,
    kubeconfig: modes.KUBECONFIG_PATH,
  };
}

/** The local files a host receives: [local path, remote path]. Step 7 (master) and step 13 (minion). */
export function pkiFilesFor(inv: Inventory, host: Host): [string, string][] {
  const names = host.role === 'master'
    ? ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'tokens.csv', ...(inv.profile === 'modern' ? ['sa.key', 'sa.pub'] : [])]
    : ['ca.crt', `${host.name}.crt`, `${host.name}.key`];
  return names.map((n) => [path.join(inv.pki.dir, n), `${inv.pki.remoteDir}/${n}`]);
}

/** Upload files with one inspect round trip; returns the remote paths written. */
async function upload(r: Remote, files: [string, string][], m: modes.FileMode, out: HostOutcome): Promise<string[]> {
  const state = await r.inspect(files.map(([, remote]) => remote));
  const written: string[] = [];
  for (const [local, remote] of files) {
    const content = r.dry ? Buffer.alloc(0) : readFileSync(local);
    if (await r.write(remote, content, m, shown(local), state.get(remote))) written.push(remote);
  }
  out.writes += written.length;
  return written;
}

/** Set our variables in each environment file, keeping every other line; returns the paths written. */
async function editEnv(r: Remote, edits: { path: string; vars: Record<string, string> }[], out: HostOutcome): Promise<string[]> {
  const written: string[] = [];
  const state = await r.inspect(edits.map((e) => e.path));
  for (const e of edits) {
    const before = (await r.read(e.path))?.toString() ?? '';
    const { text } = setVars(before, e.vars);
    const label = `<${path.posix.basename(e.path)} with ${Object.entries(e.vars).map(([k, v]) => `${k}=${quoteValue(v)}`).join(' ')}>`;
    if (await r.write(e.path, Buffer.from(text), modes.envFile, label, state.get(e.path))) written.push(e.path);
  }
  out.writes += written.length;
  return written;
}

/**
 * Where a host remembers a restart it still owes: written before `systemctl restart`, removed once the unit is back,
 * so that a run that died in between (or whose restart failed) restarts the unit on the next run even though no
 * file changes then.
 */
export const PENDING_DIR = '/var/lib/kubetls';

/** Restart, in the order of config/profiles.ts, the units that read a changed path or still owe a restart. */
async function restart(inv: Inventory, r: Remote, role: 'master' | 'minion', changed: string[], out: HostOutcome,
  gate: (unit: string) => Promise<void>): Promise<string[]> {
  const owed = (await r.run(['ls', '-1', PENDING_DIR], { ok: [0, 1, 2], quiet: true })).stdout.split('\n')
    .filter((f) => f.startsWith('restart.')).map((f) => f.slice('restart.'.length));
  const hit = units[role].filter((u) => owed.includes(u.unit) || u.reads.some((p) => changed.includes(p.replace('{remote}', inv.pki.remoteDir))));
  if (!hit.length) return [];
  await r.run(['mkdir', '-p', PENDING_DIR], { quiet: true });
  await r.run(['touch', ...hit.map((u) => `${PENDING_DIR}/restart.${u.unit}`)], { quiet: true });
  for (const u of hit) {
    out.restarts.push(u.unit); // counted when attempted: a rollback restarts it again even if this restart failed
    await r.run(['systemctl', 'restart', u.unit]);
    await gate(u.unit);
    await r.run(['rm', '-f', `${PENDING_DIR}/restart.${u.unit}`], { quiet: true });
  }
  return hit.map((u) => u.unit);
}

/** SEED.md steps 7, 9, 10 and 11 on the master. `gate` waits until 6443 serves the local server.crt. */
export async function masterSteps(inv: Inventory, r: Remote, step: Step, out: HostOutcome, o: RolloutOptions = {}): Promise<void> {
  const files = await step('install PKI', async () => {
    const dir = await r.ensureDir(inv.pki.remoteDir, modes.masterPkiDir);
    return [...await upload(r, pkiFilesFor(inv, inv.master), modes.masterPki, out), ...(dir ? [inv.pki.remoteDir] : [])];
  });
  const env = await step('configure', () => editEnv(r, masterEnv(inv.profile, flagContext(inv)), out));
  // apiserver first, then controller-manager; after the apiserver, wait until 6443 serves the new server.crt
  await step('restart', () => restart(inv, r, 'master', [...files, ...env], out,
    async (unit) => { if (unit === 'kube-apiserver' && !o.dryRun) await waitServing(inv); }));
}

/** SEED.md step 13 for one minion: ca.crt, <minion>.crt, <minion>.key as root:root 0600 (no `rm -fr` of the folder). */
export async function pkiToMinion(inv: Inventory, r: Remote, step: Step, out: HostOutcome): Promise<void> {
  await step('install PKI', async () => {
    await r.ensureDir(inv.pki.remoteDir, modes.minionPkiDir);
    await upload(r, pkiFilesFor(inv, r.host), modes.minionPki, out);
  });
}

/** SEED.md steps 14–18 for one minion: kubeconfig, /etc/kubernetes/{config,kubelet,proxy}, restarts, active gate. */
export async function minionSteps(inv: Inventory, r: Remote, step: Step, out: HostOutcome, o: RolloutOptions = {}): Promise<void> {
  const kc = await step('kubeconfig', async () => {
    await r.ensureDir(path.posix.dirname(modes.KUBECONFIG_PATH), { ...modes.kubeconfig, mode: 0o700 });
    const written = await r.write(modes.KUBECONFIG_PATH, r.dry ? Buffer.alloc(0) : kubeletKubeconfig(inv, r.host), modes.kubeconfig, `<kubeconfig: ${inv.cluster}, user kubelet, ${r.host.name}.crt + token embedded>`);
    out.writes += written ? 1 : 0;
    return written ? [modes.KUBECONFIG_PATH] : [];
  });
  const env = await step('configure', () => editEnv(r, minionEnv(inv.profile, flagContext(inv)), out));
  await step('restart', () => restart(inv, r, 'minion', [...kc, ...env], out,
    async (unit) => { if (!o.dryRun) await waitActive(r, [unit]); }));
}

/** Step 14: the kubelet kubeconfig of one minion, with its cert, key and the token embedded. */
export function kubeletKubeconfig(inv: Inventory, host: Host): Buffer {
  const pki = (f: string) => readFileSync(path.join(inv.pki.dir, f));
  const token = readFileSync(path.join(inv.pki.dir, 'tokens.csv'), 'utf8').split(',')[0];
  return Buffer.from(kubeconfig({
    cluster: inv.cluster, server: flagContext(inv).masterUrl, ca: pki('ca.crt'), cert: pki(`${host.name}.crt`), key: pki(`${host.name}.key`), token,
  }));
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

/** The certificate the apiserver serves on master.address:port, verified against ca.crt for the master's name. */
export function servedCert(inv: Inventory, timeoutMs = 5000): Promise<{ serial: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: inv.master.address, port: inv.apiserver.port, servername: inv.master.name,
      ca: readFileSync(path.join(inv.pki.dir, 'ca.crt')), rejectUnauthorized: true, timeout: timeoutMs,
    }, () => {
      const c = s.getPeerCertificate();
      s.destroy();
      resolve({ serial: c.serialNumber.toUpperCase(), fingerprint: c.fingerprint256 });
    });
    s.on('timeout', () => { s.destroy(); reject(new Error(`${inv.master.address}:${inv.apiserver.port}: no TLS answer in ${timeoutMs} ms`)); });
    s.on('error', reject);
  });
}

/** Step 11 done right: wait until the port answers and serves exactly the local server.crt (serials compared). */
export async function waitServing(inv: Inventory, timeoutMs = 30_000): Promise<void> {
  const want = parseCert(readFileSync(path.join(inv.pki.dir, 'server.crt'))).serial;
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const got = await servedCert(inv);
      if (got.serial === want) {
        log.info(`${inv.master.address}:${inv.apiserver.port} serves server.crt serial ${want}`, inv.master.name);
        return;
      }
      last = `serves serial ${got.serial}, expected ${want}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > end) throw new Error(`port ${inv.apiserver.port} not serving the new server.crt after ${timeoutMs / 1000} s: ${last}`);
    await sleep(300);
  }
}

/** Hosts selected by --only (names checked against the inventory). */
export function selectHosts(all: Host[], only?: string): Host[] {
  if (!only) return all;
  const names = only.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !all.some((h) => h.name === n));
  if (unknown.length) throw new ExitError(`--only names hosts not in the inventory: ${unknown.join(', ')}`, 2);
  return all.filter((h) => names.includes(h.name));
}

/** The per-host summary table and the exit code: 0 when every host finished. */
export function summarize(outcomes: HostOutcome[], dryRun = false): { text: string; code: number } {
  const rows = outcomes.map((o) => [o.host, o.failed ? 'FAILED' : 'ok', o.done.join(', ') || '-', o.failed ?? '-', o.error ?? '']);
  const writes = outcomes.reduce((n, o) => n + o.writes, 0);
  const restarts = outcomes.reduce((n, o) => n + o.restarts.length, 0);
  const failed = outcomes.filter((o) => o.failed).length;
  const tail = dryRun
    ? 'dry run: nothing was written, no host was contacted'
    : writes === 0 && restarts === 0 && !failed
      ? 'nothing to do: every host already up to date (0 files written, 0 restarts)'
      : `${writes} file(s) written, ${restarts} restart(s)${failed ? `; ${failed} host(s) failed: rerun to finish them` : ''}`;
  return { text: `${table(['HOST', 'RESULT', 'STEPS DONE', 'FAILED STEP', 'ERROR'], rows)}\n${tail}`, code: failed ? 1 : 0 };
}
