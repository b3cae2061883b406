/**
 * The operator's side of every script: --version, KUBETLS_INVENTORY, the example inventory's
 * warning, NO_COLOR on a terminal, and verify before any PKI exists.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { repoRoot, tempDir, writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

const version = (JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

for (const s of ['master.ts', 'minions.ts', 'verify.ts', 'status.ts', 'renew.ts']) {
  test(`${s} --version prints kubetls's version and exits 0`, async (t) => {
    const r = await runScript(s, ['--version']);
    t.is(r.code, 0, r.all);
    t.is(r.stdout, `kubetls ${version}`);
  });
}

test('KUBETLS_INVENTORY names the inventory when --inventory is not given, and --inventory wins over it', async (t) => {
  const viaEnv = writeInventory();
  const viaFlag = writeInventory();
  const r = await runScript('master.ts', ['--pki-only'], { KUBETLS_INVENTORY: viaEnv });
  t.is(r.code, 0, r.all);
  t.true(existsSync(path.join(path.dirname(viaEnv), 'pki', 'ca.crt')));
  const f = await runScript('master.ts', ['--pki-only', '--inventory', viaFlag], { KUBETLS_INVENTORY: viaEnv });
  t.is(f.code, 0, f.all);
  t.true(existsSync(path.join(path.dirname(viaFlag), 'pki', 'ca.crt')));
  t.regex(f.stdout, new RegExp(`PKI in ${path.dirname(viaFlag).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/pki`));
});

test('the shipped example inventory says it is the example and where a real one goes; another inventory does not', async (t) => {
  const example = await runScript('master.ts', ['--pki-only', '--dry-run']);
  t.is(example.code, 0, example.all);
  t.regex(example.stderr, /cluster\.yaml is the example inventory shipped with kubetls: its PKI is a demo CA\. For a real cluster copy it outside the checkout/);
  const own = await runScript('master.ts', ['--pki-only', '--dry-run', '--inventory', writeInventory()]);
  t.notRegex(own.all, /example inventory/);
});

test('verify.ts before any PKI exists says to run master.ts first, not ENOENT', async (t) => {
  const r = await runScript('verify.ts', ['--inventory', writeInventory()]);
  t.is(r.code, 1, r.all);
  t.regex(r.stderr, /no PKI in .*\/pki yet: run scripts\/master\.ts first/);
  t.notRegex(r.all, /ENOENT/);
});

test('on a terminal, NO_COLOR removes the colour escapes and keeps the terminal layout', async (t) => {
  const file = writeInventory();
  const zx = path.join(repoRoot, 'node_modules/.bin/zx');
  // script(1) gives the command a pseudo-terminal, as an operator's shell would
  const run = (env: Record<string, string>) => execa('script', ['-qec', `${zx} scripts/master.ts --pki-only --dry-run --inventory ${file}`, '/dev/null'],
    { cwd: repoRoot, reject: false, env: { NODE_OPTIONS: '--import=tsx', CI: '', ...env } });
  const coloured = await run({});
  t.regex(coloured.stdout, /\x1b\[1m== PKI in/, 'a terminal gets colours (so the NO_COLOR check below can fail)');
  const plain = await run({ NO_COLOR: '1' });
  t.is(plain.exitCode, 0, plain.stdout);
  t.notRegex(plain.stdout, /\x1b\[/);
  t.regex(plain.stdout, /^== PKI in/m);
  t.notRegex(plain.stdout, /^\d{4}-\d\d-\d\dT/m, 'no timestamps: still the terminal layout');
});

test('one kubetls command runs every script: --version, an unknown command is exit 2, master --pki-only builds the PKI', async (t) => {
  const bin = path.join(repoRoot, 'bin', 'kubetls.mjs');
  const v = await execa(process.execPath, [bin, '--version'], { reject: false });
  t.is(v.stdout, `kubetls ${version}`);
  const bad = await execa(process.execPath, [bin, 'mastr'], { reject: false });
  t.is(bad.exitCode, 2);
  t.regex(bad.stderr, /unknown command 'mastr'[\s\S]*master +build the PKI/);
  const file = writeInventory();
  const r = await execa(process.execPath, [bin, 'master', '--pki-only', '--inventory', file], { reject: false, env: { NODE_OPTIONS: '' } });
  t.is(r.exitCode, 0, r.stderr);
  t.true(existsSync(path.join(path.dirname(file), 'pki', 'server.crt')));
  const flags = await execa(process.execPath, [bin, 'renew', '--inventory', file, '--bogus'], { reject: false, env: { NODE_OPTIONS: '' } });
  t.is(flags.exitCode, 2, 'the script\'s own flag parsing sees its flags');
});

test('npm ci --omit=dev is enough to build the PKI, with the kubetls command and with npx zx', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kubetls-prod-'));
  try {
    for (const f of ['package.json', 'package-lock.json', '.npmrc', 'bin', 'scripts', 'lib', 'config']) cpSync(path.join(repoRoot, f), path.join(dir, f), { recursive: true });
    // NODE_OPTIONS emptied: the test runner's own --import=tsx must not reach npm in a folder that has no tsx yet
    const ci = await execa('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir, reject: false, timeout: 240_000, env: { NODE_OPTIONS: '' } });
    t.is(ci.exitCode, 0, ci.stderr);
    t.false(existsSync(path.join(dir, 'node_modules', 'ava')), 'no dev dependency installed');
    const file = writeInventory();
    const viaBin = await execa(process.execPath, [path.join(dir, 'bin', 'kubetls.mjs'), 'master', '--pki-only', '--inventory', file], { cwd: dir, reject: false, env: { NODE_OPTIONS: '' } });
    t.is(viaBin.exitCode, 0, viaBin.stderr);
    const other = writeInventory();
    const viaZx = await execa('npx', ['zx', 'scripts/master.ts', '--pki-only', '--inventory', other], { cwd: dir, reject: false, env: { NODE_OPTIONS: '' } });
    t.is(viaZx.exitCode, 0, viaZx.stderr);
    t.true(existsSync(path.join(path.dirname(other), 'pki', 'ca.crt')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lab.ts and demo.ts refuse bad usage with exit 2 like every other script, and lab.ts knows --version', async (t) => {
  for (const [s, args, said] of [
    ['lab.ts', ['bogus'], /unknown command 'bogus'/],
    ['lab.ts', [], /no command/],
    ['lab.ts', ['up', '--nope'], /Unknown option '--nope'/],
    ['lab.ts', ['up', '--minions', 'three'], /--minions expects a whole number, found 'three'/],
    ['lab.ts', ['up', '--profile', 'ancient'], /--profile expects legacy or modern, found 'ancient'/],
    ['lab.ts', ['down', 'extra'], /unknown command 'down extra'/],
    ['demo.ts', ['--nope'], /Unknown option '--nope'/],
    ['demo.ts', ['--profile', 'ancient'], /--profile expects legacy or modern/],
  ] as const) {
    const r = await runScript(s, [...args]);
    t.is(r.code, 2, `${s} ${args.join(' ')}: ${r.all}`);
    t.regex(r.stderr, said);
    t.regex(r.stderr, /usage: /);
  }
  const v = await runScript('lab.ts', ['--version']);
  t.is(v.stdout, `kubetls ${version}`);
});

test('the read-only scripts say so in their help, where the writing ones offer --dry-run', async (t) => {
  for (const s of ['verify.ts', 'status.ts']) t.regex((await runScript(s, ['--help'])).stdout, /^Read-only: it changes nothing/m, s);
  for (const s of ['master.ts', 'minions.ts', 'renew.ts']) t.regex((await runScript(s, ['--help'])).stdout, /--dry-run +print every action as a shell line; write nothing, connect nowhere/, s);
});

// ---- --json: one result object on stdout whatever happened ------------------------------------------------------------

test('with --json a run that stops on a bad inventory, a bad flag or a held lock still prints its result object, ok false, with the exit code', async (t) => {
  const dir = tempDir();
  writeFileSync(path.join(dir, 'cluster.yaml'), 'cluster: x\nprofile: legacy\npki: { bits: 1024, remote_dir: /srv/kubernetes }\n');
  for (const [script, kind] of [['status.ts', 'Status'], ['verify.ts', 'Verify'], ['renew.ts', 'RenewResult']] as const) {
    const bad = await runScript(script, ['--json', '--inventory', path.join(dir, 'cluster.yaml')]);
    t.is(bad.code, 2, bad.all);
    const out = JSON.parse(bad.stdout) as { apiVersion: string; kind: string; ok: boolean; exitCode: number; error: string };
    t.like(out, { apiVersion: 'kubetls/v1', kind, ok: false, exitCode: 2 }, script);
    t.regex(out.error, /cluster\.yaml:3: pki\.bits: expected an integer >= 2048, found 1024/, script);
    const flag = await runScript(script, ['--json', '--no-such-flag']);
    t.is(flag.code, 2);
    t.like(JSON.parse(flag.stdout), { kind, ok: false, exitCode: 2 }, `${script} bad flag`);
  }
  // a held lock: 75, as an object too
  const file = writeInventory();
  const { loadInventory } = await import('../lib/inventory/load.ts');
  const { acquireLock } = await import('../lib/lock.ts');
  const release = acquireLock(loadInventory(file), 'test');
  try {
    const held = await runScript('renew.ts', ['--json', '--inventory', file]);
    t.is(held.code, 75, held.all);
    t.like(JSON.parse(held.stdout), { kind: 'RenewResult', ok: false, exitCode: 75 });
    t.regex((JSON.parse(held.stdout) as { error: string }).error, /another kubetls run holds/);
  } finally {
    release();
  }
});

// ---- a supervisor that signals npx alone does not leave the script running --------------------------------------------

test('SIGTERM sent to the npx parent alone: the node process running the script stops within seconds and releases its lock', async (t) => {
  t.timeout(90_000);
  const { createServer } = await import('node:net');
  const { spawn, spawnSync, execFileSync } = await import('node:child_process');
  // an "sshd" that accepts and never speaks: master.ts waits in its connect (10 s a try, five tries) long after we stop it
  const held: import('node:net').Socket[] = [];
  let reached!: () => void;
  const connected = new Promise<void>((r) => { reached = r; });
  const server = createServer((s) => { held.push(s); reached(); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as import('node:net').AddressInfo).port;
  const dir = tempDir();
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'id')]);
  const file = writeInventory({ master: { name: 'kubemaster', address: '127.0.0.1', port }, minions: [],
    ssh: { identity_file: path.join(dir, 'id'), known_hosts: path.join(dir, 'known_hosts'), config_file: 'none' } }, dir);
  const npx = spawn('npx', ['zx', 'scripts/master.ts', '--inventory', file], { cwd: repoRoot, detached: true, stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: '' } });
  // ps exits 1 with nothing to list: the group is empty
  const group = () => spawnSync('ps', ['-o', 'pid=', '-g', String(npx.pid)], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  try {
    await connected; // master.ts made its PKI, holds the lock and is connecting
    t.true(readdirSync(path.join(dir, 'pki')).includes('.kubetls.lock'));
    process.kill(npx.pid!, 'SIGTERM'); // the main PID only, as a supervisor does
    const until = Date.now() + 8_000;
    while (group().length && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    t.deepEqual(group(), [], 'no process of the run is left');
    t.false(readdirSync(path.join(dir, 'pki')).includes('.kubetls.lock'), 'the lock was released');
  } finally {
    try { process.kill(-npx.pid!, 'SIGKILL'); } catch { /* gone */ }
    for (const s of held) s.destroy();
    server.close();
  }
});
