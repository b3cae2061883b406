/**
 * The shell scripts lib/remote.ts runs on a host, run here with the real /bin/sh and coreutils on folders made for the
 * test (under /run, root's): the folder proof must refuse a link to a folder another user owns, also when the last
 * component does not exist yet (realpath -m), and accept a folder that only root can change.
 */
import test from 'ava';
import { execa } from 'execa';
import { chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MAX_READ, dirProblem, dirScript, parseDirs, parseSurvey, surveyScript, type SurveyQuery } from '../lib/remote.ts';

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
  const r = await execa('sh', ['-c', `LC_ALL=C; export LC_ALL\n${surveyScript(q)}`]);
  return parseSurvey(q, r.stdout, 'testhost');
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

test('a survey answer with a section missing is refused, not read as empty', (t) => {
  const q: SurveyQuery = { dirs: [], paths: ['/srv/kubernetes/ca.crt'], read: [], list: '/var/lib/kubetls' };
  t.throws(() => parseSurvey(q, '@@users\n@@dirs\n@@tmp\n@@list\n', 'h'), { message: /no inspect section/ });
  t.throws(() => parseSurvey({ ...q, read: ['/etc/kubernetes/kubelet'] }, '@@users\n@@dirs\n@@tmp\n@@inspect\n@@list\n', 'h'), { message: /0 of 1 files read/ });
});
