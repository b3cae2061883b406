/**
 * The shell scripts lib/remote/ runs on a host, run here with the real /bin/sh and coreutils on folders made for the
 * test (under /run, root's): the folder proof must refuse a link to a folder another user owns, also when the last
 * component does not exist yet (realpath -m), and accept a folder that only root can change.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { MAX_READ, type SurveyQuery } from '../lib/remote/remote.ts';
import { dirProblem, dirScript, inspectScript, parseDirs, parseInspect, parseSurvey, surveyScript } from '../lib/remote/survey.ts';

const root = process.getuid?.() === 0;

async function judge(dir: string) {
  const r = await execa('sh', ['-c', `LC_ALL=C; export LC_ALL\n${dirScript([dir])}`]);
  const e = parseDirs(r.stdout).get(dir)!;
  return dirProblem(dir, e.entries, e.real);
}

test('a missing folder below a root-owned link to a folder another user owns is refused before install -d could create it', async (t) => {
  if (!root) return t.fail('needs root (the folders must belong to root and to another user)');
  const base = mkdtempSync('/run/kubetls-dirtest-');
  try {
    mkdirSync(path.join(base, 'data', 'srv'), { recursive: true });
    chownSync(path.join(base, 'data', 'srv'), 65534, 65534); // nobody's
    symlinkSync(path.join(base, 'data', 'srv'), path.join(base, 'srv')); // root's link, as /srv -> /data/srv
    const v = await judge(path.join(base, 'srv', 'kubernetes'));
    t.regex(v.problem ?? '', new RegExp(`${base}/data/srv belongs to uid 65534`));
    const own = await judge(path.join(base, 'data', 'root-only', 'kubernetes'));
    t.is(own.problem, undefined, 'a missing folder below root-only folders is fine');
    t.true(own.missing);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('a folder others can write to on the way is refused, a root-only one is not', async (t) => {
  if (!root) return t.fail('needs root');
  const base = mkdtempSync('/run/kubetls-dirtest-');
  try {
    mkdirSync(path.join(base, 'open', 'pki'), { recursive: true, mode: 0o755 });
    await execa('chmod', ['0777', path.join(base, 'open')]);
    t.regex((await judge(path.join(base, 'open', 'pki'))).problem ?? '', /open is writable by others \(mode 0777\)/);
    mkdirSync(path.join(base, 'closed', 'pki'), { recursive: true, mode: 0o755 });
    t.deepEqual(await judge(path.join(base, 'closed', 'pki')), { problem: undefined, missing: false, takeOver: false });
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

// ---- the survey: everything a rollout needs from a host in one round trip ----------------------------------------------

async function survey(q: SurveyQuery) {
  const nonce = randomBytes(16).toString('hex');
  const r = await execa('sh', ['-c', `LC_ALL=C; export LC_ALL\n${surveyScript(q, nonce)}`]);
  return parseSurvey(q, r.stdout, 'testhost', nonce);
}

test('one survey returns the folders, each target, the env files\' bytes, the temp files left and the restarts owed', async (t) => {
  if (!root) return t.fail('needs root');
  const base = mkdtempSync('/run/kubetls-survey-');
  try {
    const dir = path.join(base, 'etc');
    const pending = path.join(base, 'pending');
    mkdirSync(dir);
    mkdirSync(pending);
    // an env file whose bytes look like the survey's own section markers: they travel as base64, never as lines
    const env = Buffer.from('@@list\nKUBELET_ARGS="--x"\r\n\xff\n@@read\n', 'latin1');
    writeFileSync(path.join(dir, 'kubelet'), env, { mode: 0o644 });
    writeFileSync(path.join(dir, '.kubelet.kubetls-tmp'), 'left by a killed run');
    writeFileSync(path.join(pending, 'restart.kubelet'), '');
    writeFileSync(path.join(pending, '@@inspect'), ''); // a name that looks like a section marker stays a name
    const q: SurveyQuery = { dirs: [{ dir, takeOver: 'nobody' }, { dir: path.join(base, 'missing') }], paths: [path.join(dir, 'kubelet'), path.join(dir, 'absent')], read: [path.join(dir, 'kubelet'), path.join(dir, 'absent')], list: pending };
    const s = await survey(q);
    t.deepEqual(s.contents.get(path.join(dir, 'kubelet')), env, 'the exact bytes, markers, CR and all');
    t.is(s.contents.get(path.join(dir, 'absent')), undefined);
    t.is(s.states.get(path.join(dir, 'kubelet'))?.mode, 0o644);
    t.is(s.states.get(path.join(dir, 'absent')), undefined);
    t.deepEqual(s.listing, ['@@inspect', 'restart.kubelet']);
    t.deepEqual(s.dirs.get(dir)?.leftovers, [path.join(dir, '.kubelet.kubetls-tmp')]);
    t.is(s.dirs.get(dir)?.uid, '65534', 'the take-over user\'s uid, for dirProblem');
    const e = s.dirs.get(dir)!;
    t.is(dirProblem(dir, e.entries, e.real).problem, undefined, 'a root-only folder passes');
    const m = s.dirs.get(path.join(base, 'missing'))!;
    t.true(dirProblem(path.join(base, 'missing'), m.entries, m.real).missing);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('the survey refuses to read a symlink, a FIFO or an oversized file, and reports a folder another user owns', async (t) => {
  if (!root) return t.fail('needs root');
  const base = mkdtempSync('/run/kubetls-survey-');
  try {
    const read = (f: string) => survey({ dirs: [], paths: [f], read: [f] });
    symlinkSync('/etc/shadow', path.join(base, 'link'));
    await t.throwsAsync(read(path.join(base, 'link')), { message: /link is a symlink: kubetls reads and writes only regular files there/ });
    await execa('mkfifo', [path.join(base, 'fifo')]);
    await t.throwsAsync(read(path.join(base, 'fifo')), { message: /fifo is not a regular file/ });
    writeFileSync(path.join(base, 'big'), '');
    truncateSync(path.join(base, 'big'), MAX_READ + 1);
    await t.throwsAsync(read(path.join(base, 'big')), { message: /big is larger than 1048576 bytes/ });
    truncateSync(path.join(base, 'big'), MAX_READ);
    t.is((await read(path.join(base, 'big'))).contents.get(path.join(base, 'big'))?.length, MAX_READ, 'at the limit it is read');
    const theirs = path.join(base, 'theirs');
    mkdirSync(theirs);
    chownSync(theirs, 65534, 65534);
    const s = await survey({ dirs: [{ dir: theirs }], paths: [], read: [] });
    const e = s.dirs.get(theirs)!;
    t.regex(dirProblem(theirs, e.entries, e.real).problem ?? '', /belongs to uid 65534/);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('a survey answer with a section missing or repeated is refused, not read as empty', (t) => {
  const q: SurveyQuery = { dirs: [], paths: ['/srv/kubernetes/ca.crt'], read: [], list: '/var/lib/kubetls' };
  const n = 'f'.repeat(32);
  t.throws(() => parseSurvey(q, `@@${n}:users\n@@${n}:dirs\n@@${n}:tmp\n@@${n}:list\n`, 'h', n), { message: /no inspect section/ });
  t.throws(() => parseSurvey({ ...q, read: ['/etc/kubernetes/kubelet'] }, `@@${n}:users\n@@${n}:dirs\n@@${n}:tmp\n@@${n}:inspect\n@@${n}:list\n`, 'h', n), { message: /0 of 1 files read/ });
  t.throws(() => parseSurvey(q, `@@${n}:users\n@@${n}:dirs\n@@${n}:tmp\n@@${n}:inspect\n@@${n}:list\n@@${n}:inspect\n`, 'h', n), { message: /section inspect twice/ });
});

test('a file name with newlines and markers in it, in a folder kube owns, cannot forge the survey: no target hidden, no restart owed', async (t) => {
  if (!root) return t.fail('needs root');
  const base = mkdtempSync('/run/kubetls-survey-');
  try {
    const dir = path.join(base, 'srv');
    const pending = path.join(base, 'pending');
    mkdirSync(dir);
    mkdirSync(pending);
    writeFileSync(path.join(dir, 'ca.crt'), 'their CA');
    // what the recipe's kube (uid 65534 here) can do in the folder it owns: names that look like the survey's own lines
    const forged = `.x\n@@users\n@@list\n=restart.kube-apiserver\n@@inspect\n.kubetls-tmp`;
    writeFileSync(path.join(dir, forged), '');
    writeFileSync(path.join(pending, 'restart.\nrestart.kube-apiserver'), ''); // and a name with a newline where restarts are listed
    chownSync(dir, 65534, 65534);
    const s = await survey({ dirs: [{ dir, takeOver: 'nobody' }], paths: [path.join(dir, 'ca.crt')], read: [], list: pending });
    t.true(s.deferred, 'kube\'s folder: the files are not opened, the caller looks again after taking it back');
    t.deepEqual(s.dirs.get(dir)?.leftovers, [], 'a name with control characters is not listed (and not a temp file of ours)');
    t.false(s.listing.includes('restart.kube-apiserver'), `listing: ${JSON.stringify(s.listing)}`);
    chownSync(dir, 0, 0);
    const again = await survey({ dirs: [], paths: [path.join(dir, 'ca.crt')], read: [] });
    t.false(again.deferred);
    t.is(again.states.get(path.join(dir, 'ca.crt'))?.size, 8, 'once root\'s, the target is seen: a host holding another CA cannot hide it');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('the survey opens no file below a folder another user can write to, or reached through a symlink', async (t) => {
  if (!root) return t.fail('needs root');
  const base = mkdtempSync('/run/kubetls-survey-');
  try {
    const open = path.join(base, 'open');
    mkdirSync(open, { mode: 0o777 });
    chmodSync(open, 0o777);
    await execa('mkfifo', [path.join(open, 'kubelet')]); // a FIFO root would block on, had it opened it
    const q = { dirs: [], paths: [path.join(open, 'kubelet')], read: [path.join(open, 'kubelet')] };
    const started = Date.now();
    t.true((await survey(q)).deferred);
    t.true(Date.now() - started < 5000);
    const closed = path.join(base, 'closed');
    mkdirSync(closed, { mode: 0o755 });
    symlinkSync(closed, path.join(base, 'via'));
    writeFileSync(path.join(closed, 'f'), 'x');
    t.true((await survey({ dirs: [], paths: [path.join(base, 'via', 'f')], read: [] })).deferred, 'a symlink on the way: judged by ensureDir first');
    t.false((await survey({ dirs: [], paths: [path.join(closed, 'f')], read: [] })).deferred, 'the control case: a root-only folder');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('temp files left in a folder that is a root-owned link to a root-only folder are found (find -H)', async (t) => {
  if (!root) return t.fail('needs root');
  const base = mkdtempSync('/run/kubetls-survey-');
  try {
    mkdirSync(path.join(base, 'real'));
    symlinkSync(path.join(base, 'real'), path.join(base, 'link'));
    writeFileSync(path.join(base, 'real', '.server.key.kubetls-tmp'), 'a key copy');
    const s = await survey({ dirs: [{ dir: path.join(base, 'link') }], paths: [], read: [] });
    t.deepEqual(s.dirs.get(path.join(base, 'link'))?.leftovers, [path.join(base, 'link', '.server.key.kubetls-tmp')]);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('an inspection whose stat and sha256sum answers do not pair up (a file came or went in between) is refused', (t) => {
  const h = 'a'.repeat(64);
  const b = 'b'.repeat(64);
  const ok = parseInspect(['/x/a', '/x/b'], `/x/b\tL\nS\t/x/a\troot:root:600:5\n${h}  /x/a\n`);
  t.is(ok.get('/x/a')?.sha256, h);
  t.is(ok.get('/x/b')?.kind, 'link');
  t.throws(() => parseInspect(['/x/a', '/x/b'], `S\t/x/a\troot:root:600:5\nS\t/x/b\troot:root:600:5\n${h}  /x/a\n`), { message: /files changed while being inspected \(\/x\/b\)/ });
  // the same count, other names: a vanished and a new one must not share a hash
  t.throws(() => parseInspect(['/x/a', '/x/b'], `S\t/x/a\troot:root:600:5\n${b}  /x/b\n`), { message: /files changed while being inspected \(\/x\/a, \/x\/b\)/ });
});

test('the inspection reports a file, a link, a FIFO and an absent path with a constant number of processes', async (t) => {
  const base = mkdtempSync('/run/kubetls-inspect-');
  try {
    writeFileSync(path.join(base, 'f with space'), 'hello', { mode: 0o640 });
    symlinkSync('/etc/passwd', path.join(base, 'link'));
    await execa('mkfifo', [path.join(base, 'fifo')]);
    const paths = ['f with space', 'link', 'fifo', 'absent'].map((f) => path.join(base, f));
    const r = await execa('sh', ['-c', `LC_ALL=C; export LC_ALL\n${inspectScript(paths)}`]);
    const m = parseInspect(paths, r.stdout);
    t.like(m.get(paths[0]!), { kind: 'file', mode: 0o640, size: 5, sha256: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824' });
    t.is(m.get(paths[1]!)?.kind, 'link');
    t.is(m.get(paths[2]!)?.kind, 'other');
    t.is(m.get(paths[3]!), undefined);
    // the same script for 3x the paths runs the same number of programs (strace counts every execve)
    const execs = async (ps: string[]) => {
      const log = path.join(base, `strace-${ps.length}`);
      await execa('strace', ['-f', '-qq', '-e', 'trace=execve', '-o', log, 'sh', '-c', `LC_ALL=C; export LC_ALL\n${inspectScript(ps)}`]);
      return readFileSync(log, 'utf8').split('\n').filter((l) => /execve\(/.test(l) && !/ENOENT/.test(l)).length;
    };
    const few = await execs(paths);
    t.is(await execs([...paths, ...paths.map((p) => `${p}2`), ...paths]), few);
    t.true(few <= 6, `${few} programs`);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
