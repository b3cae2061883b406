/**
 * The shell scripts lib/remote.ts runs on a host, run here with the real /bin/sh and coreutils on folders made for the
 * test (under /run, root's): the folder proof must refuse a link to a folder another user owns, also when the last
 * component does not exist yet (realpath -m), and accept a folder that only root can change.
 */
import test from 'ava';
import { execa } from 'execa';
import { chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { dirProblem, dirScript, parseDirs } from '../lib/remote.ts';

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
