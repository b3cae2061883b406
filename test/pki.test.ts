import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { caSpecs, leafSpecs } from '../config/certs.ts';
import { opensslConfig } from '../config/openssl.ts';
import { writeAtomic } from '../lib/atomic.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { configureLog, mask } from '../lib/log.ts';
import { adminKubeconfigText, applyPki } from '../lib/pki/apply.ts';
import { checkCa, checkLeaf, drift, expectedKeyType } from '../lib/pki/check.ts';
import { insecureMode, secretFiles, tightenModes } from '../lib/pki/dir.ts';
import * as openssl from '../lib/pki/openssl.ts';
import { planPki, summary } from '../lib/pki/plan.ts';
import { parseCert, PkiError, readCert, readKey, readPublicKey, UnreadableError } from '../lib/pki/read.ts';
import { newToken, readToken, readTokenFile, retiringMarker, retiringToken, tokensCsv } from '../lib/pki/token.ts';
import { repoRoot, tempDir, writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

// the log lines of this file's runs; tests that clear and read them are serial (concurrent ones would clear them mid-way)
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
  t.true(files.includes('ca.crt') && files.includes('tokens.csv') && files.includes('kubeminion2.key'));
  t.false(files.includes('ca.srl'), 'no serial file: every serial is random');
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
  t.deepEqual(changedFiles(before, snapshot(dir)), ['openssl.cnf', 'server.crt', 'server.csr', 'server.key']);
  t.true(readCert(path.join(dir, 'server.crt'))!.sans.includes('IP:10.0.0.5'));
});

test('a minion added to the inventory gets only its own files', async (t) => {
  const { file, dir } = await build();
  const before = snapshot(dir);
  writeInventory({ minions: ['kubeminion1', 'kubeminion2', 'kubeminion3'] }, path.dirname(file));
  const r = await runScript('master.ts', ['--pki-only', '--inventory', file]);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /kubeminion3\.crt .* created/);
  t.deepEqual(changedFiles(before, snapshot(dir)), ['kubeminion3.crt', 'kubeminion3.csr', 'kubeminion3.key']);
});

test('a minion removed from the inventory is reported and its files are kept', async (t) => {
  const { file, dir } = await build();
  writeInventory({ minions: ['kubeminion1'] }, path.dirname(file));
  const r = await runScript('master.ts', ['--pki-only', '--inventory', file]);
  t.is(r.code, 0, r.all);
  t.regex(r.all, /kubeminion2\.crt belongs to no host of the inventory/);
  t.true(existsSync(path.join(dir, 'kubeminion2.key')));
});

test.serial('ECDSA P-256 keys are generated with genpkey and the certificates verify', async (t) => {
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
  t.regex(r.stdout, /\$ openssl ca -batch -config \S+\/kubetls-sign-XXXXXX\/ca\.cnf -in .*kubeminion2\.csr\.new -out .*kubeminion2\.crt\.new -startdate \d{14}Z -enddate \d{14}Z -extfile .*openssl\.cnf -extensions client .*-cert .*ca\.crt -keyfile .*ca\.key/);
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

// ---- lib/pki/openssl.ts and config/openssl.ts, fast (EC keys), each property as the openssl CLI reads it --------
// Titles start with "openssl:" so that `npm run mutate` can run just these (see test/MUTATION.md).

/** Every extension of a certificate as `openssl x509 -ext` prints it (one string, names and values). */
const exts = async (file: string) => (await execa('openssl', ['x509', '-noout', '-in', file, '-ext',
  'basicConstraints,keyUsage,extendedKeyUsage,subjectAltName'])).stdout;
const keyIds = async (file: string) => {
  const out = (await execa('openssl', ['x509', '-noout', '-in', file, '-ext', 'subjectKeyIdentifier,authorityKeyIdentifier'])).stdout;
  return { ski: /Subject Key Identifier:\s*\n\s*(\S+)/.exec(out)?.[1], aki: /Authority Key Identifier:\s*\n\s*(?:keyid:)?(\S+)/.exec(out)?.[1] };
};

/** One modern PKI with EC P-256 keys (fast), built by applyPki, shared by the tests below. */
const modernEc = build({ profile: 'modern', pki: { key: 'ecdsa-p256' }, minions: ['kubeminion1'] });

test('openssl: the CA signs certificates and CRLs only; the server is serverAuth, a minion clientAuth; all critical where RFC 5280 wants it', async (t) => {
  const { dir } = await modernEc;
  const p = (f: string) => path.join(dir, f);
  t.is(await exts(p('ca.crt')), [
    'X509v3 Basic Constraints: critical', '    CA:TRUE', 'X509v3 Key Usage: critical', '    Certificate Sign, CRL Sign'].join('\n'));
  t.is(await exts(p('server.crt')), [
    'X509v3 Basic Constraints: critical', '    CA:FALSE', 'X509v3 Key Usage: critical', '    Digital Signature, Key Encipherment',
    'X509v3 Extended Key Usage: ', '    TLS Web Server Authentication',
    'X509v3 Subject Alternative Name: ', '    DNS:kubernetes.default.svc, DNS:kubemaster, IP Address:10.24.0.1'].join('\n'));
  for (const f of ['kubeminion1.crt', 'admin.crt', 'apiserver-etcd-client.crt']) {
    t.is(await exts(p(f)), [
      'X509v3 Basic Constraints: critical', '    CA:FALSE', 'X509v3 Key Usage: critical', '    Digital Signature, Key Encipherment',
      'X509v3 Extended Key Usage: ', '    TLS Web Client Authentication'].join('\n'), f);
  }
  // the certificates with names of their own (ext_<name> sections): the server lines, their own EKU and SANs
  t.is(await exts(p('etcd-server-kubemaster.crt')), [
    'X509v3 Basic Constraints: critical', '    CA:FALSE', 'X509v3 Key Usage: critical', '    Digital Signature, Key Encipherment',
    'X509v3 Extended Key Usage: ', '    TLS Web Server Authentication, TLS Web Client Authentication',
    'X509v3 Subject Alternative Name: ', '    DNS:kubemaster, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1'].join('\n'));
  t.is(await exts(p('kubelet-kubeminion1.crt')), [
    'X509v3 Basic Constraints: critical', '    CA:FALSE', 'X509v3 Key Usage: critical', '    Digital Signature, Key Encipherment',
    'X509v3 Extended Key Usage: ', '    TLS Web Server Authentication',
    'X509v3 Subject Alternative Name: ', '    DNS:kubeminion1'].join('\n'));
});

test('openssl: every certificate names its key (SKI) and a leaf its CA\'s key (AKI); X.509 v3, ECDSA with SHA-256', async (t) => {
  const { dir } = await modernEc;
  const p = (f: string) => path.join(dir, f);
  const ca = await keyIds(p('ca.crt'));
  t.regex(ca.ski ?? '', /^[0-9A-F:]{59}$/);
  t.is(ca.aki, ca.ski, 'the CA names itself as its authority (keyid:always)');
  for (const f of ['server.crt', 'kubeminion1.crt', 'kubelet-kubeminion1.crt']) {
    const leaf = await keyIds(p(f));
    t.regex(leaf.ski ?? '', /^[0-9A-F:]{59}$/, f);
    t.not(leaf.ski, ca.ski, f);
    t.is(leaf.aki, ca.ski, f);
  }
  const etcd = await keyIds(p('etcd-server-kubemaster.crt'));
  t.is(etcd.aki, (await keyIds(p('etcd-ca.crt'))).ski);
  for (const f of ['ca.crt', 'etcd-ca.crt', 'server.crt', 'kubeminion1.crt', 'etcd-peer-kubemaster.crt']) {
    const text = (await execa('openssl', ['x509', '-noout', '-text', '-in', p(f)])).stdout;
    t.regex(text, /Version: 3 \(0x2\)/, f);
    t.deepEqual(text.match(/Signature Algorithm: \S+/g), ['Signature Algorithm: ecdsa-with-SHA256', 'Signature Algorithm: ecdsa-with-SHA256'], f);
  }
  // the CSRs are signed with SHA-256 too (what the CA sees before it signs)
  const csr = (await execa('openssl', ['req', '-noout', '-text', '-in', p('server.csr')])).stdout;
  t.regex(csr, /Signature Algorithm: ecdsa-with-SHA256/);
  t.regex(csr, /DNS:kubernetes\.default\.svc, DNS:kubemaster, IP Address:10\.24\.0\.1/, 'the server CSR asks for the SANs (-reqexts SAN)');
});

test('openssl: every section a certificate is signed with states its key identifiers itself and each extension once, none left to openssl\'s choice', (t) => {
  // OpenSSL 3.0 adds subjectKeyIdentifier and authorityKeyIdentifier when a section does not name them; 1.1 added
  // neither. The certificates must not depend on that default (the test above cannot tell the two apart on 3.0), so
  // the generated openssl.cnf, which is what pki/openssl.cnf holds, names both in every section openssl signs with.
  const cnf = opensslConfig(loadInventory(writeInventory({ profile: 'modern', minions: ['kubeminion1'] })));
  const sections = new Map<string, string[]>();
  let current: string[] = [];
  for (const line of cnf.split('\n')) {
    const head = /^\[ (\S+) \]$/.exec(line);
    if (head) sections.set(head[1], current = []);
    else if (line.trim() && !line.startsWith('#')) current.push(line);
  }
  const signing = [...sections.keys()].filter((s) => s === 'v3_ca' || s === 'server' || s === 'client' || s.startsWith('ext_'));
  t.true(signing.length >= 5, signing.join(' '));
  for (const s of signing) {
    const lines = sections.get(s)!;
    t.true(lines.includes('subjectKeyIdentifier = hash'), `[ ${s} ]`);
    t.true(lines.some((l) => /^authorityKeyIdentifier = keyid[,:]/.test(l)), `[ ${s} ]`);
    // each extension once: with two lines for one key, which one wins is openssl's business, not a decision of ours
    const keys = lines.map((l) => l.split(' = ')[0]);
    t.deepEqual(keys, [...new Set(keys)], `[ ${s} ]`);
  }
  // the server's names numbered as the recipe's step 4 writes them: DNS.1, DNS.2, IP.1
  t.deepEqual(sections.get('server_alt_names'), ['DNS.1 = kubernetes.default.svc', 'DNS.2 = kubemaster', 'IP.1 = 10.24.0.1']);
});

test('openssl: keys are made on the curve or with the bits asked, by genkey and by req -newkey', async (t) => {
  const dir = path.dirname(writeInventory());
  const p = (f: string) => path.join(dir, f);
  const curve = (f: string) => createPrivateKey(readFileSync(p(f))).asymmetricKeyDetails;
  await openssl.genkey(p('p384.key'), 'ecdsa-p384', 0);
  await openssl.genkey(p('p256.key'), 'ecdsa-p256', 0);
  await openssl.genkey(p('rsa.key'), 'rsa', 2048);
  t.is(curve('p384.key')?.namedCurve, 'secp384r1');
  t.is(curve('p256.key')?.namedCurve, 'prime256v1');
  t.is(curve('rsa.key')?.modulusLength, 2048);
  const inv = loadInventory(writeInventory({}, dir));
  writeFileSync(p('openssl.cnf'), opensslConfig(inv));
  await openssl.reqNewkey({ type: 'ecdsa-p384', bits: 0, keyout: p('m.key'), subj: openssl.subj('m'), config: p('openssl.cnf'), out: p('m.csr') });
  t.is(curve('m.key')?.namedCurve, 'secp384r1');
  await openssl.pubout({ key: p('p256.key'), out: p('p256.pub') });
  t.is(createPublicKey(readFileSync(p('p256.pub'))).export({ type: 'spki', format: 'pem' }),
    createPublicKey(createPrivateKey(readFileSync(p('p256.key')))).export({ type: 'spki', format: 'pem' }), 'pubout writes the key\'s own public half');
  t.deepEqual(openssl.keySpec('rsa', 3072), { newkey: ['-newkey', 'rsa:3072'] });
  t.is(openssl.keySpec('ecdsa-p256', 0).curve, 'P-256');
  // keys: openssl itself creates them owner-only (no shell, no umask of ours: this process's umask is the usual 022);
  // the CSR and the public key are set to 0600 right after
  t.is(process.umask(0o022), 0o022, 'the test runs with a permissive umask, so the key modes below are openssl\'s own');
  for (const f of ['p384.key', 'p256.key', 'rsa.key', 'm.key']) t.is(statSync(p(f)).mode & 0o777, 0o600, `${f}: owner-only from the first byte, by openssl`);
  for (const f of ['m.csr', 'p256.pub']) t.is(statSync(p(f)).mode & 0o777, 0o600, `${f}: 0600 after the command`);
});

test.serial('openssl: the CA certificate, the CSRs and the certificates are 0600 after each command, whatever the umask, and no signing database is left', async (t) => {
  const dir = path.dirname(writeInventory());
  const p = (f: string) => path.join(dir, f);
  t.is(process.umask(0o022), 0o022, 'a permissive umask: openssl alone would leave these files 0644');
  const inv = loadInventory(writeInventory({}, dir));
  writeFileSync(p('openssl.cnf'), opensslConfig(inv), { mode: 0o600 });
  await openssl.genkey(p('ca.key'), 'ecdsa-p256', 0);
  // every signing's database in a temp folder of this test's own (serial: no other test of this file runs meanwhile)
  const tmp = tempDir('kubetls-signers-');
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  t.teardown(() => { if (saved === undefined) delete process.env.TMPDIR; else process.env.TMPDIR = saved; });
  t.is(tmpdir(), tmp);
  await openssl.selfSignCa({ key: p('ca.key'), subj: openssl.subj('ca'), days: 2, out: p('ca.crt'), config: p('openssl.cnf') });
  await openssl.genkey(p('server.key'), 'ecdsa-p256', 0);
  await openssl.reqNew({ key: p('server.key'), subj: openssl.subj('s'), reqexts: 'SAN', config: p('openssl.cnf'), out: p('server.csr') });
  await openssl.signCsr({ csr: p('server.csr'), ca: p('ca.crt'), caKey: p('ca.key'), extensions: 'server',
    extfile: p('openssl.cnf'), days: 1, out: p('server.crt') });
  for (const f of ['ca.crt', 'server.csr', 'server.crt']) t.is(statSync(p(f)).mode & 0o777, 0o600, f);
  t.deepEqual(readdirSync(tmp), [], 'each signing\'s own database is removed after it');
  t.deepEqual(readdirSync(dir).sort(), ['ca.crt', 'ca.key', 'cluster.yaml', 'openssl.cnf', 'server.crt', 'server.csr', 'server.key'], 'and none is made in the PKI folder');
});

test.serial('openssl: a failing command is an OpensslError with its exit code and the last lines of stderr, and --dry-run runs nothing', async (t) => {
  const missing = path.join(path.dirname(writeInventory()), 'no', 'such', 'ca.key');
  const e = await t.throwsAsync(openssl.genkey(missing, 'ecdsa-p256', 0), { instanceOf: openssl.OpensslError });
  t.is(e?.exitCode, 1);
  t.regex(e?.message ?? '', new RegExp(`^openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ${missing} failed \\(exit 1\\): \\S`));
  t.false(e?.message.includes('\n'), 'one line');
  t.deepEqual(e?.argv, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', missing]);
  t.is(e?.name, 'OpensslError');
  t.true(e?.message.endsWith(`failed (exit 1): genpkey: Can't open "${missing}" for writing, No such file or directory`), e?.message);
  // openssl's own reason, its last three lines joined by " | " (openssl ca prints more here, the first ones not errors)
  const dir = path.dirname(writeInventory());
  const p = (f: string) => path.join(dir, f);
  writeFileSync(p('garbage.crt'), 'not a certificate\n');
  writeFileSync(p('ext.cnf'), '[ client ]\nbasicConstraints = critical, CA:FALSE\n');
  await openssl.genkey(p('m.key'), 'ecdsa-p256', 0);
  await execa('openssl', ['req', '-new', '-key', p('m.key'), '-subj', '/CN=m', '-out', p('m.csr')]);
  const four = await t.throwsAsync(openssl.signCsr({ csr: p('m.csr'), ca: p('garbage.crt'), caKey: p('m.key'),
    extensions: 'client', extfile: p('ext.cnf'), days: 1, out: p('m.crt') }), { instanceOf: openssl.OpensslError });
  t.is(four?.stderr.trim().split('\n').length, 3, four?.stderr);
  t.regex(four?.message ?? '', new RegExp(`failed \\(exit 1\\): Using configuration from \\S+/ca\\.cnf \\| Could not read CA certificate from ${p('garbage.crt').replace(/[.]/g, '\\.')} \\| Unable to load CA certificate$`));
  // no openssl on the PATH (in a child process: the other tests of this file run openssl meanwhile): no exit code,
  // and the reason is the one node gives
  const child = await execa(process.execPath, ['--import=tsx', '--input-type=module', '-e',
    `import('./lib/pki/openssl.ts').then((o) => o.genkey(${JSON.stringify(p('x.key'))}, 'rsa', 2048)).catch((e) => console.log(JSON.stringify([e.name, e.exitCode ?? null, e.message])))`],
  { cwd: repoRoot, env: { PATH: '/nonexistent' }, extendEnv: true, reject: false });
  const [name, code, message] = JSON.parse(child.stdout.split('\n').at(-1) || '[]') as [string, number | null, string];
  t.is(name, 'OpensslError', child.stdout + child.stderr);
  t.is(code, null);
  t.regex(message, /^openssl genrsa -out \S+ 2048 failed \(exit \?\): .*spawn openssl ENOENT/);
  lines.length = 0;
  const out = path.join(path.dirname(missing), '..', 'dry.key');
  await openssl.genkey(out, 'rsa', 2048, { dryRun: true });
  t.false(existsSync(out));
  t.true(lines.some((l) => l.includes(`$ openssl genrsa -out ${out} 2048`)), lines.join('\n'));
});

test('openssl: verify is ok only for a certificate that chains to the CA given and, when asked, serves that purpose', async (t) => {
  const { dir } = await modernEc;
  const p = (f: string) => path.join(dir, f);
  t.like(await openssl.verify(p('ca.crt'), p('kubeminion1.crt')), { ok: true });
  t.like(await openssl.verify(p('ca.crt'), p('kubeminion1.crt'), 'sslclient'), { ok: true });
  t.like(await openssl.verify(p('ca.crt'), p('kubeminion1.crt'), 'sslserver'), { ok: false });
  t.like(await openssl.verify(p('ca.crt'), p('server.crt'), 'sslserver'), { ok: true });
  const other = await openssl.verify(p('etcd-ca.crt'), p('kubeminion1.crt'));
  t.false(other.ok);
  t.regex(other.output, /unable to get local issuer certificate/);
});

test('openssl: -subj escapes each of \\ / + = in a value and nothing else, and puts O before CN', (t) => {
  t.is(openssl.subjValue('a\\b/c+d=e f:g.h@i-j_k,l'), 'a\\\\b\\/c\\+d\\=e f:g.h@i-j_k,l');
  t.is(openssl.subj('system:node:m1', 'system:nodes'), '/O=system:nodes/CN=system:node:m1');
  t.is(openssl.subj('x/O=y'), '/CN=x\\/O\\=y');
});

// ---- lib/pki/'s decisions and modes, in-process with EC keys (fast enough for `npm run mutate`) -----------
// Titles start with "pki:" so that test/MUTATION.md's Stryker command can select them.

const ecLegacy = () => build({ pki: { key: 'ecdsa-p256' } });
const DAY = 86_400_000;

test('pki: a leaf is checked against its CA, its key and the clock, the worst finding first, every reason kept', async (t) => {
  const { inv, dir } = await ecLegacy();
  const other = await ecLegacy();
  const spec = leafSpecs(inv).find((s) => s.name === 'kubeminion1')!;
  const ca = checkCa(inv).info;
  const notAfter = readCert(path.join(dir, 'kubeminion1.crt'))!.notAfter.getTime();
  t.like(checkLeaf(inv, spec, ca), { status: 'ok', reasons: [], daysLeft: 364 });
  t.is(checkLeaf(inv, spec, undefined).status, 'not signed by CA', 'a CA that could not be checked vouches for nothing, even with ca.crt on disk');
  // renew window: exactly renew_before_days (30) before notAfter it is due, a second before it is not
  t.is(checkLeaf(inv, spec, ca, new Date(notAfter - 30 * DAY - 1000)).status, 'ok');
  t.like(checkLeaf(inv, spec, ca, new Date(notAfter - 30 * DAY)), { status: 'renew due', reasons: ['expires in 30 d'] });
  t.like(checkLeaf(inv, spec, ca, new Date(notAfter)), { status: 'expired', reasons: ['expired 0 d ago'] });
  t.like(checkLeaf(inv, spec, ca, new Date(notAfter + 3 * DAY)), { status: 'expired', reasons: ['expired 3 d ago'] });
  t.like(checkLeaf(inv, spec, ca, new Date(notAfter - 1000)), { status: 'renew due' }, 'one second left is due, not expired');
  // another CA's certificate with our key: not signed by CA, and its key does not match either
  writeFileSync(path.join(dir, 'kubeminion1.crt'), readFileSync(path.join(other.dir, 'kubeminion1.crt')));
  const otherNotAfter = readCert(path.join(dir, 'kubeminion1.crt'))!.notAfter.getTime();
  t.deepEqual(checkLeaf(inv, spec, ca, new Date(otherNotAfter)).reasons, ['not signed by the current CA', 'key does not match the certificate', 'expired 0 d ago']);
  t.is(checkLeaf(inv, spec, ca).status, 'not signed by CA');
  t.is(checkLeaf(inv, spec, undefined).status, 'not signed by CA', 'no CA read: nothing is trusted');
  writeFileSync(path.join(dir, 'kubeminion1.key'), readFileSync(path.join(other.dir, 'kubeminion1.key')));
  t.like(checkLeaf(inv, spec, ca), { status: 'not signed by CA', reasons: ['not signed by the current CA'] });
  // right CA, other key
  const m2 = leafSpecs(inv).find((s) => s.name === 'kubeminion2')!;
  writeFileSync(path.join(dir, 'kubeminion2.key'), readFileSync(path.join(other.dir, 'kubeminion2.key')));
  const m2NotAfter = readCert(path.join(dir, 'kubeminion2.crt'))!.notAfter.getTime();
  t.like(checkLeaf(inv, m2, ca, new Date(m2NotAfter - DAY)), { status: 'key mismatch', reasons: ['key does not match the certificate', 'expires in 1 d'] });
  rmSync(path.join(dir, 'kubeminion2.key'));
  t.like(checkLeaf(inv, m2, ca), { status: 'key mismatch', reasons: ['key file missing'] });
  rmSync(path.join(dir, 'kubeminion2.crt'));
  t.like(checkLeaf(inv, m2, ca), { status: 'missing', reasons: ['missing'] });
  t.like(checkLeaf(inv, spec, ca), { status: 'not signed by CA' });
  rmSync(path.join(dir, 'kubeminion1.crt'));
  t.like(checkLeaf(inv, spec, ca), { status: 'missing', reasons: ['certificate missing'] }, 'its key is still there');
  // drift comes after expiry and before the renew window
  const server = leafSpecs(inv).find((s) => s.name === 'server')!;
  const moved = { ...inv, apiserver: { ...inv.apiserver, cn: 'other.example' } };
  const sNotAfter = readCert(path.join(dir, 'server.crt'))!.notAfter.getTime();
  t.like(checkLeaf(moved, { ...server, cn: 'other.example' }, ca, new Date(sNotAfter - DAY)),
    { status: 'drift', reasons: ['subject CN=kubernetes.default.svc, expected CN=other.example', 'expires in 1 d'] });
});

test('pki: drift names each difference: subject (CN and O), SANs added and removed, key type and size, a missing usage', async (t) => {
  const { inv, dir } = await ecLegacy();
  const server = leafSpecs(inv).find((s) => s.name === 'server')!;
  const info = readCert(path.join(dir, 'server.crt'))!;
  t.deepEqual(drift(inv, server, info), []);
  t.deepEqual(drift(inv, { ...server, o: 'system:masters' }, info), ['subject CN=kubernetes.default.svc, expected O=system:masters, CN=kubernetes.default.svc']);
  t.deepEqual(drift(inv, { ...server, sans: [...server.sans, 'IP:10.0.0.9'] }, info), ['SAN added: IP:10.0.0.9']);
  t.deepEqual(drift(inv, { ...server, sans: server.sans.slice(1) }, info), ['SAN removed: DNS:kubernetes.default.svc']);
  t.deepEqual(drift(inv, { ...server, sans: ['DNS:a', 'DNS:b'] }, info), ['SAN added: DNS:a, DNS:b', 'SAN removed: DNS:kubernetes.default.svc, DNS:kubemaster, IP:10.24.0.1']);
  t.deepEqual(drift({ ...inv, pki: { ...inv.pki, key: 'rsa', bits: 3072 } }, server, info), ['key ecdsa-p256, expected rsa 3072']);
  t.deepEqual(drift({ ...inv, pki: { ...inv.pki, key: 'ecdsa-p384' } }, server, info), ['key ecdsa-p256, expected ecdsa-p384']);
  t.deepEqual(drift(inv, { ...server, eku: ['serverAuth', 'clientAuth'] }, info), ['no extendedKeyUsage clientAuth']);
  const m = readCert(path.join(dir, 'kubeminion1.crt'))!;
  const mSpec = leafSpecs(inv).find((s) => s.name === 'kubeminion1')!;
  t.deepEqual(drift(inv, { ...mSpec, o: 'system:nodes' }, m), ['subject CN=kubeminion1, expected O=system:nodes, CN=kubeminion1']);
  t.is(expectedKeyType({ ...inv, pki: { ...inv.pki, key: 'rsa', caBits: 4096, bits: 2048 } }, true), 'rsa 4096');
  t.is(expectedKeyType({ ...inv, pki: { ...inv.pki, key: 'rsa', caBits: 4096, bits: 2048 } }), 'rsa 2048');
});

test('pki: the CA is kept only whole and sound; a lone key or certificate, a foreign key or a non-CA certificate stops the run', async (t) => {
  const { inv, dir } = await ecLegacy();
  const other = await ecLegacy();
  const p = (f: string) => path.join(dir, f);
  const notAfter = readCert(p('ca.crt'))!.notAfter.getTime();
  t.like(checkCa(inv), { status: 'ok', reasons: [] });
  t.like(checkCa(inv, new Date(notAfter - 30 * DAY - 1000)), { status: 'ok' });
  t.like(checkCa(inv, new Date(notAfter - 30 * DAY)), { status: 'renew due', reasons: ['CA expires in 30 d'] });
  t.like(checkCa(inv, new Date(notAfter)), { status: 'expired', reasons: ['CA expired 0 d ago'] });
  t.like(checkCa(inv, new Date(notAfter + 2 * DAY)), { status: 'expired', reasons: ['CA expired 2 d ago'] });
  const caKey = readFileSync(p('ca.key'));
  writeFileSync(p('ca.key'), readFileSync(path.join(other.dir, 'ca.key')));
  t.regex(t.throws(() => checkCa(inv), { instanceOf: PkiError })!.message, /ca\.key does not match .*ca\.crt: refusing to replace the CA silently/);
  writeFileSync(p('ca.key'), caKey);
  const caCrt = readFileSync(p('ca.crt'));
  writeFileSync(p('ca.crt'), readFileSync(p('server.crt')));
  writeFileSync(p('ca.key'), readFileSync(p('server.key')));
  t.regex(t.throws(() => checkCa(inv), { instanceOf: PkiError })!.message, /ca\.crt is not a CA certificate \(basicConstraints CA:FALSE\)/);
  writeFileSync(p('ca.crt'), caCrt);
  rmSync(p('ca.key'));
  t.regex(t.throws(() => checkCa(inv), { instanceOf: PkiError })!.message, /ca\.crt exists without ca\.key: cannot sign with this CA/);
  writeFileSync(p('ca.key'), caKey);
  rmSync(p('ca.crt'));
  t.regex(t.throws(() => checkCa(inv), { instanceOf: PkiError })!.message, /ca\.key exists without ca\.crt: refusing to replace the CA silently/);
  rmSync(p('ca.key'));
  t.deepEqual(checkCa(inv), { status: 'missing', reasons: ['missing'] });
  // with the CA gone every leaf is reissued by the new one, and says why
  const plan = planPki(inv);
  t.deepEqual(plan.items.map((i) => [i.name, i.action, i.reason]), [['ca', 'create', 'no CA yet'], ['server', 'reissue', 'new CA'],
    ['kubeminion1', 'reissue', 'new CA'], ['kubeminion2', 'reissue', 'new CA'], ['tokens', 'keep', '']]);
});

test('pki: the plan keeps what is sound, creates what is missing and reissues the rest with the reasons; orphans are listed', async (t) => {
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' }, profile: 'modern', minions: ['kubeminion1'] });
  const p = (f: string) => path.join(dir, f);
  const first = planPki(inv);
  t.true(first.items.every((i) => i.action === 'keep' && i.reason === ''), JSON.stringify(first.items.filter((i) => i.action !== 'keep')));
  t.false(first.config.changed);
  t.deepEqual(first.orphans, []);
  rmSync(p('front-proxy-client.crt'));
  writeFileSync(p('kubelet-kubeminion1.crt'), readFileSync(p('kube-proxy.crt')));
  writeFileSync(p('stray.crt'), readFileSync(p('ca.crt'))); // a host that left the inventory
  writeFileSync(p('openssl.cnf'), 'edited\n');
  rmSync(p('sa.pub'));
  const plan = planPki(inv);
  const item = (n: string) => plan.items.find((i) => i.name === n)!;
  t.like(item('front-proxy-client'), { action: 'create', reason: '' });
  t.regex(checkLeaf(inv, leafSpecs(inv).find((x) => x.name === 'etcd-peer-kubemaster')!, checkCa(inv).info).reasons.join('; '), /^$/);
  writeFileSync(p('apiserver-etcd-client.crt'), readFileSync(p('kube-proxy.crt'))); // the cluster CA's, not etcd-ca's
  t.regex(planPki(inv).items.find((i) => i.name === 'apiserver-etcd-client')!.reason, /^not signed by the current etcd-ca; /);
  const etcdCa = readCert(p('etcd-ca.crt'))!.notAfter.getTime();
  t.deepEqual(checkCa(inv, new Date(etcdCa - DAY), 'etcd-ca').reasons, ['etcd-ca expires in 1 d']);
  t.is(item('kubelet-kubeminion1').action, 'reissue');
  t.regex(item('kubelet-kubeminion1').reason, /^key does not match the certificate; subject CN=system:kube-proxy, expected O=system:nodes, CN=system:node:kubeminion1; SAN added: DNS:kubeminion1; no extendedKeyUsage serverAuth$/);
  t.like(item('sa'), { action: 'reissue', reason: 'sa.key and sa.pub incomplete' });
  t.like(item('ca'), { action: 'keep', reason: '' });
  t.like(item('kube-proxy'), { action: 'keep', reason: '' });
  t.deepEqual(plan.orphans, ['stray.crt']);
  t.true(plan.config.changed);
  writeFileSync(p('sa.pub'), readFileSync(p('ca.crt')).subarray(0, 0));
  t.throws(() => planPki(inv), { instanceOf: PkiError, message: /sa\.pub: empty, not a PEM public key/ });
  const other = await build({ pki: { key: 'ecdsa-p256' }, profile: 'modern', minions: ['kubeminion1'] });
  writeFileSync(p('sa.pub'), readFileSync(path.join(other.dir, 'sa.pub')));
  t.like(planPki(inv).items.find((i) => i.name === 'sa'), { action: 'reissue', reason: 'sa.pub does not match sa.key' });
  rmSync(p('sa.pub'));
  rmSync(p('sa.key'));
  t.like(planPki(inv).items.find((i) => i.name === 'sa'), { action: 'create', reason: '' });
});

test('pki: tokens.csv that is empty, cut short or for another user stops the run and is never replaced silently', async (t) => {
  const { inv, dir } = await ecLegacy();
  const file = path.join(dir, 'tokens.csv');
  const good = readFileSync(file, 'utf8');
  t.regex(readToken(inv) ?? '', /^[A-Za-z0-9]{32}$/);
  for (const [text, says] of [['', /tokens\.csv: empty \(truncated\?\); restore it/], ['\n', /empty/], [good.slice(0, 20), /not one "TOKEN,kubelet,kubelet" line \(truncated\?\)/],
    [good.replace(',kubelet,', ',admin,'), /not one "TOKEN,kubelet,kubelet" line/], [`${good.slice(0, 31)},kubelet,kubelet\n`, /not one/]] as const) {
    writeFileSync(file, text);
    const e = t.throws(() => planPki(inv), { instanceOf: PkiError }, JSON.stringify(text));
    t.regex(e!.message, says, JSON.stringify(text));
    t.false(e!.message.includes(good.slice(0, 32)), 'the token is never quoted');
  }
  rmSync(file);
  t.like(planPki(inv).items.find((i) => i.name === 'tokens'), { action: 'create', reason: '' });
});

test.serial('pki: secrets others can read are found and set back to 0600, foreign files and the folder left alone; --dry-run only says it', async (t) => {
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' }, profile: 'modern', minions: ['kubeminion1'] });
  const p = (f: string) => path.join(dir, f);
  t.deepEqual(secretFiles(inv).filter((f) => f.endsWith('.key') || f.endsWith('.csv')).sort(), secretFiles(inv).sort());
  t.true(['ca.key', 'server.key', 'kubeminion1.key', 'admin.key', 'tokens.csv', 'sa.key'].every((f) => secretFiles(inv).includes(f)));
  t.is(insecureMode(p('ca.key')), undefined);
  t.is(insecureMode(p('no-such.key')), undefined);
  for (const [f, mode, shownAs] of [['ca.key', 0o640, '0640'], ['tokens.csv', 0o604, '0604'], ['sa.key', 0o610, '0610'], ['admin.key', 0o602, '0602']] as const) {
    chmodSync(p(f), mode);
    t.is(insecureMode(p(f)), shownAs, f);
  }
  chmodSync(p('ca.crt'), 0o644); // not a secret: not ours to tighten here
  writeFileSync(p('notes.key'), 'x', { mode: 0o644 });
  lines.length = 0;
  t.deepEqual(tightenModes(inv, true).sort(), ['admin.key', 'ca.key', 'sa.key', 'tokens.csv']);
  t.is(statSync(p('ca.key')).mode & 0o777, 0o640, '--dry-run changes nothing');
  t.true(lines.some((l) => l.endsWith(`$ chmod 600 ${p('ca.key')}`)), lines.join('\n'));
  t.true(lines.some((l) => /WARNING: .*ca\.key had mode 0640: other accounts could read this secret; setting it to 0600/.test(l)), lines.join('\n'));
  t.deepEqual(tightenModes(inv).sort(), ['admin.key', 'ca.key', 'sa.key', 'tokens.csv']);
  for (const f of ['ca.key', 'tokens.csv', 'sa.key', 'admin.key']) t.is(statSync(p(f)).mode & 0o777, 0o600, f);
  t.is(statSync(p('ca.crt')).mode & 0o777, 0o644);
  t.is(statSync(p('notes.key')).mode & 0o777, 0o644);
  t.is(statSync(dir).mode & 0o777, 0o700);
  t.deepEqual(tightenModes(inv), []);
});

test.serial('pki: pki.dir is made 0700, or set to 0700 when it holds only PKI files; a folder with foreign files keeps its mode', async (t) => {
  const inv = loadInventory(writeInventory({ pki: { key: 'ecdsa-p256' }, minions: [] }));
  mkdirSync(inv.pki.dir, { mode: 0o755 });
  chmodSync(inv.pki.dir, 0o755);
  for (const f of ['x.key', 'x.crt.new', 'ca.srl', 'openssl.cnf', 'tokens.csv', 'admin.kubeconfig', 'sa.pub', 'a-1.csr', '.renew-pending.json', '.last-renew', '.kubetls.lock']) {
    writeFileSync(path.join(inv.pki.dir, f), f === 'ca.srl' ? '01\n' : '');
  }
  rmSync(path.join(inv.pki.dir, 'tokens.csv')); // (an empty one would stop the run; its name is tested below)
  await applyPki(inv, planPki(inv));
  t.is(statSync(inv.pki.dir).mode & 0o777, 0o700, 'only PKI files: made owner-only');
  for (const f of readdirSync(inv.pki.dir).filter((x) => !['x.key', 'x.crt.new', 'ca.srl', 'a-1.csr', 'sa.pub', 'admin.kubeconfig', '.renew-pending.json', '.last-renew', '.kubetls.lock'].includes(x))) {
    t.is(statSync(path.join(inv.pki.dir, f)).mode & 0o777, 0o600, `${f} written 0600`);
  }
  for (const foreign of ['README.md', 'X.key', 'my_ca.key', 'tokens.csv.bak', 'ca.pem']) {
    const other = loadInventory(writeInventory({ pki: { key: 'ecdsa-p256' }, minions: [] }));
    mkdirSync(other.pki.dir);
    chmodSync(other.pki.dir, 0o750);
    writeFileSync(path.join(other.pki.dir, foreign), '');
    lines.length = 0;
    await applyPki(other, planPki(other));
    t.is(statSync(other.pki.dir).mode & 0o777, 0o750, foreign);
    t.true(lines.some((l) => l.includes(`holds files that are not part of the PKI (${foreign}): its mode is left as it is (0750)`)), lines.join('\n'));
  }
});

test.serial('pki: --dry-run creates and changes no folder; a new pki.dir is made 0700 with its parents, and one already 0700 is left alone', async (t) => {
  const inv = loadInventory(writeInventory({ pki: { key: 'ecdsa-p256', dir: 'deep/er/pki' }, minions: [] }));
  lines.length = 0; // a serial test: no other test logs meanwhile
  await applyPki(inv, planPki(inv), { dryRun: true });
  t.false(existsSync(path.dirname(inv.pki.dir)), '--dry-run made no folder');
  t.true(lines.some((l) => l.endsWith(`$ mkdir -m 700 ${inv.pki.dir}`)), lines.join('\n'));
  await applyPki(inv, planPki(inv));
  t.is(statSync(inv.pki.dir).mode & 0o777, 0o700);
  // an existing folder: --dry-run says the chmod and does not do it
  chmodSync(inv.pki.dir, 0o755);
  rmSync(path.join(inv.pki.dir, 'server.crt'));
  lines.length = 0;
  await applyPki(inv, planPki(inv), { dryRun: true });
  t.is(statSync(inv.pki.dir).mode & 0o777, 0o755);
  t.true(lines.some((l) => l.endsWith(`$ chmod 700 ${inv.pki.dir}`)), lines.join('\n'));
  // already 0700, with a foreign file in it: nothing to say, nothing to change
  chmodSync(inv.pki.dir, 0o700);
  writeFileSync(path.join(inv.pki.dir, 'README.md'), '');
  lines.length = 0;
  await applyPki(inv, planPki(inv));
  t.false(lines.some((l) => l.includes('chmod 700') || l.includes('not part of the PKI')), lines.join('\n'));
  t.true(existsSync(path.join(inv.pki.dir, 'server.crt')));
  // more than three foreign files: three are named, then …
  for (const f of ['a.txt', 'b.txt', 'c.txt']) writeFileSync(path.join(inv.pki.dir, f), '');
  chmodSync(inv.pki.dir, 0o750);
  rmSync(path.join(inv.pki.dir, 'server.crt'));
  lines.length = 0;
  await applyPki(inv, planPki(inv));
  t.true(lines.some((l) => /holds files that are not part of the PKI \(\S+, \S+, \S+, …\): its mode is left as it is \(0750\)/.test(l)), lines.join('\n'));
});

test('pki: writeAtomic creates the file with its mode from the first byte, replaces a leftover .new, and leaves none on failure', (t) => {
  const dir = tempDir('kubetls-atomic-');
  const f = path.join(dir, 'x.key');
  writeFileSync(`${f}.new`, 'leftover', { mode: 0o644 });
  const fds = readdirSync('/proc/self/fd').length;
  writeAtomic(f, 'secret', 0o600);
  t.is(readdirSync('/proc/self/fd').length, fds, 'no descriptor left open');
  t.is(readFileSync(f, 'utf8'), 'secret');
  t.is(statSync(f).mode & 0o777, 0o600);
  t.false(existsSync(`${f}.new`));
  writeAtomic(f, Buffer.from('kept for the caller'), 0o640, false);
  t.is(readFileSync(`${f}.new`, 'utf8'), 'kept for the caller');
  t.is(statSync(`${f}.new`).mode & 0o777, 0o640);
  t.is(readFileSync(f, 'utf8'), 'secret');
  mkdirSync(path.join(dir, 'folder'));
  t.throws(() => writeAtomic(path.join(dir, 'folder'), 'x', 0o600));
  t.false(existsSync(path.join(dir, 'folder.new')), 'no stray .new beside a file that could not be replaced');
});

test('pki: an unreadable PKI file says what it is instead, and never quotes a key', (t) => {
  const dir = tempDir('kubetls-pem-');
  const f = (name: string, text: string) => { writeFileSync(path.join(dir, name), text); return path.join(dir, name); };
  t.throws(() => readCert(f('a.crt', '')), { instanceOf: UnreadableError, message: /a\.crt: empty, not a PEM certificate \(truncated\?\)$/ });
  t.throws(() => readCert(f('b.crt', 'hello')), { instanceOf: UnreadableError, message: /b\.crt: not a PEM certificate$/ });
  t.throws(() => readCert(f('c.crt', '-----BEGIN CERTIFICATE-----\nMIIB\n')), { message: /c\.crt: not a PEM certificate \(truncated\?\)$/ });
  t.throws(() => readCert(f('d.crt', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')), { message: /d\.crt: not a PEM certificate \(corrupt: .+\)$/ });
  // key material made here, never kept in the repository: a real key cut short (its lines must never be quoted),
  // and the same key encrypted as PKCS#8 and as a traditional PEM with a Proc-Type header
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const [begin, ...body] = pem.trim().split('\n');
  const end = body.pop()!;
  const cut = [begin, ...body.slice(0, 1), end].join('\n') + '\n';
  const e = t.throws(() => readKey(f('e.key', cut)), { instanceOf: UnreadableError });
  t.regex(e!.message, /e\.key: not a PEM private key \(corrupt\)$/);
  t.false(body.some((l) => e!.message.includes(l)), 'no line of the key is quoted');
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'test' }) as string;
  t.regex(pkcs8, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  t.throws(() => readKey(f('f.key', pkcs8)), { message: /f\.key: a PEM private key protected by a passphrase: kubetls needs it unencrypted$/ });
  const sec1 = privateKey.export({ type: 'sec1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'test' }) as string;
  t.regex(sec1, /Proc-Type: 4,ENCRYPTED/);
  t.throws(() => readKey(f('g.key', sec1)), { message: /protected by a passphrase/ });
  t.throws(() => readCert(dir), { instanceOf: UnreadableError, message: /not a regular file$/ });
  t.is(readCert(path.join(dir, 'none.crt')), undefined);
});

test('pki: a certificate is read as openssl reads it: subject and issuer fields, every SAN kind, serial, fingerprint, key type, usages by name or OID', async (t) => {
  const dir = tempDir('kubetls-read-');
  const w = (f: string) => path.join(dir, f);
  const selfSigned = async (name: string, keyArgs: string[], subj: string, ext: string[]) => {
    await execa('openssl', ['req', '-x509', '-newkey', ...keyArgs, '-nodes', '-keyout', w(`${name}.key`), '-subj', subj, '-days', '2', '-out', w(`${name}.crt`),
      ...ext.flatMap((e) => ['-addext', e])]);
    return parseCert(readFileSync(w(`${name}.crt`)));
  };
  const a = await selfSigned('a', ['ec', '-pkeyopt', 'ec_paramgen_curve:secp521r1'], '/O=acme/OU=ops/CN=a.example', [
    'subjectAltName = DNS:a.example, IP:10.0.0.1, IP:2001:db8:0:0:0:0:0:1, URI:spiffe://a/b, email:ops@a.example',
    'extendedKeyUsage = serverAuth, clientAuth, codeSigning', 'basicConstraints = critical, CA:FALSE']);
  t.deepEqual(a.subject, { cn: 'a.example', o: 'acme' });
  t.is(a.issuer, 'O=acme, OU=ops, CN=a.example', 'every field of the issuer, in order');
  t.deepEqual(a.sans, ['DNS:a.example', 'IP:10.0.0.1', 'IP:2001:db8::1', 'URI:spiffe://a/b', 'email:ops@a.example']);
  t.deepEqual(a.eku, ['serverAuth', 'clientAuth', '1.3.6.1.5.5.7.3.3']);
  t.is(a.keyType, 'ec secp521r1');
  t.false(a.isCa);
  const cli = async (...flags: string[]) => (await execa('openssl', ['x509', '-noout', '-in', w('a.crt'), ...flags])).stdout;
  t.is(`serial=${a.serial}`, await cli('-serial'));
  t.is(`sha256 Fingerprint=${a.fingerprint}`, await cli('-fingerprint', '-sha256'));
  t.is(a.notAfter.getTime(), Date.parse((await cli('-enddate')).replace('notAfter=', '')));
  const b = await selfSigned('b', ['ed25519'], '/CN=b', ['basicConstraints = critical, CA:TRUE']);
  t.deepEqual(b.subject, { cn: 'b', o: undefined });
  t.deepEqual([b.issuer, b.sans, b.eku, b.keyType, b.isCa], ['CN=b', [], [], 'ed25519', true], 'no SAN and no extendedKeyUsage are empty lists');
  t.is((await selfSigned('c', ['ec', '-pkeyopt', 'ec_paramgen_curve:secp384r1'], '/CN=c', [])).keyType, 'ecdsa-p384');
  t.is((await selfSigned('d', ['ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'], '/CN=d', [])).keyType, 'ecdsa-p256');
  t.is((await selfSigned('e', ['rsa:1024'], '/CN=e', [])).keyType, 'rsa 1024');
  t.throws(() => parseCert('garbage', 'served by x'), { instanceOf: UnreadableError, message: 'served by x: not a PEM certificate' });
  t.throws(() => parseCert(''), { instanceOf: UnreadableError, message: 'certificate: empty, not a PEM certificate (truncated?)' });
});

test('pki: the summary has a row per item read from disk after the run: created, kept, reissued with the reason; --dry-run says would and reads nothing new', async (t) => {
  const file = writeInventory({ pki: { key: 'ecdsa-p256' }, profile: 'modern', minions: ['kubeminion1'] });
  const inv = loadInventory(file);
  const first = planPki(inv);
  const dry = summary(inv, first, true);
  t.is(dry.length, first.items.length);
  t.true(dry.every((r) => r.action === 'would create' && r.subject === '-' && r.sans === '-' && r.notAfter === '-'), JSON.stringify(dry[0]));
  t.deepEqual(dry.map((r) => path.basename(r.file)).filter((f) => !f.endsWith('.crt')), ['tokens.csv', 'sa.pub']);
  await applyPki(inv, first);
  const made = summary(inv, first);
  t.true(made.every((r) => r.action === 'created'));
  const server = made.find((r) => r.file.endsWith('/server.crt'))!;
  t.like(server, { subject: 'CN=kubernetes.default.svc', sans: 'DNS:kubernetes.default.svc,DNS:kubemaster,IP:10.24.0.1' });
  t.is(server.notAfter, readCert(path.join(inv.pki.dir, 'server.crt'))!.notAfter.toISOString().slice(0, 10));
  t.like(made.find((r) => r.file.endsWith('/kubeminion1.crt')), { subject: 'O=system:nodes, CN=system:node:kubeminion1', sans: '-' });
  t.like(made.find((r) => r.file.endsWith('/tokens.csv')), { subject: '-', notAfter: '-' });
  const moved = { ...inv, apiserver: { ...inv.apiserver, dns: ['kubemaster'] } };
  const plan = planPki(moved);
  const before = readCert(path.join(inv.pki.dir, 'server.crt'))!;
  const wouldRow = summary(moved, plan, true).find((r) => r.file.endsWith('/server.crt'))!;
  t.like(wouldRow, { action: 'would reissue: SAN removed: DNS:kubernetes.default.svc', subject: '-' });
  t.like(summary(moved, plan, true).find((r) => r.file.endsWith('/ca.crt')), { action: 'kept', subject: 'CN=kubemaster' }, 'a kept file is read under --dry-run too');
  await applyPki(moved, plan);
  const after = summary(moved, plan).find((r) => r.file.endsWith('/server.crt'))!;
  t.like(after, { action: 'reissued: SAN removed: DNS:kubernetes.default.svc', sans: 'DNS:kubemaster,IP:10.24.0.1' });
  t.not(readCert(path.join(inv.pki.dir, 'server.crt'))!.serial, before.serial);
});

test('pki: tokens.csv is read line by line: the first is the kubelet\'s, the one .token-retiring names is retired once, every token is masked', (t) => {
  const dir = tempDir('kubetls-tok-');
  const inv = { pki: { dir } } as Parameters<typeof readTokenFile>[0];
  const file = path.join(dir, 'tokens.csv');
  t.is(readTokenFile(inv), undefined);
  t.is(retiringToken(inv), undefined, 'no tokens.csv: nothing is being retired');
  const [a, b, c] = ['A', 'B', 'C'].map((x) => x.repeat(32));
  writeFileSync(file, `${a},kubelet,kubelet\n${b},kubelet,kubelet\n# a note\n${c},admin,admin,"system:masters"\n`);
  t.deepEqual(readTokenFile(inv), { current: a, currentLine: `${a},kubelet,kubelet`, retiring: undefined,
    others: [`${b},kubelet,kubelet`, '# a note', `${c},admin,admin,"system:masters"`] }, 'without the marker no line is retired');
  t.is(mask(`x ${b} y ${c}`), 'x *** y ***', 'the operator\'s tokens are secrets too');
  const sha = (x: string) => createHash('sha256').update(x).digest('hex');
  writeFileSync(retiringMarker(inv), `${sha(c)}\n`);
  t.like(readTokenFile(inv), { retiring: c, others: [`${b},kubelet,kubelet`, '# a note'] });
  writeFileSync(file, `${a},kubelet,kubelet\n${c},kubelet,kubelet\n${c},kubelet,kubelet\n`);
  t.like(readTokenFile(inv), { retiring: c, others: [`${c},kubelet,kubelet`] }, 'a repeated line is retired once');
  writeFileSync(retiringMarker(inv), `${sha('D'.repeat(32))}\n`);
  t.like(readTokenFile(inv), { retiring: undefined, others: [`${c},kubelet,kubelet`, `${c},kubelet,kubelet`] }, 'a marker naming no line retires nothing');
  writeFileSync(file, `x${a},kubelet,kubelet\n`);
  t.throws(() => readTokenFile(inv), { instanceOf: UnreadableError, message: /tokens\.csv: not one "TOKEN,kubelet,kubelet" line/ }, 'a 33-character token is no token');
  t.is(tokensCsv('l1'), 'l1\n');
  t.is(tokensCsv('l1', undefined, ['l3']), 'l1\nl3\n');
  t.is(tokensCsv('l1', 'l2', ['l3', 'l4']), 'l1\nl2\nl3\nl4\n');
});

test('pki: the specs give each certificate its usages, kind, CA and openssl section; errors say their class', (t) => {
  const inv = loadInventory(writeInventory({ profile: 'modern', minions: [{ name: 'kubeminion1', address: '10.0.0.5' }] }));
  const specs = Object.fromEntries(leafSpecs(inv).map((l) => [l.name, l]));
  t.like(specs.server, { kind: 'server', eku: ['serverAuth'], section: 'server', ca: 'ca' });
  t.like(specs.kubeminion1, { kind: 'minion', eku: ['clientAuth'], section: 'client', ca: 'ca', sans: [] });
  t.like(specs['apiserver-etcd-client'], { kind: 'leaf', eku: ['clientAuth'], section: 'client', ca: 'etcd-ca' });
  t.like(specs['kubelet-kubeminion1'], { kind: 'leaf', eku: ['serverAuth'], section: 'ext_kubelet_kubeminion1', ca: 'ca', sans: ['DNS:kubeminion1', 'IP:10.0.0.5'] });
  t.like(specs['etcd-server-kubemaster'], { kind: 'leaf', eku: ['serverAuth', 'clientAuth'], section: 'ext_etcd_server_kubemaster', ca: 'etcd-ca' });
  t.deepEqual(caSpecs(inv), [{ name: 'ca', cn: 'kubemaster' }, { name: 'etcd-ca', cn: 'etcd-ca' }, { name: 'front-proxy-ca', cn: 'front-proxy-ca' }]);
  t.is(new PkiError('x').name, 'PkiError');
  t.is(new UnreadableError('x').name, 'UnreadableError');
});

test('pki: a PKI file of another kind, blank or behind a link loop is named for what it is', (t) => {
  const dir = tempDir('kubetls-kind-');
  const f = (name: string, text: string) => { writeFileSync(path.join(dir, name), text); return path.join(dir, name); };
  const cert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const key = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  t.throws(() => readKey(f('a.key', cert)), { message: /a\.key: not a PEM private key$/ });
  t.throws(() => readPublicKey(f('a.pub', cert)), { message: /a\.pub: not a PEM public key$/ });
  t.throws(() => readCert(f('b.crt', key)), { message: /b\.crt: not a PEM certificate$/ });
  t.throws(() => readCert(f('c.crt', '\n  \n')), { message: /c\.crt: empty, not a PEM certificate \(truncated\?\)$/ });
  symlinkSync(path.join(dir, 'loop.key'), path.join(dir, 'loop.key'));
  t.throws(() => readKey(path.join(dir, 'loop.key')), { instanceOf: UnreadableError, message: /loop\.key: cannot read it \(ELOOP\)$/ });
});

test.serial('pki: a kept CA is never touched while leaves are reissued; a new CA reissues every leaf; a leftover .new never lends a key its mode', async (t) => {
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' }, minions: ['kubeminion1'] });
  const p = (f: string) => path.join(dir, f);
  const ca = snapshot(dir);
  const moved = { ...inv, apiserver: { ...inv.apiserver, dns: ['kubemaster'] } };
  writeFileSync(p('server.key.new'), 'left by a killed run, readable by all\n', { mode: 0o644 });
  chmodSync(p('server.key.new'), 0o644);
  const r = await applyPki(moved, planPki(moved));
  t.deepEqual(r.written, ['openssl.cnf', 'server.key', 'server.csr', 'server.crt']);
  t.deepEqual(changedFiles(ca, snapshot(dir)), ['openssl.cnf', 'server.crt', 'server.csr', 'server.key'], 'ca.key and ca.crt untouched');
  t.is(statSync(p('server.key')).mode & 0o777, 0o600, 'the key was not written into the leftover with its mode');
  t.false(existsSync(p('server.key.new')));
  // no CA: every leaf that exists is reissued by the new one, one that does not is created
  rmSync(p('ca.key'));
  rmSync(p('ca.crt'));
  rmSync(p('kubeminion1.crt'));
  const plan = planPki(moved);
  const item = (n: string) => plan.items.find((i) => i.name === n)!;
  t.like(item('ca'), { action: 'create', reason: 'no CA yet' });
  t.like(item('server'), { action: 'reissue', reason: 'new CA' });
  t.like(item('kubeminion1'), { action: 'create', reason: '' });
  t.like(item('tokens'), { action: 'keep', reason: '' });
  t.deepEqual(planPki({ ...inv, pki: { ...inv.pki, dir: path.join(dir, 'none') } }).orphans, [], 'no pki.dir yet: no orphans');
});

test.serial('pki: applyPki says what it writes: the mv of each file, openssl.cnf regenerated, admin.kubeconfig only when it differs; --dry-run writes none of it', async (t) => {
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' }, profile: 'modern', minions: ['kubeminion1'] });
  const p = (f: string) => path.join(dir, f);
  t.deepEqual((await applyPki(inv, planPki(inv))).written, [], 'nothing to do');
  rmSync(p('admin.kubeconfig'));
  t.deepEqual((await applyPki(inv, planPki(inv), { dryRun: true })).written, ['admin.kubeconfig']);
  t.false(existsSync(p('admin.kubeconfig')));
  t.deepEqual((await applyPki(inv, planPki(inv))).written, ['admin.kubeconfig']);
  t.is(statSync(p('admin.kubeconfig')).mode & 0o777, 0o600);
  t.regex(readFileSync(p('admin.kubeconfig'), 'utf8'), /current-context: kubernetes-admin@debian-cluster$/m);
  writeFileSync(p('openssl.cnf'), 'edited\n');
  lines.length = 0;
  t.deepEqual((await applyPki(inv, planPki(inv))).written, ['openssl.cnf']);
  t.not(readFileSync(p('openssl.cnf'), 'utf8'), 'edited\n');
  t.true(lines.some((l) => /cat > .*openssl\.cnf {2}# generated from /.test(l)), lines.join('\n'));
  // a reissue under --dry-run: the commands and the mv lines are printed, the list says what would be written
  rmSync(p('kubeminion1.crt'));
  const before = snapshot(dir);
  lines.length = 0;
  const dry = await applyPki(inv, planPki(inv), { dryRun: true });
  t.deepEqual(dry.written, ['kubeminion1.key', 'kubeminion1.csr', 'kubeminion1.crt']);
  t.deepEqual(snapshot(dir), before);
  t.true(lines.some((l) => /openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 .*-keyout \S*kubeminion1\.key\.new/.test(l)), `a minion's key comes from req -newkey (step 12)\n${lines.join('\n')}`);
  t.true(lines.some((l) => /^(?:\S+ )?\$ mv \S*kubeminion1\.crt\.new \S*kubeminion1\.crt$/.test(l)), lines.join('\n'));
  // IPv6 master: the server URL brackets it; legacy has no admin.kubeconfig
  t.regex(adminKubeconfigText({ ...inv, master: { ...inv.master, address: '::1' } })!, /server: https:\/\/\[::1\]:6443$/m);
  t.is(adminKubeconfigText({ ...inv, profile: 'legacy' }), undefined);
  rmSync(p('admin.key'));
  t.is(adminKubeconfigText(inv), undefined, 'no admin.key: no kubeconfig');
});

test.serial('pki: a token rotation logs the recipe\'s echo and that the old token stays, and lists tokens.csv as written', async (t) => {
  const { inv } = await build({ pki: { key: 'ecdsa-p256' }, minions: [] });
  const plan = planPki(inv);
  for (const i of plan.items) i.action = i.kind === 'token' ? 'reissue' : 'keep';
  lines.length = 0;
  const r = await applyPki(inv, plan);
  t.deepEqual(r.written, ['tokens.csv']);
  t.true(lines.some((l) => l.includes('echo "${TOKEN},kubelet,kubelet" > ') && l.includes('tokens.csv.new')), lines.join('\n'));
  t.true(lines.some((l) => l.includes('the old token stays valid (second line) until every kubeconfig has the new one')));
});

test('pki: a stale admin.kubeconfig is rewritten from the current files, and --dry-run leaves a killed run\'s .new files where they are', async (t) => {
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' }, profile: 'modern', minions: ['kubeminion1'] });
  const p = (f: string) => path.join(dir, f);
  writeFileSync(p('admin.kubeconfig'), 'an older admin.crt\n', { mode: 0o600 });
  t.deepEqual((await applyPki(inv, planPki(inv))).written, ['admin.kubeconfig']);
  t.is(readFileSync(p('admin.kubeconfig'), 'utf8'), adminKubeconfigText(inv)!);
  writeFileSync(p('server.key.new'), 'left by a killed run\n', { mode: 0o600 });
  rmSync(p('server.crt'));
  await applyPki(inv, planPki(inv), { dryRun: true });
  t.true(existsSync(p('server.key.new')), 'a dry run removes nothing');
});

// ---- backdating: a verifier whose clock runs behind still accepts a certificate made a moment ago ---------------------

test('every certificate and CA is backdated 5 minutes: a verifier whose clock is a minute behind accepts each, with its CA', async (t) => {
  const { dir, inv } = await build({ profile: 'modern', pki: { key: 'ecdsa-p256' }, minions: ['kubeminion1'] });
  const now = Math.floor(Date.now() / 1000);
  const certs = [...caSpecs(inv).map((c) => ({ name: c.name, ca: c.name })), ...leafSpecs(inv).map((l) => ({ name: l.name, ca: l.ca }))];
  t.is(certs.length, 16, 'the three CAs and every leaf of the modern set');
  for (const c of certs) {
    const crt = path.join(dir, `${c.name}.crt`);
    const notBefore = Math.floor(new Date(readCert(crt)!.x509.validFrom).getTime() / 1000);
    t.true(notBefore <= now - 4 * 60 && notBefore >= now - 6 * 60, `${c.name}.crt: notBefore ${now - notBefore} s ago, expected about 300`);
    // the verifier's clock set back a minute, then four: both before the moment the certificate was made
    for (const behind of [60, 240]) {
      const v = await execa('openssl', ['verify', '-attime', String(now - behind), '-CAfile', path.join(dir, `${c.ca}.crt`), crt], { reject: false });
      t.is(v.exitCode, 0, `${c.name}.crt, a clock ${behind} s behind: ${v.stdout}${v.stderr}`);
    }
  }
  // and the lifetime is still the inventory's, counted from now: notAfter - notBefore = days + the 5 minutes
  const server = readCert(path.join(dir, 'server.crt'))!.x509;
  t.is((new Date(server.validTo).getTime() - new Date(server.validFrom).getTime()) / 1000, inv.pki.days * 86_400 + 300);
});
