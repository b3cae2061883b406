/**
 * The records kubetls keeps beside the PKI, in pki.dir, and the guards they make:
 *   .renew-pending.json   hosts still owed the current files (a failed or killed run): the next renew finishes them
 *   .last-renew           when renew.ts last finished without error (status.ts --prometheus reports it)
 *   .rotate-ca.json       a CA rotation's phase (lib/rotate.ts), running or done; master.ts, minions.ts and a plain
 *                         renew.ts refuse to run while one runs
 * A low room on purpose: scripts and modes read these guards without importing a mode.
 */
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { local as localModes } from '../config/files.ts';
import { writeAtomic } from './atomic.ts';
import { ExitError } from './cli.ts';
import { allHosts, type Inventory } from './inventory.ts';
import { oneLine } from './inventory/errors.ts';
import { log, shown } from './log.ts';
import type { HostOutcome } from './remote/hosts.ts';

// ---- hosts owed the current files ------------------------------------------------------------------------------------

/** Hosts that still need the renewed files (a failed or interrupted run): rolled out again by the next run. */
export const pendingFile = (inv: Inventory) => path.join(inv.pki.dir, '.renew-pending.json');
export function readPending(inv: Inventory, dryRun?: boolean): string[] {
  const hosts = readPendingFile(inv);
  // a host removed from the inventory since can never be finished: forget it (once, loudly) instead of failing forever
  const known = new Set(allHosts(inv).map((h) => h.name));
  const gone = hosts.filter((h) => !known.has(h));
  const kept = hosts.filter((h) => known.has(h));
  if (gone.length) {
    log.warn(`${shown(pendingFile(inv))}: ${gone.join(', ')} no longer in the inventory: forgotten`);
    if (!dryRun) writePending(inv, kept);
  }
  return kept;
}

/**
 * The record as it is: absent is "nothing owed"; anything else that is not a JSON list of host names is an error that
 * names the file and says what to do. It is never read as "nothing owed": a run would then say "nothing to renew" for
 * ever while the hosts it lists keep their old files (and a token rotation would retire a token they still use).
 */
export function readPendingFile(inv: Inventory): string[] {
  const file = pendingFile(inv);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw damagedPending(file, `cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let hosts: unknown;
  try { hosts = JSON.parse(text); } catch (e) { throw damagedPending(file, `not JSON (${(e as Error).message})`); }
  if (!Array.isArray(hosts) || !hosts.every((h) => typeof h === 'string')) throw damagedPending(file, `not a list of host names (found ${JSON.stringify(hosts).slice(0, 60)})`);
  return hosts as string[];
}

const damagedPending = (file: string, what: string) => new Error(oneLine(`${shown(file)}: ${what}. It lists the hosts an earlier run left owed the `
  + 'current files, so it cannot be guessed: fix it, or write the name of every host in it (["kubemaster", "kubeminion1"]) and the next renew.ts finishes them all'));
export function writePending(inv: Inventory, hosts: string[]): void {
  if (hosts.length) writeAtomic(pendingFile(inv), `${JSON.stringify([...new Set(hosts)].sort())}\n`, localModes.secret);
  else rmSync(pendingFile(inv), { force: true });
}

/**
 * master.ts and minions.ts, before their first write: the hosts they are about to change are owed the current files
 * until the run finishes them (recordRollout), so that a run killed at any instant leaves them to the next renew.ts,
 * which also makes the restarts the killed run owed. renew.ts records its own the same way.
 */
export function recordOwed(inv: Inventory, hosts: Iterable<string>, dryRun?: boolean): void {
  const add = [...hosts];
  if (dryRun || !add.length || !existsSync(inv.pki.dir)) return;
  writePending(inv, [...readPending(inv), ...add]);
}

/**
 * master.ts and minions.ts, at the end: a host they failed on is owed the current files, which cron's renew.ts then finishes; a
 * host they brought up to date is no longer owed anything.
 */
export function recordRollout(inv: Inventory, outcomes: HostOutcome[], dryRun: boolean | undefined, completes: (host: string) => boolean): void {
  if (dryRun || !existsSync(inv.pki.dir)) return;
  const failed = outcomes.filter((x) => x.failed).map((x) => x.host);
  // master.ts completes the master and etcd hosts; a minion is complete only after minions.ts (its kubeconfig)
  const done = new Set(outcomes.filter((x) => !x.failed && completes(x.host)).map((x) => x.host));
  const next = [...readPending(inv, dryRun).filter((h) => !done.has(h)), ...failed];
  writePending(inv, next);
}

// ---- the last successful renewal -------------------------------------------------------------------------------------

/** Where renew.ts records the time of its last successful run (for --prometheus). */
export const lastRenewFile = (inv: Inventory) => path.join(inv.pki.dir, '.last-renew');

export function lastRenew(inv: Inventory): Date | undefined {
  const f = lastRenewFile(inv);
  return existsSync(f) ? statSync(f).mtime : undefined;
}

/** After a run that finished without error: the time that --prometheus reports. */
export function recordSuccess(inv: Inventory): void {
  if (existsSync(inv.pki.dir)) writeAtomic(lastRenewFile(inv), `${new Date().toISOString()}\n`, localModes.public);
}

// ---- the CA rotation's record ----------------------------------------------------------------------------------------

/** What a rotation can replace: the three CAs of the modern profile and the service-account key pair. */
export type RotTarget = 'ca' | 'etcd-ca' | 'front-proxy-ca' | 'sa';
/** `--rotate-ca` names, as docs/ca-rotation.md says them, and the targets each one rotates. */
export const ROTATE_NAMES: Record<string, RotTarget[]> = {
  cluster: ['ca'], etcd: ['etcd-ca'], 'front-proxy': ['front-proxy-ca'], 'service-account': ['sa'],
  all: ['ca', 'etcd-ca', 'front-proxy-ca', 'sa'],
};

/**
 * The phases, in order (recorded in `.rotate-ca.json` before each one starts, so a killed run resumes there):
 *   new     1  the new CAs are made beside the old ones (<ca>.next.*)
 *   bundle  2  every trust point gets old + new, every reader restarted once, one host at a time
 *   swap    3a the new CA becomes <ca>.crt (the old one kept as <ca>.prev.*), every leaf reissued under it
 *   leaves  3b the new leaves rolled out (trust points now new + old)
 *   verify  4  every identity checked with the new chain only
 *   drop    5  the old CA taken out of every trust point; its key deleted here and on the masters
 *   done       finished (kept as a record: the same rotation asked again is nothing to do)
 */
export type Phase = 'new' | 'bundle' | 'swap' | 'leaves' | 'verify' | 'drop' | 'done';
export const PHASES: Phase[] = ['new', 'bundle', 'swap', 'leaves', 'verify', 'drop', 'done'];
export const PHASE_TEXT: Record<Phase, string> = {
  new: 'phase 1 of 5: new CA', bundle: 'phase 2 of 5: trust bundles (old + new)', swap: 'phase 3 of 5: reissuing leaves',
  leaves: 'phase 3 of 5: rolling out the new leaves', verify: 'phase 4 of 5: verifying with the new CA only',
  drop: 'phase 5 of 5: dropping the old CA', done: 'finished',
};

export interface Rotation {
  /** the --rotate-ca name it was started with (cluster, etcd, front-proxy, service-account, all) */
  what: string;
  targets: RotTarget[];
  phase: Phase;
  started: string;
  finished?: string;
  /** SHA-256 fingerprints (CAs) or public-key hashes (sa) of the old and the new one, for `status` and the checks */
  old: Partial<Record<RotTarget, string>>;
  next: Partial<Record<RotTarget, string>>;
  /** when phase 3 ended (every apiserver signs tokens with the new sa.key), and when phase 5 began dropping */
  leavesDone?: string;
  dropFrom?: string;
  /** the rotations that finished before this one, by name: when, and what they made */
  history?: Record<string, { finished: string; next: Partial<Record<RotTarget, string>> }>;
}

export const rotationFile = (inv: Inventory) => path.join(inv.pki.dir, '.rotate-ca.json');

/** The recorded rotation, running or finished; undefined when none was ever started. A damaged record is an error. */
export function readRotation(inv: Inventory): Rotation | undefined {
  const file = rotationFile(inv);
  if (!existsSync(file)) return undefined;
  let r: Rotation;
  try { r = JSON.parse(readFileSync(file, 'utf8')) as Rotation; } catch (e) {
    throw new Error(`${file}: not a rotation record (${(e as Error).message}); restore it from a backup of pki.dir: a CA rotation's phase cannot be guessed`);
  }
  const known = Object.values(ROTATE_NAMES).flat();
  if (!r || !PHASES.includes(r.phase) || !Array.isArray(r.targets) || !r.targets.length || r.targets.some((t) => !known.includes(t)) || !(r.what in ROTATE_NAMES)) {
    throw new Error(`${file}: not a rotation record (phase ${JSON.stringify(r?.phase)}); restore it from a backup of pki.dir: a CA rotation's phase cannot be guessed`);
  }
  return r;
}

/** The rotation that is running (any phase but done), if any. */
export function runningRotation(inv: Inventory): Rotation | undefined {
  const r = readRotation(inv);
  return r && r.phase !== 'done' ? r : undefined;
}


export function writeRotation(inv: Inventory, r: Rotation): void {
  writeAtomic(rotationFile(inv), `${JSON.stringify(r, null, 2)}\n`, localModes.secret);
}

/** What to do with a CA that expired: a rotation cannot help any more (master.ts says the same). */
export const EXPIRED = (ca: string) => `${ca}.crt has expired: nothing it signed verifies any more, so a rotation (which keeps a working cluster working) cannot run. `
  + `Move ${ca}.crt and ${ca}.key away and run scripts/master.ts --replace-ca: a new CA, every certificate reissued, every unit restarted, as at install.`;

/**
 * master.ts and minions.ts refuse to run while a rotation runs: each would undo part of a phase (renew.ts renews around
 * it). Phase 1 is not one of those: it makes the new CA here and sends nothing, and a phase 1 that waits for the
 * operator's root to sign (docs/own-root.md) may wait for weeks, during which nodes are added and leaves come due.
 */
export function refuseDuringRotation(inv: Inventory, script: string): void {
  const r = readRotation(inv);
  if (r && r.phase !== 'done' && r.phase !== 'new') {
    throw new ExitError(`a CA rotation of ${r.what} is running (${PHASE_TEXT[r.phase]}, started ${r.started}): ${script} would undo part of it. `
      + `Finish it first: npx zx scripts/renew.ts --rotate-ca ${r.what}`, 2);
  }
}
