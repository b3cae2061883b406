/**
 * One kubetls run at a time per PKI: a lock file in pki.dir (its real path, so that two inventories naming one folder,
 * through a symlink or not, take one lock: the PKI is what two runs would break, not the inventory) holding the holder's PID. A second run says
 * who holds it and exits 75 (EX_TEMPFAIL: cron will try again). A lock whose PID is dead is stale: it is taken over
 * with a message. (proper-lockfile judges staleness by mtime; a PID is what an operator can check.)
 *
 * Race-free by construction:
 *   - Taking: the holder's JSON is written to a private temp file first, then hard-linked to the lock's name. link(2)
 *     is atomic and fails with EEXIST when the name exists, so the lock file is never seen empty or half-written, and
 *     exactly one of any number of simultaneous runs gets it.
 *   - Taking over: a run that judged a lock stale first links that lock to a claim name derived from its bytes
 *     (`.kubetls.lock.stale-<hash>`); only one run can create that name, and only it removes the stale lock, after
 *     checking the claim is the very file it judged (same inode, same bytes). Everyone then races for the lock with
 *     link(2) again. So two runs that judged the same lock stale can never remove a lock that one of them just took.
 *   - A lock file that cannot be parsed (written by an older kubetls, or cut short by a full disk) is not stale while
 *     younger than TORN_GRACE_MS: its writer may still be at work. Older, it is taken over like a dead holder's.
 *   - A claim left behind by a run killed in the microseconds between creating and removing it is removed once it is
 *     older than CLAIM_GRACE_MS, with a warning, so that a crash there cannot block every later run.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, linkSync, lstatSync, openSync, readFileSync, realpathSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { ExitError } from './cli.ts';
import { log, shown } from './log.ts';
import { ensureDir } from './pki/dir.ts';

interface Holder { pid: number; host: string; since: string; command: string }

/** `.kubetls.lock` in the real path of pki.dir (as written when the folder does not exist yet). */
export const lockPath = (inv: { pki: { dir: string } }) => {
  let dir = inv.pki.dir;
  try { dir = realpathSync(dir); } catch { /* not made yet */ }
  return path.join(dir, '.kubetls.lock');
};

/** How long an unparseable lock file is assumed to be still being written. */
export const TORN_GRACE_MS = 5_000;
/** How old a takeover claim must be before its creator is assumed dead. */
export const CLAIM_GRACE_MS = 30_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One file as it is now: bytes and identity read through one descriptor, so they belong to the same file. */
interface Seen { raw: Buffer; dev: number; ino: number; mtimeMs: number; holder?: Holder }

function look(file: string): Seen | undefined {
  let fd: number;
  try { fd = openSync(file, 'r'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const st = fstatSync(fd);
    const raw = readFileSync(fd);
    let holder: Holder | undefined;
    try {
      const h = JSON.parse(raw.toString('utf8')) as Holder;
      if (Number.isInteger(h?.pid) && typeof h.host === 'string') holder = h;
    } catch { /* torn, empty or foreign */ }
    return { raw, dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, holder };
  } finally {
    closeSync(fd);
  }
}

const code = (e: unknown) => (e as NodeJS.ErrnoException).code;

/**
 * Remove `file` only if it is still the lock judged stale in `seen`; true when this run removed it. See the header
 * for why the claim makes this safe against other runs taking over at the same moment.
 */
function removeStale(file: string, seen: Seen): boolean {
  const claim = `${file}.stale-${createHash('sha256').update(seen.raw).update(`${seen.dev}:${seen.ino}`).digest('hex').slice(0, 16)}`;
  try {
    linkSync(file, claim);
  } catch (e) {
    if (code(e) === 'EEXIST') {
      // another run is removing this very lock right now, or died doing so long ago
      try {
        if (Date.now() - lstatSync(claim).ctimeMs > CLAIM_GRACE_MS) {
          log.warn(`removing ${shown(claim)}, left by a run that died while taking over a stale lock`);
          rmSync(claim, { force: true });
        }
      } catch { /* gone meanwhile */ }
      return false;
    }
    if (code(e) === 'ENOENT') return false; // already removed
    throw e;
  }
  try {
    const now = look(claim);
    // The name may already hold a new lock (the stale one was removed by another run meanwhile): leave that alone.
    if (!now || now.dev !== seen.dev || now.ino !== seen.ino || !now.raw.equals(seen.raw)) return false;
    unlinkSync(file); // still the stale lock: nobody else can remove it while we hold the claim
    return true;
  } catch (e) {
    if (code(e) === 'ENOENT') return false;
    throw e;
  } finally {
    rmSync(claim, { force: true });
  }
}

/**
 * Take the lock or throw ExitError(75). Released by the returned function, or when the process exits. pki.dir is made
 * first when missing, by the rule every writer of it follows (lib/pki/dir.ts): a folder that is not kubetls's to use is
 * refused (exit 2) before any lock is taken in it.
 */
export function acquireLock(inv: { pki: { dir: string } }, command: string): () => void {
  ensureDir(inv.pki.dir);
  const file = lockPath(inv);
  const me: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), command };
  const body = Buffer.from(`${JSON.stringify(me)}\n`);
  const tmp = `${file}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, body, { flag: 'wx', mode: 0o644 }); // complete before the lock's name ever points at it
  try {
    for (let tries = 0; tries < 5; tries++) {
      try {
        linkSync(tmp, file);
        return held(file, body);
      } catch (e) {
        if (code(e) !== 'EEXIST') throw e;
      }
      const seen = look(file);
      if (!seen) continue; // released meanwhile: race again
      const h = seen.holder;
      if (!h && Date.now() - seen.mtimeMs < TORN_GRACE_MS) {
        throw new ExitError(`${shown(file)} is being written by another run (it cannot be read yet); try again later`, 75);
      }
      if (h && h.host !== me.host) {
        throw new ExitError(`${shown(file)} is held by pid ${h.pid} on ${h.host} since ${h.since}; remove it if that run is gone`, 75);
      }
      if (h && alive(h.pid)) {
        throw new ExitError(`another kubetls run holds ${shown(file)}: pid ${h.pid} (${h.command}) since ${h.since}; try again later`, 75);
      }
      if (removeStale(file, seen)) {
        log.warn(`taking over the stale lock ${shown(file)}${h ? ` of pid ${h.pid} (${h.command}, since ${h.since}), which is no longer running`
          : `, which could not be read and is ${Math.round((Date.now() - seen.mtimeMs) / 1000)} s old`}`);
      }
      // whoever removed it, the next link(2) decides who holds the lock now
    }
    throw new ExitError(`could not take ${shown(file)}: other runs kept taking it; try again later`, 75);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The release function of a lock we hold: removes the file only while it is still ours. */
function held(file: string, body: Buffer): () => void {
  const release = () => {
    process.removeListener('exit', release);
    try {
      if (look(file)?.raw.equals(body)) unlinkSync(file);
    } catch { /* already gone */ }
  };
  process.once('exit', release);
  return release;
}
