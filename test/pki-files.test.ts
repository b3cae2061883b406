/**
 * one truncated or garbage file in pki/ must make master.ts and renew.ts stop with one line that
 * names the file and says what is wrong (exit 1, no stack trace, nothing written), and make status.ts report that row
 * `unreadable` while still writing the Prometheus textfile. And a secret others can read is never ok.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { loadInventory } from '../lib/inventory/load.ts';
import { configureLog } from '../lib/log.ts';
import { applyPki } from '../lib/pki/apply.ts';
import { planPki } from '../lib/pki/plan.ts';
import { writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

configureLog({ sink: () => undefined, tty: false });

async function build(patch: Record<string, unknown> = {}) {
  const file = writeInventory({ pki: { key: 'ecdsa-p256', days: 365, renew_before_days: 30 }, ...patch });
  const inv = loadInventory(file);
  await applyPki(inv, planPki(inv));
  return { file, dir: inv.pki.dir };
}

/** Every file of pki/ with its bytes and mode, to show that nothing was written. */
const snapshot = (dir: string) => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, [readFileSync(path.join(dir, f)).toString('base64'), statSync(path.join(dir, f)).mode]]));

const half = (b: Buffer) => b.subarray(0, Math.floor(b.length / 2));
const cases: { file: string; damage: (b: Buffer) => Buffer; says: RegExp; row: string; modern?: boolean }[] = [
  { file: 'ca.crt', damage: half, says: /ca\.crt: not a PEM certificate \(truncated\?\)/, row: 'ca.crt' },
  { file: 'server.crt', damage: () => randomBytes(700), says: /server\.crt: not a PEM certificate$/m, row: 'server.crt' },
  { file: 'kubeminion1.crt', damage: () => Buffer.alloc(0), says: /kubeminion1\.crt: empty, not a PEM certificate \(truncated\?\)/, row: 'kubeminion1.crt' },
  { file: 'server.key', damage: half, says: /server\.key: not a PEM private key \(truncated\?\)/, row: 'server.crt' },
  { file: 'kubeminion2.key', damage: () => randomBytes(200), says: /kubeminion2\.key: not a PEM private key$/m, row: 'kubeminion2.crt' },
  { file: 'tokens.csv', damage: half, says: /tokens\.csv: not one "TOKEN,kubelet,kubelet" line \(truncated\?\)/, row: 'tokens.csv' },
  { file: 'sa.key', damage: half, says: /sa\.key: not a PEM private key \(truncated\?\)/, row: 'sa.key', modern: true },
];

for (const c of cases) {
  test(`a damaged ${c.file} stops master.ts and renew.ts naming the file (exit 1, no stack trace, nothing written), and status.ts reports it unreadable and still writes the metrics`, async (t) => {
    const { file, dir } = await build(c.modern ? { profile: 'modern' } : {});
    const target = path.join(dir, c.file);
    const good = readFileSync(target);
    writeFileSync(target, c.damage(good));
    const before = snapshot(dir);
    const content = good.toString('utf8').split('\n').find((l) => l.length > 12 && !l.startsWith('-----'))!.slice(0, 12); // a token or base64
    for (const script of ['master.ts', 'renew.ts']) {
      const r = await runScript(script, script === 'master.ts' ? ['--pki-only', '--inventory', file] : ['--inventory', file]);
      t.is(r.code, 1, `${script}: ${r.all}`);
      t.regex(r.stderr, new RegExp(`ERROR: \\S*/pki/${c.says.source}`, 'm'), script);
      t.notRegex(r.all, /^\s+at /m, `${script} printed a stack trace`);
      t.notRegex(r.all, /error:[0-9A-F]{8}:|DECODER routines/, `${script} printed a bare OpenSSL error`);
      t.false(r.all.includes(content), `${script} printed the file's content`);
      t.deepEqual(snapshot(dir), before, `${script} wrote into pki/`);
    }
    const prom = path.join(path.dirname(file), 'kubetls.prom');
    const s = await runScript('status.ts', ['--inventory', file, '--prometheus', prom]);
    t.is(s.code, 1, s.all);
    // a CA's row is in the CA table, named without .crt (kubeadm's layout)
    const rowName = /^(ca|etcd-ca|front-proxy-ca)\.crt$/.test(c.row) ? c.row.slice(0, -4) : c.row;
    const row = s.stdout.split('\n').find((l) => l.startsWith(`${rowName} `)) ?? '';
    t.regex(row, new RegExp(`unreadable: \\S*/pki/${c.says.source}`, 'm'), s.stdout);
    t.true(existsSync(prom), 'the metrics were not written');
    const text = readFileSync(prom, 'utf8');
    t.regex(text, new RegExp(String.raw`^kubetls_certificate_ok\{name="${c.row.replace('.', '\\.')}",where="[^"]*",status="unreadable"\} 0$`, 'm'));
    t.regex(text, /^kubetls_certificate_ok\{name="ca\.crt".*\} [01]$/m, 'the other rows are still there');
    t.regex(text, /^kubetls_renew_last_success_timestamp_seconds \d+$/m);
  });
}

test('status.ts reports a key or the token that others can read as insecure mode, naming it, and exits 1', async (t) => {
  const { file, dir } = await build();
  chmodSync(path.join(dir, 'ca.key'), 0o644);
  chmodSync(path.join(dir, 'tokens.csv'), 0o640);
  const r = await runScript('status.ts', ['--inventory', file, '--json']);
  t.is(r.code, 1, r.all);
  const rows = (JSON.parse(r.stdout) as { rows: { name: string; status: string }[] }).rows;
  t.regex(rows.find((x) => x.name === 'ca.crt')!.status, /^insecure mode 0644: .*pki\/ca\.key$/);
  t.regex(rows.find((x) => x.name === 'tokens.csv')!.status, /^insecure mode 0640: .*pki\/tokens\.csv$/);
  t.is(rows.find((x) => x.name === 'server.crt')!.status, 'ok');
  t.is(statSync(path.join(dir, 'ca.key')).mode & 0o777, 0o644, 'status.ts changed a mode: it only reports');
});

test('master.ts and renew.ts set a key others can read back to 0600 and say so (even renew --quiet); --dry-run only says it', async (t) => {
  const { file, dir } = await build();
  const key = path.join(dir, 'server.key');
  chmodSync(key, 0o644);
  const dry = await runScript('master.ts', ['--pki-only', '--dry-run', '--inventory', file]);
  t.is(dry.code, 0, dry.all);
  t.is(statSync(key).mode & 0o777, 0o644);
  const m = await runScript('master.ts', ['--pki-only', '--inventory', file]);
  t.is(m.code, 0, m.all);
  t.regex(m.stderr, /WARNING: .*server\.key had mode 0644: other accounts could read this secret; setting it to 0600/);
  t.regex(m.stdout, /\$ chmod 600 .*server\.key/);
  t.regex(m.stdout, /PKI: nothing to do/);
  t.is(statSync(key).mode & 0o777, 0o600);
  chmodSync(path.join(dir, 'kubeminion1.key'), 0o604);
  const r = await runScript('renew.ts', ['--inventory', file, '--quiet']);
  t.is(r.code, 0, r.all);
  t.regex(r.all, /kubeminion1\.key had mode 0604/);
  t.is(statSync(path.join(dir, 'kubeminion1.key')).mode & 0o777, 0o600);
});

// ---- pki.dir: a folder kubetls did not make is never changed in place ----------------------------------------------

/** A pki.dir as it is: type, mode, owner, and every entry with its bytes, mode and owner. */
const folder = (dir: string) => {
  const st = lstatSync(dir);
  const entries = st.isDirectory() ? readdirSync(dir).sort().map((f) => {
    const e = lstatSync(path.join(dir, f));
    return [f, e.mode, e.uid, readFileSync(path.join(dir, f)).toString('base64')];
  }) : [];
  return { symlink: st.isSymbolicLink(), mode: st.mode & 0o7777, uid: st.uid, entries };
};

/** master.ts (for real and --dry-run) and renew.ts on `file`: each must stop with exit 2 and one line naming `dir`. */
async function refused(t: ExecutionContext, file: string, dir: string, says: RegExp) {
  for (const [script, args] of [['master.ts', ['--pki-only']], ['master.ts', ['--pki-only', '--dry-run']], ['renew.ts', []], ['renew.ts', ['--dry-run']]] as const) {
    const r = await runScript(script, [...args, '--inventory', file]);
    const what = `${script} ${args.join(' ')}`;
    t.is(r.code, 2, `${what}: ${r.all}`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    t.is(lines.length, 1, `${what}: exactly one line on stderr: ${r.stderr}`);
    t.true(lines[0]?.includes(`ERROR: pki.dir ${dir} `), `${what}: names the folder: ${lines[0]}`);
    t.regex(lines[0] ?? '', says, what);
    t.notRegex(r.all, /^\s+at /m, `${what} printed a stack trace`);
    t.notRegex(r.stdout, /\$ (openssl|chmod|mkdir|mv) /, `${what} went on after the refusal`);
  }
}

const asRoot = process.getuid?.() === 0 ? test : test.skip; // chown needs root (and kubetls's PKI is root's)

for (const c of [
  { mode: 0o1777, entry: 'notes.txt', uid: 65534, why: 'another user\'s file' },
  { mode: 0o1777, entry: 'notes.key', uid: 65534, why: 'another user\'s file named like a PKI file' },
  { mode: 0o777, entry: 'notes.txt', uid: 0, why: 'a file kubetls did not make' },
  { mode: 0o1777, entry: 'ca.key', uid: 65534, why: 'another user\'s ca.key (mode 0644: not ours to tighten either)' },
]) {
  asRoot(`a pki.dir of mode ${c.mode.toString(8).padStart(4, '0')} holding ${c.why} is refused (exit 2, one line naming the folder, its owner and mode) and left exactly as it was, with no key made, by master.ts, renew.ts and their --dry-run`, async (t) => {
    const file = writeInventory({ pki: { key: 'ecdsa-p256' } });
    const dir = path.join(path.dirname(file), 'pki');
    mkdirSync(dir);
    chmodSync(dir, c.mode);
    writeFileSync(path.join(dir, c.entry), 'theirs\n', { mode: 0o644 });
    chownSync(path.join(dir, c.entry), c.uid, c.uid);
    const before = folder(dir);
    await refused(t, file, dir, new RegExp(`is mode ${c.mode.toString(8).padStart(4, '0')} owned by uid 0 and holds files kubetls did not make \\(${c.entry.replace('.', '\\.')}\\): refusing to change a folder others use; point pki\\.dir at a folder of its own$`));
    t.is(statSync(dir).mode & 0o7777, c.mode, 'the folder\'s mode was changed');
    t.deepEqual(folder(dir), before, 'the folder or its content was changed');
    t.deepEqual(readdirSync(dir), [c.entry], 'a key or another file was made in a folder others use');
  });
}

asRoot('a pki.dir owned by another user (uid 65534, mode 0755, empty) is refused and left as it was', async (t) => {
  const file = writeInventory({ pki: { key: 'ecdsa-p256' } });
  const dir = path.join(path.dirname(file), 'pki');
  mkdirSync(dir);
  chmodSync(dir, 0o755);
  chownSync(dir, 65534, 65534);
  await refused(t, file, dir, /is owned by uid 65534 \(mode 0755\), not by uid 0 that runs kubetls: refusing to change a folder others own; point pki\.dir at a folder of its own$/);
  t.deepEqual(folder(dir), { symlink: false, mode: 0o755, uid: 65534, entries: [] });
});

asRoot('a pki.dir that is a symlink to a folder is refused, and the folder it points to is left as it was', async (t) => {
  const file = writeInventory({ pki: { key: 'ecdsa-p256' } });
  const target = path.join(path.dirname(file), 'real');
  mkdirSync(target);
  chmodSync(target, 0o755);
  const dir = path.join(path.dirname(file), 'pki');
  symlinkSync(target, dir);
  await refused(t, file, dir, /is a symlink \(to .*\/real\): refusing to follow it; point pki\.dir at the folder itself$/);
  t.deepEqual(folder(target), { symlink: false, mode: 0o755, uid: 0, entries: [] });
  t.true(lstatSync(dir).isSymbolicLink());
});

asRoot('a pki.dir that is a file is refused and left as it was', async (t) => {
  const file = writeInventory({ pki: { key: 'ecdsa-p256' } });
  const dir = path.join(path.dirname(file), 'pki');
  writeFileSync(dir, 'not a folder\n', { mode: 0o644 });
  await refused(t, file, dir, /is a file \(mode 0644, owned by uid 0\), not a folder: point pki\.dir at a folder of its own$/);
  t.is(readFileSync(dir, 'utf8'), 'not a folder\n');
});

for (const mode of [0o755, 0o1777]) {
  asRoot(`an empty folder root owns with mode ${mode.toString(8).padStart(4, '0')} (made with mkdir) is taken as pki.dir and made 0700; --dry-run only says so`, async (t) => {
    const file = writeInventory({ pki: { key: 'ecdsa-p256' } });
    const dir = path.join(path.dirname(file), 'pki');
    mkdirSync(dir);
    chmodSync(dir, mode);
    const dry = await runScript('master.ts', ['--pki-only', '--dry-run', '--inventory', file]);
    t.is(dry.code, 0, dry.all);
    t.regex(dry.stdout, /\$ chmod 700 \S*\/pki$/m);
    t.deepEqual(folder(dir), { symlink: false, mode, uid: 0, entries: [] }, '--dry-run changed the folder');
    const r = await runScript('master.ts', ['--pki-only', '--inventory', file]);
    t.is(r.code, 0, r.all);
    t.regex(r.stdout, /\$ chmod 700 \S*\/pki$/m);
    t.is(statSync(dir).mode & 0o7777, 0o700);
    t.true(existsSync(path.join(dir, 'ca.key')));
  });
}
