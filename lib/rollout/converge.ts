/**
 * Bringing one host to what it should hold (lib/rollout/desired.ts), as a spine of named steps:
 *
 *   survey → prove folders → refuse another CA → what differs → record restarts → install → restart and gate
 *
 * and, around it, withRollback: a host whose new files fail their gate gets its old files and units back. The
 * recipe's steps for each kind of host (master, etcd member, minion) are lib/rollout/steps.ts; restarting and the
 * health gates, lib/rollout/gates.ts.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as modes from '../../config/files.ts';
import { PENDING_DIR } from '../../config/files.ts';
import type { EnvEdit, UnitRole } from '../../config/profiles.ts';
import { unitsFor } from '../../config/profiles.ts';
import { quoteValue, setVarsBuffer } from '../envfile.ts';
import { faultPoint } from '../fault.ts';
import { type Inventory, masterTarget } from '../inventory.ts';
import { log, shown } from '../log.ts';
import { parseCert } from '../pki/read.ts';
import { holdsOnlyKnownCas } from '../pki/trust.ts';
import { servedCert } from '../probe.ts';
import type { HostOutcome, RolloutOptions, Step } from '../remote/hosts.ts';
import { backupStamp, type FileState, type Remote, type Survey, type Written } from '../remote/remote.ts';
import type { Desired } from './desired.ts';
import { kubeletCerts, unitsToRestart } from './desired.ts';
import { restartAndGate, waitActive } from './gates.ts';

/** Everything one host should look like after a step of the recipe, and what to restart when it changes. */
export interface HostJob {
  dirs: { dir: string; mode: modes.FileMode; takeOver?: string }[];
  files: Desired[];
  env: EnvEdit[];
  /** the roles whose units (config/profiles.ts unitsFor) read these files, in restart order */
  roles: UnitRole[];
  /** record the restarts the files make owed, but leave them to the script that configures the unit (master.ts step 13 → minions.ts) */
  deferRestart?: boolean;
  /** the CA certificate whose copy on the host tells which PKI built it (refuseAnotherCa) */
  caFile: 'ca.crt' | 'etcd-ca.crt';
  /** units that must restart although none of their files changed (what they serve differs from the PKI); asked only when no file forces the restart anyway */
  stale?: (already: string[]) => Promise<string[]>;
  gate: (unit: string) => Promise<void>;
  /**
   * Files kubetls put there in another mode that must go now (kubelet.certificates switched): each is renamed to its
   * backup name (a rollback puts it back; removed once the host passed its gates) unless `keep` says its bytes are not
   * kubetls's to retire (the kubelet's own kubeconfig, which names its rotating certificate).
   */
  retire?: { path: string; why: string; keep?: (bytes: Buffer) => boolean }[];
}

/** A file or env file that differs from what the host holds: what to write, and what is there now. */
interface Planned { d: Desired; bytes: Buffer; kind: 'files' | 'env' | 'retire'; state?: FileState }

/**
 * Bring one host to `job`: check the folders (root's only), look at every target in one round trip, refuse a host
 * that holds another CA, then record the restarts it will owe, replace what differs, restart what reads it, gate.
 */
export async function converge(inv: Inventory, r: Remote, step: Step, out: HostOutcome, job: HostJob, o: RolloutOptions, names: { files: string; env: string }): Promise<void> {
  const caPath = `${inv.pki.remoteDir}/${job.caFile}`;
  let listing: string[] = [];
  const planned = await step('inspect', async () => {
    const seen = await surveyAndProve(r, job, caPath);
    listing = seen.listing;
    if (!r.dry) await refuseAnotherCa(inv, r, job.caFile, seen.states.get(caPath), o);
    return whatDiffers(r, job, seen);
  });
  const units = await restartsDue(inv, r, job, planned, listing);
  if (units.length) {
    await step('record restarts', () => recordRestarts(r, units, planned));
    faultPoint('marked');
  }
  await install(r, step, out, planned, names);
  if (units.length && !job.deferRestart) await step('restart', () => restartAndGate(r, units, job.gate, out, o));
  else if (units.length) log.info(`${units.join(', ')} will restart with minions.ts`, r.host.name);
  // what was retired stays aside until the host's whole job succeeded (withRollback removes it then: a key of the node
  // must not linger as a backup); also when this run only finished what a killed one retired (it owed the restarts)
  if ((planned.some((p) => p.kind === 'retire') || units.length) && job.retire?.length) out.dropBackups = job.retire.map((x) => x.path);
}

/**
 * Survey → prove folders: one round trip for the folders, every target, the env files' bytes and the restarts owed
 * (lib/remote/survey.ts); the folders are judged (created, or taken back from the recipe's kube) before anything seen
 * in them is used, and looked at once more if they were not root's or just changed hands.
 */
async function surveyAndProve(r: Remote, job: HostJob, caPath: string): Promise<Survey> {
  const retire = job.retire ?? [];
  const paths = [...new Set([caPath, ...job.files.map((f) => f.path), ...job.env.map((e) => e.path), ...retire.map((x) => x.path)])];
  const read = [...job.env.map((e) => e.path), ...retire.filter((x) => x.keep).map((x) => x.path)];
  let survey = await r.survey({ dirs: [...job.dirs.map((d) => ({ dir: d.dir, takeOver: d.takeOver })), { dir: PENDING_DIR }], paths, read, list: PENDING_DIR });
  let changed = false;
  for (const d of job.dirs) changed = (await r.ensureDir(d.dir, d.mode, d.takeOver)) || changed;
  await r.proveDir(PENDING_DIR);
  const listing = survey.listing;
  if (survey.deferred || changed) {
    // the files were not looked at (a folder was not root's), or a folder just changed hands: look now, once more
    survey = await r.survey({ dirs: [], paths, read });
    if (survey.deferred) { // a symlink on the way (root's, proven above): one file at a time, as before the survey
      survey = { ...survey, states: await r.inspect(paths), contents: new Map(await Promise.all(read.map(async (f) => [f, await r.read(f)] as const))) };
    }
  }
  return { ...survey, listing };
}

/** What differs: every file and env file whose bytes, owner or mode are not what the host should hold (all, on a dry run). */
function whatDiffers(r: Remote, job: HostJob, seen: Survey): Planned[] {
  const want: Planned[] = [];
  for (const f of job.files) want.push({ d: f, bytes: r.dry ? Buffer.alloc(0) : f.content(), kind: 'files' });
  for (const e of job.env) {
    // as bytes: every line but ours stays exactly as it was, whatever its encoding or line ending
    const before = seen.contents.get(e.path) ?? Buffer.alloc(0);
    const { bytes } = setVarsBuffer(before, e.vars);
    const label = `<${path.posix.basename(e.path)} with ${Object.entries(e.vars).map(([k, v]) => `${k}=${quoteValue(v)}`).join(' ')}>`;
    want.push({ d: { path: e.path, content: () => bytes, mode: modes.envFile, label }, bytes, kind: 'env' });
  }
  const differing = want.filter(({ d, bytes }) => r.dry || differs(seen.states.get(d.path), bytes, d.mode)).map((w) => ({ ...w, state: seen.states.get(w.d.path) }));
  // a file to retire: there (a dry run cannot tell: listed), and not kept by its bytes
  const retired = (job.retire ?? []).filter((x) => r.dry || (seen.states.get(x.path) !== undefined && !(x.keep && x.keep(seen.contents.get(x.path) ?? Buffer.alloc(0)))))
    .map((x): Planned => ({ d: { path: x.path, content: () => Buffer.alloc(0), mode: modes.kubeconfig,
      label: r.dry ? `${x.why} (if it is there${x.keep ? ' and is not the kubelet\'s own for this cluster' : ''})` : x.why }, bytes: Buffer.alloc(0), kind: 'retire', state: seen.states.get(x.path) }));
  return [...differing, ...retired];
}

function differs(st: FileState | undefined, bytes: Buffer, m: modes.FileMode): boolean {
  return !st || st.kind !== 'file' || st.sha256 !== createHash('sha256').update(bytes).digest('hex') || st.owner !== m.owner || st.group !== m.group || st.mode !== m.mode;
}

/** The units to restart, in order: those reading a changed path, those an earlier run left owed, and the stale ones. */
async function restartsDue(inv: Inventory, r: Remote, job: HostJob, planned: Planned[], listing: string[]): Promise<string[]> {
  const changed = planned.map((p) => p.d.path);
  const owed = owedRestarts(inv, r, job.roles, listing, job.deferRestart);
  let units = unitsToRestart(inv, job.roles, changed, owed, []);
  if (job.stale && !r.dry) {
    const stale = (await job.stale(units)).filter((u) => !units.includes(u));
    if (stale.length) units = unitsToRestart(inv, job.roles, changed, owed, stale);
  }
  return units;
}

/** The restarts an earlier run left owed on this host (`restart.<unit>` in PENDING_DIR, as the survey listed it), for the units of these roles. */
function owedRestarts(inv: Inventory, r: Remote, roles: UnitRole[], listing: string[], quiet = false): string[] {
  const mine = roles.flatMap((role) => unitsFor(inv.profile, role, kubeletCerts(inv))).map((u) => u.unit);
  if (r.dry || !mine.length) return [];
  const owed = listing.filter((f) => f.startsWith('restart.')).map((f) => f.slice('restart.'.length)).filter((u) => mine.includes(u));
  if (!quiet) for (const u of owed) log.info(`${u} still owes a restart from an earlier run`, r.host.name);
  return owed;
}

/**
 * Record restarts, BEFORE the first file a unit reads is replaced: `restart.<unit>` in PENDING_DIR, removed only once
 * the unit passed its health gate (restartAndGate). A run killed anywhere in between, or whose restart or gate failed,
 * leaves it behind, and the next run restarts that unit although no file changes then. Beside it, the backups this
 * run is about to make, so that a later run that only owes the restart can still roll back.
 */
async function recordRestarts(r: Remote, units: string[], planned: Planned[]): Promise<void> {
  await r.ensureDir(PENDING_DIR, modes.stateDir);
  const list = planned.flatMap((p) => [p.d.path, p.state?.kind === 'file' ? `${p.d.path}.bak-${backupStamp}` : '-']);
  await r.run(['sh', '-c', 'd=$1; shift; n=$1; shift; i=0; while [ $i -lt $n ]; do touch -- "$d/restart.$1"; shift; i=$((i+1)); done; [ $# -eq 0 ] || printf \'%s\\t%s\\n\' "$@" >> "$d/rollback.list"',
    'sh', PENDING_DIR, String(units.length), ...units, ...list], { quiet: true });
}

/** Install: the files in one batch, then the env files in another (lib/remote/ssh.ts writeAll: verified, backed up, renamed). */
async function install(r: Remote, step: Step, out: HostOutcome, planned: Planned[], names: { files: string; env: string }): Promise<void> {
  for (const kind of ['files', 'env'] as const) {
    const batch = planned.filter((p) => p.kind === kind);
    if (!batch.length) continue;
    await step(kind === 'files' ? names.files : names.env, async () => {
      out.writes += await r.writeAll(batch.map((p) => ({ file: p.d.path, content: p.bytes, mode: p.d.mode, label: p.d.label, known: p.state ?? null })));
      faultPoint('wrote-1');
    });
  }
  const retire = planned.filter((p) => p.kind === 'retire');
  if (retire.length) {
    await step('retire', async () => {
      for (const p of retire) {
        // renamed aside, not deleted: a rollback (withRollback) moves it back; removed once the host passed its gates
        const backup = `${p.d.path}.bak-${backupStamp}`;
        log.info(`${p.d.path}: ${p.d.label}`, r.host.name);
        await r.run(['mv', '-fT', '--', p.d.path, backup]);
        r.writes.push({ path: p.d.path, backup });
        out.writes += 1;
      }
    });
  }
  if (planned.length) faultPoint('wrote-all');
}

/**
 * Refuse another CA: a host that already holds a CA other than the local one was built from another pki/ (a new
 * checkout, the wrong folder): sending ours would cut every node off. Stop before anything is sent, unless
 * --replace-ca says to.
 */
async function refuseAnotherCa(inv: Inventory, r: Remote, caFile: string, st: FileState | undefined, o: RolloutOptions): Promise<void> {
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

/** The writes a killed run recorded in rollback.list before it replaced anything (see recordRestarts): path → backup or none. */
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
    // every backup of what a switch of kubelet.certificates retired, this run's and older ones: nothing rolls back to them now
    if (out.dropBackups?.length && !o.dryRun) await r.run(['sh', '-c', 'for p; do rm -f -- "$p".bak-*; done', 'sh', ...out.dropBackups]);
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
