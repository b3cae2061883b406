import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs, { existsSync, linkSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { hostname } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import test from 'ava';
import { ExitError } from '../lib/cli.ts';
import { acquireLock, lockPath } from '../lib/lock.ts';
import { configureLog } from '../lib/log.ts';
import { repoRoot, tempDir } from './helpers/inventory.ts';

const logs: string[] = [];
configureLog({ sink: (s) => logs.push(s), tty: false });

/** An inventory whose PKI folder is a fresh temp folder (the lock lives in pki.dir). */
const fresh = () => { const dir = tempDir('kubetls-lock-'); return { file: path.join(dir, 'cluster.yaml'), pki: { dir } }; };
const holder = (pid: number, since: string, host = hostname()) => `${JSON.stringify({ pid, host, since, command: 'renew.ts' })}\n`;

async function deadPid(): Promise<number> {
  const p = spawn('true');
  await new Promise((r) => p.on('exit', r));
  return p.pid!;
}

/** One node process running test/helpers/lock-racer.ts, answering one line per command. */
class Racer {
  readonly p: ChildProcess;
  private lines: string[] = [];
  private waiting: ((l: string) => void)[] = [];
  constructor(file: string, env: Record<string, string> = {}) {
    this.p = spawn(process.execPath, ['--import=tsx', path.join(repoRoot, 'test/helpers/lock-racer.ts'), file],
      { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    createInterface({ input: this.p.stdout! }).on('line', (l) => { const w = this.waiting.shift(); if (w) w(l); else this.lines.push(l); });
  }
  next(): Promise<string> {
    const l = this.lines.shift();
    return l !== undefined ? Promise.resolve(l) : new Promise((r) => this.waiting.push(r));
  }
  send(s: string): void { this.p.stdin!.write(`${s}\n`); }
}

/** 8 processes, 40 rounds, each round starting at one instant; every other round starts on a dead run's lock. */
export async function race(file: string, env: Record<string, string> = {}, rounds = 40) {
  const racers = Array.from({ length: 8 }, () => new Racer(file, env));
  const dead = await deadPid();
  const winners: number[] = [];
  const problems: string[] = [];
  try {
    await Promise.all(racers.map((r) => r.next())); // ready
    for (let round = 0; round < rounds; round++) {
      if (round % 2) writeFileSync(lockPath({ pki: { dir: path.dirname(file) } }), holder(dead, `round ${round}`));
      const at = Date.now() + 60;
      racers.forEach((r) => r.send(`go ${at}`));
      const answers = await Promise.all(racers.map((r) => r.next()));
      const won = answers.flatMap((a, i) => (a === 'won' ? [i] : []));
      winners.push(won.length);
      const odd = answers.filter((a) => a !== 'won' && a !== 'lost 75');
      if (odd.length) problems.push(`round ${round}: ${odd.join(', ')}`);
      if (won.length === 1 && (JSON.parse(readFileSync(lockPath({ pki: { dir: path.dirname(file) } }), 'utf8')) as { pid: number }).pid !== racers[won[0]].p.pid) problems.push(`round ${round}: the lock file names another pid than the winner`);
      for (const i of won) racers[i].send('release');
      await Promise.all(won.map((i) => racers[i].next()));
    }
  } finally {
    for (const r of racers) r.p.kill();
  }
  return { winners, problems, left: readdirSync(path.dirname(file)) };
}

test('8 processes racing for the lock in the same millisecond: exactly one holds it in each of 40 rounds, also when they race to take over a dead run\'s lock', async (t) => {
  t.timeout(60_000);
  const { file } = fresh();
  const { winners, problems, left } = await race(file);
  t.deepEqual(winners, Array(40).fill(1), `holders per round: ${winners.join(' ')}`);
  t.deepEqual(problems, []);
  t.deepEqual(left, [], 'no lock, temp file or claim is left behind once everyone released');
});

test('a lock whose process is dead is taken over with a message naming it', (t) => {
  return deadPid().then((pid) => {
    const inv = fresh();
    writeFileSync(lockPath(inv), holder(pid, '2026-01-01T00:00:00Z'));
    const release = acquireLock(inv, 'test');
    t.is((JSON.parse(readFileSync(lockPath(inv), 'utf8')) as { pid: number }).pid, process.pid);
    t.true(logs.some((l) => l.includes(`taking over the stale lock`) && l.includes(`of pid ${pid} (renew.ts, since 2026-01-01T00:00:00Z), which is no longer running`)));
    release();
    t.false(existsSync(lockPath(inv)));
  });
});

test('a lock whose process lives gives exit 75 naming its pid, and the lock is left as it was', async (t) => {
  const sleeper = spawn('sleep', ['30']);
  try {
    const inv = fresh();
    const before = holder(sleeper.pid!, '2026-01-01T00:00:00Z');
    writeFileSync(lockPath(inv), before);
    const e = t.throws(() => acquireLock(inv, 'test'), { instanceOf: ExitError });
    t.is(e.code, 75);
    t.regex(e.message, new RegExp(`another kubetls run holds .*\\.kubetls\\.lock: pid ${sleeper.pid} \\(renew\\.ts\\)`));
    t.is(readFileSync(lockPath(inv), 'utf8'), before);
    const other = fresh(); // held on another machine sharing the folder: never judged by our PID table
    writeFileSync(lockPath(other), holder(await deadPid(), 'x', 'elsewhere'));
    const e2 = t.throws(() => acquireLock(other, 'test'), { instanceOf: ExitError });
    t.is(e2.code, 75);
    t.regex(e2.message, /held by pid \d+ on elsewhere .*remove it if that run is gone/);
  } finally {
    sleeper.kill();
  }
});

test('an empty lock file is not stale while it may still be being written (exit 75), and is taken over once older than 5 s', (t) => {
  const inv = fresh();
  writeFileSync(lockPath(inv), '');
  const e = t.throws(() => acquireLock(inv, 'test'), { instanceOf: ExitError });
  t.is(e.code, 75);
  t.regex(e.message, /is being written by another run/);
  t.true(existsSync(lockPath(inv)));
  const old = new Date(Date.now() - 10_000);
  utimesSync(lockPath(inv), old, old);
  const release = acquireLock(inv, 'test');
  t.true(logs.some((l) => /taking over the stale lock .*, which could not be read and is 1\d s old/.test(l)));
  release();
});

test('a stale lock that another run is taking over right now (its claim exists) is not removed a second time', async (t) => {
  const inv = fresh();
  const file = lockPath(inv);
  writeFileSync(file, holder(await deadPid(), 'x'));
  const st = statSync(file);
  const raw = readFileSync(file);
  // the claim name the other run created (lib/lock.ts removeStale), pointing at the stale lock
  linkSync(file, `${file}.stale-${createHash('sha256').update(raw).update(`${st.dev}:${st.ino}`).digest('hex').slice(0, 16)}`);
  logs.length = 0;
  t.like(t.throws(() => acquireLock(inv, 'test'), { instanceOf: ExitError }), { code: 75 });
  t.deepEqual(readFileSync(file), raw);
  t.false(logs.some((l) => l.includes('taking over')), 'no run claims to have taken over a lock it left alone');
});

// ---- the lock's refusals and its clean-up, each fed its case -------------------------------------------------

test('the lock file is 0644 whatever the umask: others may read who holds it, never rewrite it', (t) => {
  const inv = fresh();
  const old = process.umask(0); // acquireLock is synchronous: no other test of this worker runs in between
  let release: () => void;
  try { release = acquireLock(inv, 'test'); } finally { process.umask(old); }
  t.is(statSync(lockPath(inv)).mode & 0o777, 0o644);
  release();
});

test('a run that exits without calling release leaves no lock behind, and release leaves no exit listener behind', async (t) => {
  const inv = fresh();
  const code = `const { acquireLock } = await import(${JSON.stringify(path.join(repoRoot, 'lib/lock.ts'))});
acquireLock({ pki: { dir: ${JSON.stringify(inv.pki.dir)} } }, 'child'); console.log('took');`;
  const child = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', code], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  await new Promise((r) => child.on('exit', r));
  t.is(out.trim(), 'took');
  t.deepEqual(readdirSync(path.dirname(inv.file)), [], 'no lock and no temp file');
  const listeners = process.listenerCount('exit');
  const release = acquireLock(inv, 'test');
  t.is(process.listenerCount('exit'), listeners + 1);
  release();
  t.is(process.listenerCount('exit'), listeners);
});

test('a lock file that is JSON but names no holder (pid not an integer, or no host) is treated as torn, not as a holder', (t) => {
  for (const body of [JSON.stringify({ pid: '1', host: hostname() }), JSON.stringify({ pid: 1 }), 'null']) {
    const inv = fresh();
    writeFileSync(lockPath(inv), body);
    const e = t.throws(() => acquireLock(inv, 'test'), { instanceOf: ExitError });
    t.is(e.code, 75, body);
    t.regex(e.message, /is being written by another run/, body);
  }
});

test('a lock name that cannot be opened (a symlink loop) is an error, never reported as held or taken over', (t) => {
  const inv = fresh();
  symlinkSync('.kubetls.lock', lockPath(inv)); // points at itself: open(2) says ELOOP
  const e = t.throws(() => acquireLock(inv, 'test'));
  t.false(e instanceof ExitError, e.message);
  t.regex((e as NodeJS.ErrnoException).code ?? '', /ELOOP/);
  t.deepEqual(readdirSync(path.dirname(inv.file)), ['.kubetls.lock'], 'no temp file left');
});

test('a takeover claim older than 30 s (its run died) is removed with a warning, and the stale lock is then taken over', async (t) => {
  const inv = fresh();
  const file = lockPath(inv);
  writeFileSync(file, holder(await deadPid(), 'x'));
  const st = statSync(file);
  const claim = `${file}.stale-${createHash('sha256').update(readFileSync(file)).update(`${st.dev}:${st.ino}`).digest('hex').slice(0, 16)}`;
  linkSync(file, claim);
  const now = Date.now;
  Date.now = () => now() + 31_000; // the claim's ctime cannot be set back, so the clock goes forward
  logs.length = 0;
  let release: () => void;
  try { release = acquireLock(inv, 'test'); } finally { Date.now = now; }
  t.true(logs.some((l) => l.includes('removing') && l.includes(path.basename(claim)) && l.includes('left by a run that died while taking over a stale lock')), logs.join('\n'));
  t.like(JSON.parse(readFileSync(file, 'utf8')), { pid: process.pid, command: 'test' });
  release();
  t.deepEqual(readdirSync(path.dirname(file)), [], 'no claim left');
});

/**
 * Runs acquireLock with fs.linkSync wrapped so that `meanwhile` runs just before the claim link of a takeover: the
 * moment another run may have replaced the stale lock. lib/lock.ts imports linkSync by name; syncBuiltinESMExports
 * makes that name see the wrapper.
 */
function withRaceAtClaim<T>(meanwhile: (file: string) => void, run: () => T): T {
  const real = fs.linkSync;
  fs.linkSync = ((from: fs.PathLike, to: fs.PathLike) => {
    if (String(to).includes('.stale-')) meanwhile(String(from));
    return real(from, to);
  }) as typeof fs.linkSync;
  syncBuiltinESMExports();
  try { return run(); } finally { fs.linkSync = real; syncBuiltinESMExports(); }
}

test('a stale lock replaced by a live run\'s lock just before our takeover claim is left alone: exit 75, never removed', async (t) => {
  const sleeper = spawn('sleep', ['30']);
  try {
    const live = holder(sleeper.pid!, 'now');
    for (const how of ['a new file', 'rewritten in place'] as const) {
      const inv = fresh();
      const dead = await deadPid();
      writeFileSync(lockPath(inv), holder(dead, 'then'));
      const e = withRaceAtClaim((f) => {
        if (how === 'a new file') { rmSync(f); writeFileSync(f, live); } else writeFileSync(f, live); // same inode, new bytes
      }, () => t.throws(() => acquireLock(inv, 'test'), { instanceOf: ExitError }));
      t.is(e?.code, 75, how);
      t.regex(e?.message ?? '', new RegExp(`pid ${sleeper.pid} \\(renew\\.ts\\)`), how);
      t.is(readFileSync(lockPath(inv), 'utf8'), live, how);
      t.deepEqual(readdirSync(path.dirname(inv.file)), ['.kubetls.lock'], `${how}: no claim or temp file left`);
      t.false(logs.some((l) => l.includes(`taking over the stale lock`) && l.includes(`of pid ${dead} `)), `${how}: no takeover claimed of a lock that was not removed`);
    }
  } finally {
    sleeper.kill();
  }
});

/**
 * Runs `run` with fs.linkSync / fs.unlinkSync replaced by `fake` (which gets the real function), to put another run's
 * move between two of our syscalls. lib/lock.ts imports them by name; syncBuiltinESMExports makes those names see it.
 */
function withFs<T>(fake: { linkSync?: (real: typeof fs.linkSync, from: string, to: string) => void; unlinkSync?: (real: typeof fs.unlinkSync, p: string) => void }, run: () => T): T {
  const realLink = fs.linkSync;
  const realUnlink = fs.unlinkSync;
  if (fake.linkSync) fs.linkSync = ((from: fs.PathLike, to: fs.PathLike) => fake.linkSync!(realLink, String(from), String(to))) as typeof fs.linkSync;
  if (fake.unlinkSync) fs.unlinkSync = ((p: fs.PathLike) => fake.unlinkSync!(realUnlink, String(p))) as typeof fs.unlinkSync;
  syncBuiltinESMExports();
  try { return run(); } finally { fs.linkSync = realLink; fs.unlinkSync = realUnlink; syncBuiltinESMExports(); }
}
const errno = (code: string) => Object.assign(new Error(`${code}: injected`), { code });
const isLockLink = (to: string) => to.endsWith('.kubetls.lock');

test('a lock released between our link and our look is raced for again and taken; one that keeps coming and going ends in exit 75 after 5 tries', (t) => {
  const inv = fresh();
  let fakes = 1; // the first link(2) says EEXIST, as if another run held the lock and released it at once
  const release = withFs({ linkSync: (real, from, to) => { if (isLockLink(to) && fakes-- > 0) throw errno('EEXIST'); real(from, to); } }, () => acquireLock(inv, 'test'));
  t.like(JSON.parse(readFileSync(lockPath(inv), 'utf8')), { pid: process.pid, command: 'test' });
  release();
  let tries = 0;
  const e = withFs({ linkSync: (real, from, to) => { if (isLockLink(to)) { tries++; throw errno('EEXIST'); } real(from, to); } },
    () => t.throws(() => acquireLock(inv, 'test'), { instanceOf: ExitError }));
  t.is(e?.code, 75);
  t.regex(e?.message ?? '', /^could not take \S*\.kubetls\.lock: other runs kept taking it; try again later$/);
  t.is(tries, 5);
  t.deepEqual(readdirSync(path.dirname(inv.file)), [], 'no temp file left');
});

test('a link(2) that fails otherwise (no hard links on this filesystem, no permission) is that error, never "held" or "could not take"', async (t) => {
  const inv = fresh();
  const e = withFs({ linkSync: (real, from, to) => { if (isLockLink(to)) throw errno('EPERM'); real(from, to); } }, () => t.throws(() => acquireLock(inv, 'test')));
  t.is((e as NodeJS.ErrnoException).code, 'EPERM');
  writeFileSync(lockPath(inv), holder(await deadPid(), 'then')); // a stale lock: the claim link fails the same way
  const e2 = withFs({ linkSync: (real, from, to) => { if (to.includes('.stale-')) throw errno('EPERM'); real(from, to); } }, () => t.throws(() => acquireLock(inv, 'test')));
  t.is((e2 as NodeJS.ErrnoException).code, 'EPERM');
  t.true(existsSync(lockPath(inv)), 'the stale lock is left for the operator');
});

test('a stale lock removed by another run under our claim or our unlink is raced for again; any other error there is an error', async (t) => {
  // each says ENOENT once, as if another run had removed the stale lock a moment before
  const fakes = {
    'the claim link': (once: () => boolean) => ({ linkSync: (real: typeof fs.linkSync, from: string, to: string) => { if (to.includes('.stale-') && once()) throw errno('ENOENT'); real(from, to); } }),
    'the unlink': (once: () => boolean) => ({ unlinkSync: (real: typeof fs.unlinkSync, p: string) => { if (isLockLink(p) && once()) throw errno('ENOENT'); real(p); } }),
  };
  for (const [what, fake] of Object.entries(fakes)) {
    let left = 1;
    const inv = fresh();
    writeFileSync(lockPath(inv), holder(await deadPid(), 'then'));
    logs.length = 0;
    const release = withFs(fake(() => left-- > 0), () => acquireLock(inv, 'test'));
    t.like(JSON.parse(readFileSync(lockPath(inv), 'utf8')), { pid: process.pid }, what);
    t.is(logs.filter((l) => l.includes('taking over the stale lock')).length, 1, `${what}: only the run that removed it says it took it over`);
    release();
    t.deepEqual(readdirSync(path.dirname(inv.file)), [], `${what}: no claim or temp file left`);
  }
  const inv = fresh();
  writeFileSync(lockPath(inv), holder(await deadPid(), 'then'));
  const e = withFs({ unlinkSync: (real, p) => { if (isLockLink(p)) throw errno('EACCES'); real(p); } }, () => t.throws(() => acquireLock(inv, 'test')));
  t.is((e as NodeJS.ErrnoException).code, 'EACCES');
  t.deepEqual(readdirSync(path.dirname(inv.file)), ['.kubetls.lock'], 'no claim or temp file left');
});

test('refused attempts leave no file descriptor open', (t) => {
  const inv = fresh();
  const release = acquireLock(inv, 'first');
  const open = () => readdirSync('/proc/self/fd').length;
  const before = open();
  for (let i = 0; i < 20; i++) t.throws(() => acquireLock(inv, 'second'), { instanceOf: ExitError });
  t.is(open(), before);
  release();
});

// ---- the lock protects pki.dir: two inventories that name one PKI folder take one lock ---------------------------------

test('two inventories in different folders that name the same pki.dir (one through a symlink) cannot run at once', async (t) => {
  const { mkdirSync } = await import('node:fs');
  const { writeInventory } = await import('./helpers/inventory.ts');
  const { runScript } = await import('./helpers/run.ts');
  const base = tempDir('kubetls-lock-two-');
  const pki = path.join(base, 'shared', 'pki');
  mkdirSync(pki, { recursive: true, mode: 0o700 });
  symlinkSync(path.join(base, 'shared'), path.join(base, 'via-link'));
  // cron's inventory names the folder, the operator's copy names it through a link to its parent
  const cron = writeInventory({ pki: { dir: pki } }, (() => { const d = path.join(base, 'etc'); mkdirSync(d); return d; })());
  const mine = writeInventory({ pki: { dir: path.join(base, 'via-link', 'pki') } }, (() => { const d = path.join(base, 'home'); mkdirSync(d); return d; })());
  const { loadInventory } = await import('../lib/inventory/load.ts');
  t.is(lockPath(loadInventory(cron)), lockPath(loadInventory(mine)), 'one lock file, in the folder itself');
  t.is(lockPath(loadInventory(cron)), path.join(pki, '.kubetls.lock'));
  const release = acquireLock(loadInventory(cron), 'renew.ts');
  try {
    const r = await runScript('master.ts', ['--pki-only', '--inventory', mine]);
    t.is(r.code, 75, r.all);
    t.regex(r.stderr, new RegExp(`another kubetls run holds .*shared/pki/\\.kubetls\\.lock: pid ${process.pid} \\(renew\\.ts\\)`));
    t.deepEqual(readdirSync(pki), ['.kubetls.lock'], 'nothing was written in the PKI');
  } finally {
    release();
  }
  // and neither inventory's own folder holds a lock any more
  t.false(readdirSync(path.dirname(cron)).includes('.kubetls.lock'));
  t.false(readdirSync(path.dirname(mine)).includes('.kubetls.lock'));
});

test('a pki.dir that is not kubetls\'s to use is refused (exit 2) before any lock is taken in it', async (t) => {
  const { writeInventory } = await import('./helpers/inventory.ts');
  const { runScript } = await import('./helpers/run.ts');
  const base = tempDir('kubetls-lock-link-');
  const target = tempDir('kubetls-lock-target-');
  symlinkSync(target, path.join(base, 'pki'));
  const file = writeInventory({}, base);
  const r = await runScript('renew.ts', ['--inventory', file]);
  t.is(r.code, 2, r.all);
  t.regex(r.stderr, /pki\.dir \S+ is a symlink/);
  t.deepEqual(readdirSync(target), [], 'no lock, no temp file written through the link');
});
