/**
 * The lab's preparation (lab/prepare.ts, `npx zx scripts/lab.ts prepare`), the first step of `npm test` and `npm run
 * demo`: on a machine that cannot run the lab it says why in one line and exits 2, and on a ready machine it does
 * nothing. The bad machines are made with programs put first on PATH (a dpkg-query that finds nothing installed, an
 * apt-get that cannot reach its mirror), the way a fresh machine without network answers; nothing is installed.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { PACKAGES } from '../lab/prepare.ts';
import { repoRoot, tempDir } from './helpers/inventory.ts';

const root = process.getuid?.() === 0;

async function prepare(o: { env?: Record<string, string>; uid?: number; args?: string[] } = {}) {
  const argv = [process.execPath, '--import=tsx', path.join(repoRoot, 'scripts/lab.ts'), 'prepare', ...(o.args ?? [])];
  const cmd = o.uid === undefined ? argv : ['setpriv', `--reuid=${o.uid}`, `--regid=${o.uid}`, '--clear-groups', ...argv];
  const r = await execa(cmd[0]!, cmd.slice(1), { cwd: repoRoot, reject: false, stdin: 'ignore', all: true, env: { NODE_OPTIONS: '', HOME: '/tmp', ...o.env } });
  return { code: r.exitCode, lines: (r.all ?? '').split('\n').filter(Boolean) };
}

/** A folder of stand-in programs put first on PATH: each prints `out` and exits with `code`. */
function fakes(programs: Record<string, { out?: string; code?: number }>): string {
  const dir = tempDir('kubetls-prepare-');
  for (const [name, p] of Object.entries(programs)) {
    writeFileSync(path.join(dir, name), `#!/bin/sh\n${p.out ? `/bin/cat <<'OUT'\n${p.out}\nOUT\n` : ''}exit ${p.code ?? 0}\n`);
    chmodSync(path.join(dir, name), 0o755);
  }
  return dir;
}

test('as a user that is not root, prepare exits 2 with one line: the lab needs root', async (t) => {
  if (!root) return t.pass('needs root to run as another user');
  const r = await prepare({ uid: 65534 });
  t.is(r.code, 2);
  t.deepEqual(r.lines, ['lab: the lab needs root (its hosts are systemd-nspawn containers on loopback addresses, with overlay mounts): run it as root']);
});

test('with the lab\'s packages missing and no network to the package mirror, prepare exits 2 with one line saying so', async (t) => {
  if (!root) return t.pass('the root check comes first');
  const bin = fakes({
    'dpkg-query': { out: 'openssl install ok installed', code: 1 }, // the others: "no packages found matching"
    'apt-get': { out: "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Temporary failure resolving 'deb.debian.org'", code: 100 },
  });
  const r = await prepare({ env: { PATH: `${bin}:${process.env.PATH}` } });
  t.is(r.code, 2);
  const last = r.lines.at(-1)!;
  t.regex(last, /^lab: no network to the package mirror: apt-get update failed \(exit 100: .*Temporary failure resolving 'deb\.debian\.org'.*\); the lab needs openssh-server /);
  t.false(last.includes('openssl '), 'an installed package is not asked for again');
  t.is(r.lines.filter((l) => l.startsWith('lab:')).length, 1, 'one line of reason');
});

test('without systemd-nspawn (no systemd-container), prepare exits 2 with one line before touching anything else', async (t) => {
  if (!root) return t.pass('the root check comes first');
  // every package reported installed, and a PATH on which there is no systemd-nspawn
  const bin = fakes({ 'dpkg-query': { out: PACKAGES.map((p) => `${p} install ok installed`).join('\n') } });
  const r = await prepare({ env: { PATH: bin } });
  t.is(r.code, 2);
  t.deepEqual(r.lines, ['lab: no systemd-nspawn after installing systemd-container: the lab\'s hosts cannot boot here']);
});

test('on a machine where every part is ready, prepare changes nothing and says ready', async (t) => {
  if (!root) return t.pass('needs root');
  const r = await prepare();
  t.is(r.code, 0, r.lines.join('\n'));
  t.deepEqual(r.lines, ['lab: ready'], 'no step ran: packages, limits and the Debian tree were all there');
});

test('prepare takes only the flags the lab takes: an unknown one is exit 2 with the usage', async (t) => {
  const r = await prepare({ args: ['--kube'] });
  t.is(r.code, 2);
  t.regex(r.lines[0]!, /^ERROR: Unknown option '--kube'/);
});
