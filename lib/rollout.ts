/**
 * The remote half of the recipe: which files go where with which owner and mode, which variables are set, which
 * units restart (only those whose inputs changed, in order) and the health gates after a restart.
 *
 *   forHosts(inv, hosts, opts, async (r, step) => { … })   // bounded parallelism, one connection per host, summary
 *   masterSteps / pkiToMinion / minionSteps                  // SEED.md 7–11, 13 and 14–18 for one host
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import https from 'node:https';
import tls from 'node:tls';
import pLimit from 'p-limit';
import * as modes from '../config/files.ts';
import { etcdFiles, ETCD_ENV, kubeletFiles, masterFiles, masterKubeconfigs, minionFiles, minionKubeconfigs, type FilePlacement, type KubeconfigPlacement } from '../config/layout.ts';
import { ETCD_CLIENT_PORT, ETCD_DATA_DIR, etcdEnv, KUBELET_PORT, masterEnv, minionEnv, unitsFor, type EnvEdit, type FlagContext, type UnitRole } from '../config/profiles.ts';
import { ExitError } from './cli.ts';
import { quoteValue, setVarsBuffer } from './envfile.ts';
import { allHosts, apiTarget, isHa, masterTarget, urlOf, type ApiTarget, type Host, type Inventory } from './inventory.ts';
import { kubeconfig } from './kubeconfig.ts';
import { log, shown } from './log.ts';
import { faultPoint } from './fault.ts';
import { readServed } from './status.ts';
import { parseCert, readCert } from './pki.ts';
import { clientTrust, deployedBytes, holdsOnlyKnownCas } from './trust.ts';
import { table } from './table.ts';
import { backupStamp, connect, dryRemote, type FileState, type Remote, type Written } from './remote.ts';

export interface RolloutOptions {
  dryRun?: boolean;
  concurrency?: number;
  acceptNewHostKeys?: boolean;
  /** false for read-only passes (verify, status): no per-host "done" line */
  report?: boolean;
  /** --replace-ca: send the local CA to hosts that hold another one (see checkSameCa) */
  replaceCa?: boolean;
  /** no error line for a host that fails (a probe whose failure the caller reports in its own words) */
  quiet?: boolean;
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
      if (!o.quiet) log.error(`${current}: ${out.error}`, host.name);
    } finally {
      await r?.close();
    }
    return out;
  })));
}

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

/** The flags' inputs for one host (a master binds its own address; every client names the balancer, or the master). */
export function flagContext(inv: Inventory, host: Host = inv.master): FlagContext {
  return {
    remoteDir: inv.pki.remoteDir,
    masterUrl: urlOf(apiTarget(inv)),
    masterAddress: (host.role === 'master' ? host : inv.master).address,
    drainSeconds: inv.apiserver.endpoint?.drainSeconds,
    port: inv.apiserver.port,
    clusterDns: inv.clusterDns,
    clusterDomain: inv.clusterDomain,
    serviceCidr: inv.serviceCidr,
    kubeconfig: modes.KUBECONFIG_PATH,
    cluster: inv.cluster,
    etcd: inv.etcd.members.map((m) => ({ name: m.name, address: m.address })),
  };
}

const isEtcdMember = (inv: Inventory, host: Host) => inv.profile === 'modern' && inv.etcd.members.some((m) => m.name === host.name);
/** Whose units run on a host, in restart order: etcd before the apiserver that needs it. */
const rolesFor = (inv: Inventory, host: Host): UnitRole[] =>
  (host.role === 'master' ? (isEtcdMember(inv, host) ? ['etcd', 'master'] : ['master']) : host.role === 'etcd' ? ['etcd'] : ['minion']);
/** The local files a kubeconfig is made from. */
const kubeconfigInputs = (k: KubeconfigPlacement) => ['ca.crt', `${k.cert}.crt`, `${k.cert}.key`, ...(k.token ? ['tokens.csv'] : [])];
const remotePath = (inv: Inventory, p: string) => p.replace('{remote}', inv.pki.remoteDir);

/** The plain files a host receives (config/layout.ts), without duplicates (etcd-ca.crt on a master that is a member). */
function placementsFor(inv: Inventory, host: Host): FilePlacement[] {
  const list = host.role === 'master'
    ? [...masterFiles(inv.profile), ...(isEtcdMember(inv, host) ? etcdFiles(host.name) : [])]
    : host.role === 'etcd' ? etcdFiles(host.name)
      : [...minionFiles(host.name), ...kubeletFiles(inv.profile, host.name)];
  return list.filter((p, i) => list.findIndex((q) => q.path === p.path) === i);
}

/** The variables kubetls sets on a host, per environment file (verify.ts checks them). */
export function envFor(inv: Inventory, host: Host): EnvEdit[] {
  const ctx = flagContext(inv, host);
  if (host.role === 'master') return [...masterEnv(inv.profile, ctx), ...(isEtcdMember(inv, host) ? etcdEnv(ctx, host) : [])];
  return host.role === 'etcd' ? etcdEnv(ctx, host) : minionEnv(inv.profile, ctx, host);
}

/** The kubeconfigs a host receives. */
export function kubeconfigsFor(inv: Inventory, host: Host): KubeconfigPlacement[] {
  return host.role === 'master' ? masterKubeconfigs(inv.profile) : host.role === 'minion' ? minionKubeconfigs(inv.profile, host.name) : [];
}

/**
 * The local files a host receives: [local path, remote path, the bytes it should hold] (status.ts and verify.ts
 * compare them): the file itself, or during a CA rotation the trust bundle of its phase (lib/trust.ts).
 */
export function pkiFilesFor(inv: Inventory, host: Host): [string, string, () => Buffer][] {
  return placementsFor(inv, host).map((p) => [path.join(inv.pki.dir, p.file), remotePath(inv, p.path), placedBytes(inv, p)]);
}
const placedBytes = (inv: Inventory, p: FilePlacement) => () => (p.alone ? readLocal(path.join(inv.pki.dir, p.file)) : deployedLocal(inv, p.file));

/** The local PKI files a host's files are made from (base names): what renew.ts reissued reaches exactly these hosts. */
export function localInputs(inv: Inventory, host: Host): Set<string> {
  const out = new Set(placementsFor(inv, host).map((p) => p.file));
  for (const k of kubeconfigsFor(inv, host)) kubeconfigInputs(k).forEach((f) => out.add(f));
  return out;
}

/**
 * Where the given local PKI files end up and who reads them there: for renew.ts --dry-run ("server.crt → kubemaster:
 * /srv/kubernetes/server.crt, restarts kube-apiserver").
 */
export function wherePlaced(inv: Inventory, files: string[]): { host: string; path: string; units: string[] }[] {
  const out: { host: string; path: string; units: string[] }[] = [];
  for (const h of allHosts(inv)) {
    const readers = (p: string) => unitsToRestart(inv, rolesFor(inv, h), [p], [], []);
    for (const p of placementsFor(inv, h)) if (files.includes(p.file)) out.push({ host: h.name, path: remotePath(inv, p.path), units: readers(remotePath(inv, p.path)) });
    for (const k of kubeconfigsFor(inv, h)) {
      if (kubeconfigInputs(k).some((f) => files.includes(f))) out.push({ host: h.name, path: remotePath(inv, k.path), units: readers(remotePath(inv, k.path)) });
    }
  }
  return out;
}

/**
 * A kubeconfig as lib/kubeconfig.ts writes it: the kubelet's is the recipe's step 14 byte for byte. Its server is the
 * balancer (or the one master); a master's own components (`local`) name that master's apiserver, as kubeadm's
 * controller-manager.conf and scheduler.conf do, so that they never depend on the balancer.
 */
export function kubeconfigContent(inv: Inventory, k: KubeconfigPlacement, host: Host = inv.master): Buffer {
  const pki = (f: string) => readLocal(path.join(inv.pki.dir, f));
  const token = k.token ? pki('tokens.csv').toString('utf8').split(',')[0] : undefined;
  return Buffer.from(kubeconfig({
    // certificate-authority-data: during a CA rotation, the trust bundle of its phase (lib/trust.ts)
    cluster: inv.cluster, server: k.local ? urlOf(masterTarget(inv, host)) : urlOf(apiTarget(inv)), ca: deployedLocal(inv, 'ca.crt'), cert: pki(`${k.cert}.crt`), key: pki(`${k.cert}.key`), token,
    ...(k.user === 'kubelet' ? {} : { user: k.user, context: `${k.user}@${inv.cluster}` }),
  }));
}

/**
 * Where a host remembers a restart it still owes: `restart.<unit>` is written BEFORE the first file that unit reads
 * is replaced, and removed only once the unit passed its health gate. A run killed anywhere in between, or whose
 * restart or gate failed, leaves it behind, and the next run restarts that unit although no file changes then.
 */
export const PENDING_DIR = '/var/lib/kubetls';

/** One file a host should hold. `content` is called only when not a dry run. */
interface Desired { path: string; content: () => Buffer; mode: modes.FileMode; label: string }

/** Everything one host should look like after a step of the recipe, and what to restart when it changes. */
interface HostJob {
  dirs: { dir: string; mode: modes.FileMode; takeOver?: string }[];
  files: Desired[];
  env: EnvEdit[];
  /** the roles whose units (config/profiles.ts unitsFor) read these files, in restart order */
  roles: UnitRole[];
  /** record the restarts the files make owed, but leave them to the script that configures the unit (master.ts step 13 → minions.ts) */
  deferRestart?: boolean;
  /** the CA certificate whose copy on the host tells which PKI built it (checkSameCa) */
  caFile: 'ca.crt' | 'etcd-ca.crt';
  /** units that must restart although none of their files changed (what they serve differs from the PKI); asked only when no file forces the restart anyway */
  stale?: (already: string[]) => Promise<string[]>;
  gate: (unit: string) => Promise<void>;
}

/**
 * Bring one host to `job`: check the folders (root's only), look at every target in one round trip, refuse a host
 * that holds another CA, then record the restarts it will owe, replace what differs, restart what reads it, gate.
 */
async function converge(inv: Inventory, r: Remote, step: Step, out: HostOutcome, job: HostJob, o: RolloutOptions, names: { files: string; env: string }): Promise<void> {
  const caPath = `${inv.pki.remoteDir}/${job.caFile}`;
  let listing: string[] = [];
  const planned = await step('inspect', async () => {
    // one round trip: the folders, every target, the env files' bytes and the restarts owed (lib/remote.ts survey)
    const paths = [...new Set([caPath, ...job.files.map((f) => f.path), ...job.env.map((e) => e.path)])];
    const read = job.env.map((e) => e.path);
    let survey = await r.survey({ dirs: [...job.dirs.map((d) => ({ dir: d.dir, takeOver: d.takeOver })), { dir: PENDING_DIR }], paths, read, list: PENDING_DIR });
    // the folders are judged (created, or taken back from the recipe's kube) before anything seen in them is used
    let changed = false;
    for (const d of job.dirs) changed = (await r.ensureDir(d.dir, d.mode, d.takeOver)) || changed;
    await r.proveDir(PENDING_DIR);
    listing = survey.listing;
    if (survey.deferred || changed) {
      // the files were not looked at (a folder was not root's), or a folder just changed hands: look now, once more
      survey = await r.survey({ dirs: [], paths, read });
      if (survey.deferred) { // a symlink on the way (root's, proven above): one file at a time, as before the survey
        survey = { ...survey, states: await r.inspect(paths), contents: new Map(await Promise.all(read.map(async (f) => [f, await r.read(f)] as const))) };
      }
    }
    const state = survey.states;
    if (!r.dry) await checkSameCa(inv, r, job.caFile, state.get(caPath), o);
    const want: { d: Desired; bytes: Buffer; kind: 'files' | 'env' }[] = [];
    for (const f of job.files) want.push({ d: f, bytes: r.dry ? Buffer.alloc(0) : f.content(), kind: 'files' });
    for (const e of job.env) {
      // as bytes: every line but ours stays exactly as it was, whatever its encoding or line ending
      const before = survey.contents.get(e.path) ?? Buffer.alloc(0);
      const { bytes } = setVarsBuffer(before, e.vars);
      const label = `<${path.posix.basename(e.path)} with ${Object.entries(e.vars).map(([k, v]) => `${k}=${quoteValue(v)}`).join(' ')}>`;
      want.push({ d: { path: e.path, content: () => bytes, mode: modes.envFile, label }, bytes, kind: 'env' });
    }
    return want.filter(({ d, bytes }) => r.dry || differs(state.get(d.path), bytes, d.mode)).map((w) => ({ ...w, state: state.get(w.d.path) }));
  });
  const changed = planned.map((p) => p.d.path);
  const owed = owedRestarts(inv, r, job.roles, listing, job.deferRestart);
  let hit = unitsToRestart(inv, job.roles, changed, owed, []);
  if (job.stale && !r.dry) {
    const stale = (await job.stale(hit)).filter((u) => !hit.includes(u));
    if (stale.length) hit = unitsToRestart(inv, job.roles, changed, owed, stale);
  }
  if (hit.length) {
    await step('record restarts', async () => {
      await r.ensureDir(PENDING_DIR, modes.stateDir);
      // the backups this run is about to make, so that a later run that only owes the restart can still roll back
      const list = planned.flatMap((p) => [p.d.path, p.state?.kind === 'file' ? `${p.d.path}.bak-${backupStamp}` : '-']);
      await r.run(['sh', '-c', 'd=$1; shift; n=$1; shift; i=0; while [ $i -lt $n ]; do touch -- "$d/restart.$1"; shift; i=$((i+1)); done; [ $# -eq 0 ] || printf \'%s\\t%s\\n\' "$@" >> "$d/rollback.list"',
        'sh', PENDING_DIR, String(hit.length), ...hit, ...list], { quiet: true });
    });
    faultPoint('marked');
  }
  for (const kind of ['files', 'env'] as const) {
    const batch = planned.filter((p) => p.kind === kind);
    if (!batch.length) continue;
    await step(kind === 'files' ? names.files : names.env, async () => {
      out.writes += await r.writeAll(batch.map((p) => ({ file: p.d.path, content: p.bytes, mode: p.d.mode, label: p.d.label, known: p.state ?? null })));
      faultPoint('wrote-1');
    });
  }
  if (planned.length) faultPoint('wrote-all');
  if (!hit.length || job.deferRestart) {
    if (hit.length) log.info(`${hit.join(', ')} will restart with minions.ts`, r.host.name);
    return;
  }
  await step('restart', async () => {
    for (const unit of hit) {
      out.restarts.push(unit); // counted when attempted: a rollback restarts it again even if this restart failed
      // a unit in a crash loop (the state an operator fixes by running kubetls) may have used up systemd's start limit:
      // this deliberate restart must not be refused for it ("start request repeated too quickly")
      await r.run(['systemctl', 'reset-failed', unit], { ok: [0, 1] });
      await r.run(['systemctl', 'restart', unit]);
      faultPoint('restarted');
      if (!o.dryRun) await job.gate(unit);
      faultPoint('gated');
      await r.run(['rm', '-f', '--', `${PENDING_DIR}/restart.${unit}`], { quiet: true });
    }
    // every restart passed its gate: nothing left to roll back to
    await r.run(['sh', '-c', 'ls "$1"/restart.* >/dev/null 2>&1 || rm -f -- "$1/rollback.list"', 'sh', PENDING_DIR], { quiet: true });
  });
}

function differs(st: FileState | undefined, bytes: Buffer, m: modes.FileMode): boolean {
  return !st || st.kind !== 'file' || st.sha256 !== createHash('sha256').update(bytes).digest('hex') || st.owner !== m.owner || st.group !== m.group || st.mode !== m.mode;
}

/** The restarts an earlier run left owed on this host (`restart.<unit>` in PENDING_DIR, as the survey listed it), for the units of these roles. */
function owedRestarts(inv: Inventory, r: Remote, roles: UnitRole[], listing: string[], quiet = false): string[] {
  const mine = roles.flatMap((role) => unitsFor(inv.profile, role)).map((u) => u.unit);
  if (r.dry || !mine.length) return [];
  const owed = listing.filter((f) => f.startsWith('restart.')).map((f) => f.slice('restart.'.length)).filter((u) => mine.includes(u));
  if (!quiet) for (const u of owed) log.info(`${u} still owes a restart from an earlier run`, r.host.name);
  return owed;
}

/** The units to restart, in the order of config/profiles.ts: those reading a changed path, owed by an earlier run, or stale. */
function unitsToRestart(inv: Inventory, roles: UnitRole[], changed: string[], owed: string[], stale: string[]): string[] {
  return roles.flatMap((role) => unitsFor(inv.profile, role)).filter((u) => owed.includes(u.unit) || stale.includes(u.unit)
    || u.reads.some((p) => changed.includes(remotePath(inv, p)))).map((u) => u.unit);
}

/**
 * A host that already holds a CA other than the local one was built from another pki/ (a new checkout, the wrong
 * folder): sending ours would cut every node off. Stop before anything is sent, unless --replace-ca says to.
 */
async function checkSameCa(inv: Inventory, r: Remote, caFile: string, st: FileState | undefined, o: RolloutOptions): Promise<void> {
  if (!st) return;
  const local = readFileSync(path.join(inv.pki.dir, caFile));
  if (st.kind === 'file' && st.sha256 === createHash('sha256').update(local).digest('hex')) return;
  let theirs = `${st.kind === 'file' ? 'a different file' : 'not a regular file'}`;
  try {
    const remote = st.kind === 'file' ? await r.read(`${inv.pki.remoteDir}/${caFile}`) : undefined;
    if (remote) {
      // the same certificate written differently, or (during a CA rotation) a bundle of the old and the new CA only
      if (holdsOnlyKnownCas(inv, caFile, remote)) return;
      const c = parseCert(remote);
      theirs = `CA '${c.subject.cn}' (SHA-256 ${c.fingerprint.slice(0, 23)}…, not after ${c.notAfter.toISOString().slice(0, 10)})`;
    }
  } catch { /* not a certificate: say so below */ }
  const msg = `${inv.pki.remoteDir}/${caFile} holds ${theirs}, not the local ${shown(path.join(inv.pki.dir, caFile))}`;
  if (o.replaceCa) { log.warn(`${msg}: replacing it (--replace-ca)`, r.host.name); return; }
  throw new Error(`${msg}. This cluster was built with another PKI folder: nothing was sent. Restore that folder (pki.dir in ${shown(inv.file)}), or run again with --replace-ca to replace the cluster's CA, which invalidates every certificate, kubeconfig and service-account token signed by the old one.`);
}

/**
 * The gate after restarting a unit: the apiserver must serve the local server.crt; anything else must be active
 * (etcd's unit is Type=notify: active means it has joined its cluster and serves clients; verify.ts asks it with
 * etcdctl from the operator's machine).
 */
function gateFor(inv: Inventory, r: Remote): (unit: string) => Promise<void> {
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
    // modern: a kubelet must also serve its local serving certificate on :10250, verified for its name
    if (unit === 'kubelet' && inv.profile === 'modern') await waitKubeletServing(inv, r.host);
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

const desired = (inv: Inventory, p: FilePlacement): Desired => {
  const local = path.join(inv.pki.dir, p.file);
  return { path: remotePath(inv, p.path), content: placedBytes(inv, p), mode: p.mode, label: shown(local) };
};
const desiredKubeconfig = (inv: Inventory, k: KubeconfigPlacement, host: Host): Desired => ({
  path: remotePath(inv, k.path), content: () => kubeconfigContent(inv, k, host), mode: k.mode,
  label: `<kubeconfig: ${inv.cluster}, user ${k.user}, ${k.cert}.crt${k.token ? ' + token' : ''} embedded>`,
});

/**
 * SEED.md steps 7, 9, 10 and 11 on a master (modern: also its kubeconfigs, the scheduler, and etcd when the master
 * is a member). The gate waits until its 6443 serves the local server.crt (and, modern, is ready).
 */
export async function masterSteps(inv: Inventory, r: Remote, step: Step, out: HostOutcome, o: RolloutOptions = {}): Promise<void> {
  const host = r.host;
  const member = isEtcdMember(inv, host);
  const ctx = flagContext(inv, host);
  await converge(inv, r, step, out, {
    dirs: [{ dir: inv.pki.remoteDir, mode: modes.masterPkiDir, takeOver: modes.SERVICE_USER }, { dir: '/etc/kubernetes', mode: modes.envDir },
      ...(member ? [{ dir: path.posix.dirname(ETCD_ENV), mode: modes.envDir }] : [])],
    files: [...placementsFor(inv, host).map((p) => desired(inv, p)), ...kubeconfigsFor(inv, host).map((k) => desiredKubeconfig(inv, k, host))],
    env: [...masterEnv(inv.profile, ctx), ...(member ? etcdEnv(ctx, host) : [])],
    roles: rolesFor(inv, host),
    caFile: 'ca.crt',
    stale: async (already) => (already.includes('kube-apiserver') ? [] : staleApiserver(inv, r)),
    gate: gateFor(inv, r),
  }, o, { files: 'install PKI', env: 'configure' });
}

/** Modern: an etcd member that is a host of its own: its etcd pairs, /etc/default/etcd, and `etcd` restarted. */
export async function etcdSteps(inv: Inventory, r: Remote, step: Step, out: HostOutcome, o: RolloutOptions = {}): Promise<void> {
  await converge(inv, r, step, out, {
    dirs: [{ dir: inv.pki.remoteDir, mode: modes.masterPkiDir }, { dir: path.posix.dirname(ETCD_ENV), mode: modes.envDir }],
    files: placementsFor(inv, r.host).map((p) => desired(inv, p)),
    env: etcdEnv(flagContext(inv), r.host),
    roles: ['etcd'],
    caFile: 'etcd-ca.crt',
    gate: gateFor(inv, r),
  }, o, { files: 'install PKI', env: 'configure' });
}

/**
 * What the master's 6443 serves, compared with the local server.crt on every run: a run that died after installing the
 * files but before the restart (or an apiserver restarted by hand with old files) is work to do, whatever the files say.
 */
async function staleApiserver(inv: Inventory, r: Remote): Promise<string[]> {
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
 * SEED.md step 13 for one minion: ca.crt, <minion>.crt, <minion>.key as root:root 0600 (no `rm -fr` of the folder).
 * Nothing is restarted here; a unit that reads one of these files (modern: the kubelet's --client-ca-file) is
 * recorded as owing a restart, which minions.ts does.
 */
export async function pkiToMinion(inv: Inventory, r: Remote, step: Step, out: HostOutcome, o: RolloutOptions = {}): Promise<void> {
  await converge(inv, r, step, out, {
    dirs: [{ dir: inv.pki.remoteDir, mode: modes.minionPkiDir }],
    files: minionFiles(r.host.name).map((p) => desired(inv, p)),
    env: [],
    roles: ['minion'],
    deferRestart: true,
    caFile: 'ca.crt',
    gate: async () => {},
  }, o, { files: 'install PKI', env: 'configure' });
}

/**
 * SEED.md steps 14–18 for one minion: kubeconfig(s), /etc/kubernetes/{config,kubelet,proxy}, (modern) the kubelet's
 * serving pair, restarts, active gate.
 */
export async function minionSteps(inv: Inventory, r: Remote, step: Step, out: HostOutcome, o: RolloutOptions = {}): Promise<void> {
  const kcs = kubeconfigsFor(inv, r.host);
  await converge(inv, r, step, out, {
    dirs: [...new Set([...kcs.map((k) => path.posix.dirname(k.path)), ...kubeletFiles(inv.profile, r.host.name).map((p) => path.posix.dirname(p.path))])]
      .map((dir) => ({ dir, mode: { ...modes.kubeconfig, mode: 0o700 } })).concat({ dir: '/etc/kubernetes', mode: modes.envDir }, { dir: inv.pki.remoteDir, mode: modes.minionPkiDir }),
    files: [...kcs.map((k) => desiredKubeconfig(inv, k, r.host)), ...kubeletFiles(inv.profile, r.host.name).map((p) => desired(inv, p))],
    // remote_dir is only read here (its ca.crt tells which CA the host holds), but even a read is done below a proven folder
    env: minionEnv(inv.profile, flagContext(inv), r.host),
    roles: ['minion'],
    caFile: 'ca.crt',
    gate: gateFor(inv, r),
  }, o, { files: 'kubeconfig', env: 'configure' });
}

/** Step 14: the kubelet kubeconfig of one minion, with its cert, key and the token embedded. */
export function kubeletKubeconfig(inv: Inventory, host: Host): Buffer {
  return kubeconfigContent(inv, minionKubeconfigs(inv.profile, host.name)[0]);
}

/** A local PKI file, named in the error when it cannot be read. */
function readLocal(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`${shown(file)}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing: run scripts/master.ts first' : (e as Error).message}`);
  }
}

/** What a host receives for a local PKI file (a trust bundle during a CA rotation), named in the error when it cannot be read. */
function deployedLocal(inv: Inventory, file: string): Buffer {
  try {
    return deployedBytes(inv, file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException; // the file that could not be read: this one, or the other half of its bundle
    throw new Error(`${shown(err.path ?? path.join(inv.pki.dir, file))}: ${err.code === 'ENOENT' ? 'missing: run scripts/master.ts first' : err.message}`);
  }
}

/** The writes a killed run recorded in rollback.list before it replaced anything (see converge): path → backup or none. */
async function earlierWrites(r: Remote): Promise<Written[]> {
  // only what is still there to put back: a backup the killed run never got to make is skipped
  const list = await r.run(['sh', '-c', 't=$(printf "\\t"); [ -f "$1" ] || exit 0; while IFS=$t read -r p b; do if [ "$b" = - ] || [ -f "$b" ]; then printf "%s\\t%s\\n" "$p" "$b"; fi; done < "$1"',
    'sh', `${PENDING_DIR}/rollback.list`], { quiet: true });
  return list.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')).map(([p, b]) => ({ path: p, backup: b === '-' ? undefined : b }));
}

/**
 * Run a host's steps; if they fail after something was written, put the backups back, restart what was restarted
 * (so the old certificates are served again), and fail with the original error. master.ts, minions.ts and renew.ts
 * all go through here: a master whose apiserver does not come back with the new files is not left down.
 */
export async function withRollback(inv: Inventory, r: Remote, out: HostOutcome, o: RolloutOptions, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    if (o.dryRun) throw e;
    // what to put back: this run's writes, or (a run that only did the restart an earlier, killed run owed) the list
    // of backups that run recorded before its first write
    if (!r.writes.length && out.restarts.length) r.writes.push(...await earlierWrites(r));
    if (!r.writes.length) throw e;
    log.warn(`rolling back ${r.writes.length} file(s): ${(e as Error).message}`, r.host.name);
    let incomplete = '';
    try { await r.rollback(); } catch (err) { incomplete = `; ${(err as Error).message}`; }
    // restarted whatever happened above: a unit left on files that failed its gate is worse than one on a mix
    // reset-failed first: the failed start counted toward systemd's start limit (5 in 10 s by default), which must not
    // refuse the restart that puts the old files back ("start of the service was attempted too often")
    for (const unit of [...new Set(out.restarts)]) {
      await r.run(['systemctl', 'reset-failed', unit], { ok: [0, 1] }).catch(() => undefined);
      await r.run(['systemctl', 'restart', unit], { ok: [0, 1, 3] }).catch(() => undefined);
    }
    if (out.restarts.includes('kube-apiserver')) {
      const served = await servedCert(inv, masterTarget(inv, r.host)).then((c) => `serves serial ${c.serial} again`, (err: Error) => `does not answer: ${err.message}`);
      log.warn(`after rollback ${r.host.address}:${inv.apiserver.port} ${served}`, r.host.name);
    } else if (out.restarts.length) {
      await waitActive(r, [...new Set(out.restarts)]).catch((err: Error) => log.warn(`after rollback: ${err.message}`, r.host.name));
    }
    throw new Error(`${(e as Error).message} (rolled back${incomplete})`);
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

/** The certificate an apiserver serves (default: the first master's), verified against ca.crt for the target's name. */
export function servedCert(inv: Inventory, t: ApiTarget = masterTarget(inv, inv.master), timeoutMs = 5000): Promise<{ serial: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: t.address, port: t.port, servername: t.name,
      ca: clientTrust(inv), rejectUnauthorized: true, timeout: timeoutMs,
    }, () => {
      const c = s.getPeerCertificate();
      s.destroy();
      resolve({ serial: c.serialNumber.toUpperCase(), fingerprint: c.fingerprint256 });
    });
    s.on('timeout', () => { s.destroy(); reject(new Error(`${t.address}:${t.port}: no TLS answer in ${timeoutMs} ms`)); });
    s.on('error', reject);
  });
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

/** One HTTPS GET, the peer verified (rejectUnauthorized), at most 64 KiB of body kept; also verify.ts's kubeletGet. */
export function httpsGet(o: https.RequestOptions & { path: string }, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ ...o, rejectUnauthorized: true, timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { if (body.length < 65536) body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
  });
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
