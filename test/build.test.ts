/**
 * bin/build.mjs + bin/kubetls.mjs: the precompiled bundles run only while they match the sources. A bundle older than
 * a source must never run (it would be yesterday's code); when dist/ cannot be written, the sources run through tsx.
 * Each test works on a copy of the package in a temp folder (node_modules linked), never on the checkout's dist/.
 */
import test from 'ava';
import { execa } from 'execa';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from './helpers/inventory.ts';

function copyPackage(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kubetls-build-'));
  for (const f of ['bin', 'scripts', 'lib', 'config', 'package.json', 'package-lock.json']) cpSync(path.join(repoRoot, f), path.join(dir, f), { recursive: true, filter: (s) => !s.includes(`${path.sep}dist`) });
  symlinkSync(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}
const kubetls = (dir: string, args: string[]) => execa(process.execPath, [path.join(dir, 'bin/kubetls.mjs'), ...args], { cwd: dir, reject: false, env: { NODE_OPTIONS: '' } });
const mark = (dir: string, text: string) => {
  const f = path.join(dir, 'scripts/status.ts');
  writeFileSync(f, readFileSync(f, 'utf8').replace(/usage: npx zx scripts\/status\.ts[^\n]*/, (m) => `${m} ${text}`));
};

test('a command runs from its bundle, and a source changed since the bundle was built makes it rebuild before running', async (t) => {
  const dir = copyPackage();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = await kubetls(dir, ['status', '--help']);
  t.is(first.exitCode, 0, first.stderr);
  t.true(existsSync(path.join(dir, 'dist/status.mjs')), 'the bundle was built');
  const stamp = JSON.parse(readFileSync(path.join(dir, 'dist/.stamp.json'), 'utf8')) as { inputs: string[] };
  t.true(stamp.inputs.includes('scripts/status.ts') && stamp.inputs.includes('lib/status.ts'), 'the stamp lists the sources');
  t.false(stamp.inputs.some((f) => f.includes('node_modules')), 'dependencies are covered by package-lock.json, not listed');
  const bundle = readFileSync(path.join(dir, 'dist/status.mjs'), 'utf8');

  mark(dir, 'EDITED-AFTER-BUILD');
  const second = await kubetls(dir, ['status', '--help']);
  t.regex(second.stdout, /EDITED-AFTER-BUILD/, 'the stale bundle did not run');
  t.not(readFileSync(path.join(dir, 'dist/status.mjs'), 'utf8'), bundle, 'it was rebuilt');
  t.regex(readFileSync(path.join(dir, 'dist/status.mjs'), 'utf8'), /EDITED-AFTER-BUILD/);

  // a file the bundle does not include changes nothing; one it does (lib/) counts like scripts/
  const lib = path.join(dir, 'lib/table.ts');
  writeFileSync(lib, `${readFileSync(lib, 'utf8')}\n// edited\n`);
  const before = readFileSync(path.join(dir, 'dist/.stamp.json'), 'utf8');
  t.is((await kubetls(dir, ['status', '--help'])).exitCode, 0);
  t.not(readFileSync(path.join(dir, 'dist/.stamp.json'), 'utf8'), before, 'a changed lib/ file makes a new stamp');
});

test('when dist/ cannot be written the sources run through tsx, never an old bundle', async (t) => {
  const dir = copyPackage();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.is((await kubetls(dir, ['status', '--help'])).exitCode, 0);
  mark(dir, 'EDITED-READ-ONLY');
  // dist/ replaced by a plain file: no build can write there (root ignores modes, so a read-only folder would not do)
  const old = readFileSync(path.join(dir, 'dist/status.mjs'));
  rmSync(path.join(dir, 'dist'), { recursive: true });
  writeFileSync(path.join(dir, 'dist'), 'not a folder');
  const r = await kubetls(dir, ['status', '--help']);
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /EDITED-READ-ONLY/, 'the current sources ran');
  t.true(old.length > 0);
});

test('KUBETLS_NO_BUNDLE runs the TypeScript sources even with a fresh bundle, and lab is never bundled', async (t) => {
  const dir = copyPackage();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.is((await kubetls(dir, ['status', '--help'])).exitCode, 0);
  // poison the fresh bundle: if it ran, the output would say so
  const f = path.join(dir, 'dist/status.mjs');
  writeFileSync(f, `process.stdout.write('POISONED BUNDLE\\n');\n${readFileSync(f, 'utf8').replace(/^#!.*\n/, '')}`);
  t.regex((await kubetls(dir, ['status', '--help'])).stdout, /POISONED BUNDLE/, 'a bundle file edited by hand is not among the hashed inputs (it is the output)');
  const r = await execa(process.execPath, [path.join(dir, 'bin/kubetls.mjs'), 'status', '--help'], { cwd: dir, reject: false, env: { NODE_OPTIONS: '', KUBETLS_NO_BUNDLE: '1' } });
  t.notRegex(r.stdout, /POISONED/);
  t.regex(r.stdout, /usage: npx zx scripts\/status\.ts/);
  t.false(existsSync(path.join(dir, 'dist/lab.mjs')));
});
