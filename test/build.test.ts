/**
 * bin/build.mjs + bin/kubetls.mjs: the precompiled bundles run only while they match the sources. A bundle older than
 * a source must never run (it would be yesterday's code); when dist/ cannot be written, the sources run through tsx.
 * Each test works on a copy of the package in a temp folder (node_modules linked), never on the checkout's dist/.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { repoRoot } from './helpers/inventory.ts';

function copyPackage(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kubetls-build-'));
  for (const f of ['bin', 'scripts', 'lib', 'config', 'package.json', 'package-lock.json']) cpSync(path.join(repoRoot, f), path.join(dir, f), { recursive: true, filter: (s) => !s.includes(`${path.sep}dist`) });
  symlinkSync(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}
/** dist/status-<hash>.mjs: the one status bundle there is (old ones are pruned by each build). */
const bundleOf = (dir: string, command = 'status') => {
  const found = readdirSync(path.join(dir, 'dist')).filter((f) => new RegExp(`^${command}-[0-9a-f]{20}\\.mjs$`).test(f));
  return found.length === 1 ? path.join(dir, 'dist', found[0]!) : undefined;
};
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
  const bundle = bundleOf(dir);
  t.truthy(bundle, 'the bundle was built');
  const list = JSON.parse(readFileSync(path.join(dir, 'dist/.inputs.json'), 'utf8')) as { inputs: string[] };
  t.true(list.inputs.includes('scripts/status.ts') && list.inputs.includes('lib/status.ts'), 'the list names the sources');
  t.true(list.inputs.includes('node_modules/yaml/package.json'), 'a bundled dependency stands for itself by its package.json');
  t.false(list.inputs.some((f) => f.startsWith('/') || f.startsWith('..')), 'paths relative to the package');

  mark(dir, 'EDITED-AFTER-BUILD');
  const second = await kubetls(dir, ['status', '--help']);
  t.regex(second.stdout, /EDITED-AFTER-BUILD/, 'the stale bundle did not run');
  t.not(bundleOf(dir), bundle, 'it was rebuilt under another name');
  t.false(existsSync(bundle!), 'the old one was pruned');

  // a lib/ file counts like scripts/
  const lib = path.join(dir, 'lib/table.ts');
  writeFileSync(lib, `${readFileSync(lib, 'utf8')}\n// edited\n`);
  const before = bundleOf(dir);
  t.is((await kubetls(dir, ['status', '--help'])).exitCode, 0);
  t.not(bundleOf(dir), before, 'a changed lib/ file makes a new bundle');
});

test('a build started from another folder records the same sources, so a later edit is still seen', async (t) => {
  const dir = copyPackage();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const b = await execa(process.execPath, [path.join(dir, 'bin/build.mjs')], { cwd: '/', reject: false, env: { NODE_OPTIONS: '' } });
  t.is(b.exitCode, 0, b.stderr);
  const list = JSON.parse(readFileSync(path.join(dir, 'dist/.inputs.json'), 'utf8')) as { inputs: string[] };
  t.true(list.inputs.includes('scripts/renew.ts'), JSON.stringify(list.inputs.slice(0, 3)));
  mark(dir, 'EDITED-AFTER-BUILD-FROM-ROOT');
  t.regex((await kubetls(dir, ['status', '--help'])).stdout, /EDITED-AFTER-BUILD-FROM-ROOT/);
});

test('when dist/ cannot be written the sources run through tsx, never an old bundle', async (t) => {
  const dir = copyPackage();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.is((await kubetls(dir, ['status', '--help'])).exitCode, 0);
  mark(dir, 'EDITED-READ-ONLY');
  // dist/ replaced by a plain file: no build can write there (root ignores modes, so a read-only folder would not do)
  const old = readFileSync(bundleOf(dir)!);
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
  const f = bundleOf(dir)!;
  writeFileSync(f, `process.stdout.write('POISONED BUNDLE\\n');\n${readFileSync(f, 'utf8').replace(/^#!.*\n/, '')}`);
  t.regex((await kubetls(dir, ['status', '--help'])).stdout, /POISONED BUNDLE/, 'a bundle file edited by hand is not among the hashed inputs (it is the output)');
  const r = await execa(process.execPath, [path.join(dir, 'bin/kubetls.mjs'), 'status', '--help'], { cwd: dir, reject: false, env: { NODE_OPTIONS: '', KUBETLS_NO_BUNDLE: '1' } });
  t.notRegex(r.stdout, /POISONED/);
  t.regex(r.stdout, /usage: npx zx scripts\/status\.ts/);
  t.is(bundleOf(dir, 'lab'), undefined);
});
