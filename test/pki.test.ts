import test from 'ava';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadInventory } from '../lib/inventory.ts';
import { configureLog } from '../lib/log.ts';
import { applyPki, newToken, parseCert, planPki, readCert } from '../lib/pki.ts';
import * as openssl from '../lib/openssl.ts';
import { writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

const lines: string[] = [];
configureLog({ sink: (s) => lines.push(s), tty: false });

async function build(patch = {}) {
  const file = writeInventory(patch);
  const inv = loadInventory(file);
  await applyPki(inv, planPki(inv));
  return { file, inv, dir: inv.pki.dir };
}

/** sha256 of every file in the folder, by name. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(readFileSync(path.join(dir, f))).digest('hex')]));
}
const changedFiles = (a: Record<string, string>, b: Record<string, string>) =>
  [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((f) => a[f] !== b[f]).sort();

test('every certificate verifies against the CA with the purpose of its job', async (t) => {
  const { dir } = await build();
  t.true((await openssl.verify(path.join(dir, 'ca.crt'), path.join(dir, 'server.crt'), 'sslserver')).ok);
  for (const m of ['kubeminion1', 'kubeminion2']) {
    const v = await openssl.verify(path.join(dir, 'ca.crt'), path.join(dir, `${m}.crt`), 'sslclient');
    t.true(v.ok, v.output);
    // a client certificate must not pass as a server one: its extendedKeyUsage is clientAuth only
    t.false((await openssl.verify(path.join(dir, 'ca.crt'), path.join(dir, `${m}.crt`), 'sslserver')).ok);
  }
  const ca = readCert(path.join(dir, 'ca.crt'))!;
  t.true(ca.isCa);
  t.is(ca.subject.cn, 'kubemaster');
  const text = (await execa('openssl', ['x509', '-noout', '-text', '-in', path.join(dir, 'kubeminion1.crt')])).stdout;
  t.regex(text, /Version: 3/);
  t.regex(text, /TLS Web Client Authentication/);
  // every certificate, the CA included (a -sha1 CA passed when only a minion was looked at), as openssl reads it
  for (const f of ['ca.crt', 'server.crt', 'kubeminion1.crt']) {
    const sig = (await execa('openssl', ['x509', '-noout', '-text', '-in', path.join(dir, f)])).stdout.match(/Signature Algorithm: \S+/g);
    t.deepEqual(sig, ['Signature Algorithm: sha256WithRSAEncryption', 'Signature Algorithm: sha256WithRSAEncryption'], f);
  }
});

test('the server certificate carries exactly the SANs of the inventory, IPv6 included', async (t) => {
  const { dir } = await build({ apiserver: { dns: ['kubernetes.default.svc', 'kubemaster', 'api.example.test'], ip: ['10.24.0.1', 'fd00::1'] } });
  const san = (await execa('openssl', ['x509', '-noout', '-ext', 'subjectAltName', '-in', path.join(dir, 'server.crt')])).stdout;
  const names = san.split('\n')[1].trim().split(', ').sort();
  t.deepEqual(names, ['DNS:api.example.test', 'DNS:kubemaster', 'DNS:kubernetes.default.svc', 'IP Address:10.24.0.1', 'IP Address:FD00:0:0:0:0:0:0:1'].sort());
  t.is(readCert(path.join(dir, 'server.crt'))!.subject.cn, 'kubernetes.default.svc');
});

test('keys, tokens and every file are mode 0600 and the folder 0700', async (t) => {
  const { dir } = await build();
  t.is(statSync(dir).mode & 0o777, 0o700);
  const files = readdirSync(dir);
  t.true(files.includes('ca.srl') && files.includes('tokens.csv') && files.includes('kubeminion2.key'));
  for (const f of files) t.is(statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
  t.false(files.some((f) => f.endsWith('.new')), 'no temporary file is left behind');
});

test('the token has 32 characters of the recipe alphabet and tokens.csv reads TOKEN,kubelet,kubelet', async (t) => {
  const { dir } = await build();
  t.regex(readFileSync(path.join(dir, 'tokens.csv'), 'utf8'), /^[A-Za-z0-9]{32},kubelet,kubelet\n$/);
  const many = new Set(Array.from({ length: 50 }, newToken));
  t.is(many.size, 50);
  for (const tok of many) t.regex(tok, /^[A-Za-z0-9]{32}$/);
});

test('a rerun with an unchanged inventory changes no byte and says nothing to do', async (t) => {
  const { file, dir } = await build();
  const before = snapshot(dir);
  const mtimes = readdirSync(dir).map((f) => statSync(path.join(dir, f)).mtimeMs);
  const r = await runScript('master.ts', ['--pki-only', '--inventory', file]);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /PKI: nothing to do/);
  t.notRegex(r.stdout, /\$ openssl/);
  t.deepEqual(snapshot(dir), before);
  t.deepEqual(readdirSync(dir).map((f) => statSync(path.join(dir, f)).mtimeMs), mtimes);
});

test('a SAN added to the inventory reissues only the server certificate, with the reason', async (t) => {
  const { file, dir } = await build();
  const before = snapshot(dir);
  writeInventory({ apiserver: { dns: ['kubernetes.default.svc', 'kubemaster'], ip: ['10.24.0.1', '10.0.0.5'] } }, path.dirname(file));
  const inv = loadInventory(file);
  const plan = planPki(inv);
  const server = plan.items.find((i) => i.name === 'server')!;
  t.is(server.action, 'reissue');
  t.is(server.reason, 'SAN added: IP:10.0.0.5');
  t.true(plan.items.filter((i) => i.name !== 'server').every((i) => i.action === 'keep'));
  await applyPki(inv, plan);
  t.deepEqual(changedFiles(before, snapshot(dir)), ['ca.srl', 'openssl.cnf', 'server.crt', 'server.csr', 'server.key']);
  t.true(readCert(path.join(dir, 'server.crt'))!.sans.includes('IP:10.0.0.5'));
});

test('a minion added to the inventory gets only its own files', async (t) => {
  const { file, dir } = await build();
  const before = snapshot(dir);
  writeInventory({ minions: ['kubeminion1', 'kubeminion2', 'kubeminion3'] }, path.dirname(file));
  const r = await runScript('master.ts', ['--pki-only', '--inventory', file]);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /kubeminion3\.crt .* created/);
  t.deepEqual(changedFiles(before, snapshot(dir)), ['ca.srl', 'kubeminion3.crt', 'kubeminion3.csr', 'kubeminion3.key']);
});

test('a minion removed from the inventory is reported and its files are kept', async (t) => {
  const { file, dir } = await build();
  writeInventory({ minions: ['kubeminion1'] }, path.dirname(file));
  const r = await runScript('master.ts', ['--pki-only', '--inventory', file]);
  t.is(r.code, 0, r.all);
  t.regex(r.all, /kubeminion2\.crt belongs to no host of the inventory/);
  t.true(existsSync(path.join(dir, 'kubeminion2.key')));
});

test('ECDSA P-256 keys are generated with genpkey and the certificates verify', async (t) => {
  lines.length = 0;
  const { dir } = await build({ pki: { key: 'ecdsa-p256' }, profile: 'modern' });
  t.true(lines.some((l) => l.includes('$ openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out')));
  for (const f of ['ca', 'server', 'kubeminion1']) t.is(readCert(path.join(dir, `${f}.crt`))!.keyType, 'ecdsa-p256', f);
  t.regex(readFileSync(path.join(dir, 'sa.key'), 'utf8'), /BEGIN PRIVATE KEY/);
  t.true((await openssl.verify(path.join(dir, 'ca.crt'), path.join(dir, 'server.crt'), 'sslserver')).ok);
  t.true((await openssl.verify(path.join(dir, 'ca.crt'), path.join(dir, 'kubeminion1.crt'), 'sslclient')).ok);
});

test('the modern profile names minions system:node:NAME in system:nodes and adds an sa.key/sa.pub pair', async (t) => {
  const { dir } = await build({ profile: 'modern' });
  const m = readCert(path.join(dir, 'kubeminion1.crt'))!;
  t.deepEqual(m.subject, { cn: 'system:node:kubeminion1', o: 'system:nodes' });
  const pub = (await execa('openssl', ['pkey', '-in', path.join(dir, 'sa.key'), '-pubout'])).stdout;
  t.is(readFileSync(path.join(dir, 'sa.pub'), 'utf8').trim(), pub.trim());
});

test('the legacy profile names minion certificates CN=<name> as the recipe does', async (t) => {
  const { dir } = await build();
  t.deepEqual(readCert(path.join(dir, 'kubeminion2.crt'))!.subject, { cn: 'kubeminion2', o: undefined });
});

test('a certificate that expires within renew_before_days is reissued, saying when it expires', async (t) => {
  const { file, dir } = await build({ pki: { days: 2, renew_before_days: 1 } });
  const old = readCert(path.join(dir, 'kubeminion1.crt'))!;
  writeInventory({ pki: { days: 365, renew_before_days: 30 } }, path.dirname(file));
  const inv = loadInventory(file);
  const plan = planPki(inv);
  t.deepEqual(plan.items.filter((i) => i.action === 'reissue').map((i) => [i.name, i.reason]),
    [['server', 'expires in 1 d'], ['kubeminion1', 'expires in 1 d'], ['kubeminion2', 'expires in 1 d']]);
  await applyPki(inv, plan);
  const renewed = readCert(path.join(dir, 'kubeminion1.crt'))!;
  t.not(renewed.serial, old.serial);
  t.true(renewed.notAfter.getTime() - Date.now() > 300 * 86_400_000);
});

test('a certificate signed by another CA, or whose key does not match, is reissued with that reason', async (t) => {
  const { file, dir } = await build();
  const other = await build();
  writeFileSync(path.join(dir, 'kubeminion1.crt'), readFileSync(path.join(other.dir, 'kubeminion1.crt')));
  writeFileSync(path.join(dir, 'kubeminion2.key'), readFileSync(path.join(other.dir, 'kubeminion2.key')));
  const plan = planPki(loadInventory(file));
  t.regex(plan.items.find((i) => i.name === 'kubeminion1')!.reason, /not signed by the current CA/);
  t.is(plan.items.find((i) => i.name === 'kubeminion2')!.reason, 'key does not match the certificate');
  t.is(plan.items.find((i) => i.name === 'server')!.action, 'keep');
});

test('the CA is never replaced silently: ca.key without ca.crt stops the run and writes nothing', async (t) => {
  const { file, dir } = await build();
  rmSync(path.join(dir, 'ca.crt'));
  const before = snapshot(dir);
  const r = await runScript('master.ts', ['--pki-only', '--inventory', file]);
  t.is(r.code, 1);
  t.regex(r.stderr, /ca\.key exists without ca\.crt: refusing to replace the CA silently/);
  t.deepEqual(snapshot(dir), before);
});

test('--dry-run prints the openssl commands with real paths, writes nothing and prints no secret', async (t) => {
  const fresh = writeInventory();
  const r = await runScript('master.ts', ['--pki-only', '--dry-run', '--inventory', fresh]);
  t.is(r.code, 0, r.all);
  const pkiDir = path.join(path.dirname(fresh), 'pki');
  t.false(existsSync(pkiDir));
  t.true(r.stdout.includes(`$ openssl genrsa -out ${pkiDir}/ca.key.new 2048`));
  t.true(r.stdout.includes(`-subj /CN=kubernetes.default.svc -reqexts SAN -config ${pkiDir}/openssl.cnf`));
  t.regex(r.stdout, /\$ openssl x509 -req -in .*kubeminion2\.csr\.new -CA .*ca\.crt -CAkey .*ca\.key .*-CAcreateserial -extensions client/);
  t.regex(r.stdout, /would create/);

  // on an existing PKI with something to reissue, the token and keys still never show
  const { file, dir } = await build({ pki: { days: 2, renew_before_days: 1 } });
  writeInventory({ pki: { days: 365, renew_before_days: 30 } }, path.dirname(file));
  const before = snapshot(dir);
  const again = await runScript('master.ts', ['--pki-only', '--dry-run', '--inventory', file]);
  t.is(again.code, 0, again.all);
  t.regex(again.stdout, /would reissue: expires in 1 d/);
  const token = readFileSync(path.join(dir, 'tokens.csv'), 'utf8').split(',')[0];
  t.false(again.all.includes(token));
  t.false(again.all.includes('PRIVATE KEY'));
  t.deepEqual(snapshot(dir), before);
});

test('bad flags print the usage and exit 2', async (t) => {
  const r = await runScript('master.ts', ['--pki-onyl']);
  t.is(r.code, 2);
  t.regex(r.stderr, /Unknown option '--pki-onyl'/);
  t.regex(r.stderr, /usage: npx zx scripts\/master\.ts/);
  const both = await runScript('master.ts', ['--pki-only', '--only', 'kubeminion1']);
  t.is(both.code, 2);
  t.regex(both.stderr, /--pki-only and --only cannot be used together/);
  const unknown = await runScript('minions.ts', ['--only', 'kubeminion9', '--dry-run']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /--only names hosts not in the inventory: kubeminion9/);
});

test('a certificate read back reports subject, SANs, expiry and key type', async (t) => {
  const { dir } = await build();
  const info = parseCert(readFileSync(path.join(dir, 'server.crt')));
  t.is(info.keyType, 'rsa 2048');
  t.deepEqual(info.eku, ['serverAuth']);
  t.true(info.notAfter > new Date());
});
