/**
 * The import checks of the operator's own root (lib/pki/import-check.ts), one by one: a pure function of the
 * certificate, the root, the key and the names the leaves carry. Certificates are made here with the real openssl in
 * test.before (one root, one request, a few signings); each bad case then changes one thing. Fast on purpose: Stryker
 * runs this file once per mutant (test/MUTATION.md).
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { constraintProblem, dnsWithin, importProblems, ipBytes, ipWithin, parseExtensions, type CaCert } from '../lib/pki/import-check.ts';
import { caExtensions } from '../lib/pki/intermediate.ts';
import { tempDir } from './helpers/inventory.ts';
import { makeRoot, signWithRoot, type Root } from './helpers/own-root.ts';

const dir = tempDir('kubetls-import-');
const f = (n: string) => path.join(dir, n);
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
const CA_EXT = ['basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign,cRLSign'];

interface Fixtures { root: CaCert; rootFiles: Root; good: CaCert; key: KeyObject; otherKey: KeyObject; eku: Record<string, CaCert>; otherRoot: CaCert; reissuedRoot: CaCert; issuing: CaCert; underIssuing: CaCert }
let fx: Fixtures;
const read = async (file: string): Promise<CaCert> => { const pem = readFileSync(file, 'utf8'); return { x509: new X509Certificate(pem), ext: await caExtensions(pem) }; };
const now = () => new Date();

test.before(async () => {
  const rootFiles = await makeRoot({ dir, days: 3650 });
  await execa('openssl', ['req', '-new', ...EC, '-keyout', f('ca.key'), '-subj', '/CN=kubemaster', '-out', f('ca.csr')]);
  await execa('openssl', ['req', '-new', ...EC, '-keyout', f('other.key'), '-subj', '/CN=other', '-out', f('other.csr')]);
  const eku: Record<string, CaCert> = {};
  for (const [name, line] of [['server', 'serverAuth'], ['both', 'serverAuth,clientAuth'], ['client', 'clientAuth'], ['any', 'anyExtendedKeyUsage']]) {
    eku[name!] = await read(await signWithRoot(rootFiles, f('ca.csr'), { ext: [...CA_EXT, `extendedKeyUsage=${line}`], out: f(`eku-${name}.crt`) }));
  }
  const other = await makeRoot({ cn: 'Other Root', dir: tempDir() });
  // the same root (subject and key) issued again a moment later: a certificate signed before it starts before it
  await new Promise((r) => setTimeout(r, 1100));
  await execa('openssl', ['req', '-x509', '-key', rootFiles.key, '-subj', '/CN=Example Corp Root', '-days', '3650', ...CA_EXT.map((e) => ['-addext', e.replace(',pathlen:0', '')]).flat(), '-out', f('root-again.crt')]);
  // an issuing CA of the operator's under the root, and kubetls's CA under it
  await execa('openssl', ['req', '-new', ...EC, '-keyout', f('issuing.key'), '-subj', '/CN=Issuing CA', '-out', f('issuing.csr')]);
  const issuingCrt = await signWithRoot(rootFiles, f('issuing.csr'), { ext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'], days: 3000, out: f('issuing.crt') });
  fx = {
    rootFiles, root: await read(rootFiles.crt), good: await read(await signWithRoot(rootFiles, f('ca.csr'), { out: f('good.crt'), ext: CA_EXT })),
    key: createPrivateKey(readFileSync(f('ca.key'))), otherKey: createPrivateKey(readFileSync(f('other.key'))), eku,
    otherRoot: await read(other.crt), reissuedRoot: await read(f('root-again.crt')), issuing: await read(issuingCrt),
    underIssuing: await read(await signWithRoot({ dir, crt: issuingCrt, key: f('issuing.key') }, f('ca.csr'), { ext: CA_EXT, out: f('under-issuing.crt') })),
  };
});

const check = (o: Partial<Parameters<typeof importProblems>[0]> = {}) => importProblems({ cert: fx.good, root: fx.root, key: fx.key, sans: ['DNS:kubemaster', 'IP:127.0.0.1'], now: now(), ...o });
const withExt = (c: CaCert, ext: Partial<CaCert['ext']>): CaCert => ({ ...c, ext: { ...c.ext, ...ext } });

test('a CA certificate the root signed for kubetls\'s key has no problem', (t) => {
  t.deepEqual(check(), []);
  t.deepEqual(check({ cert: fx.eku.both }), [], 'extendedKeyUsage serverAuth and clientAuth');
  t.deepEqual(check({ cert: fx.eku.any }), [], 'anyExtendedKeyUsage');
});

test('the root must be self-signed, a CA, allowed to sign certificates, with room for a CA below it, and in date', (t) => {
  t.deepEqual(check({ root: fx.issuing, cert: fx.underIssuing }), ['the root is not self-signed (issuer CN=Example Corp Root): give the certificate at the top of your chain']);
  t.deepEqual(check({ root: withExt(fx.root, { ca: false }) }), ['the root is not a CA certificate (basicConstraints CA:TRUE missing)']);
  t.deepEqual(check({ root: withExt(fx.root, { keyUsage: ['Digital Signature', 'CRL Sign'] }) }), ['the root\'s key usage does not allow Certificate Sign']);
  t.deepEqual(check({ root: withExt(fx.root, { keyUsage: undefined }) }), [], 'a root without key usage may sign');
  t.deepEqual(check({ root: withExt(fx.root, { pathlen: 0 }) }), ['the root has pathlen 0: it may sign no CA, and kubetls\'s CA would be one below it']);
  t.deepEqual(check({ root: withExt(fx.root, { pathlen: 1 }) }), []);
  const at = new Date(new Date(fx.root.x509.validTo).getTime() + 1000);
  t.true(check({ now: at }).includes(`the root expired on ${new Date(fx.root.x509.validTo).toISOString().slice(0, 16).replace('T', ' ')}Z`));
  const exactly = new Date(fx.root.x509.validTo);
  t.true(check({ now: exactly }).some((p) => p.startsWith('the root expired')), 'at its notAfter a root is expired');
});

test('the certificate must not be the root, must be a CA that may sign certificates, and may not narrow the leaves\' extended key usage', (t) => {
  const asRoot = check({ cert: fx.root, key: createPrivateKey(readFileSync(fx.rootFiles.key)) });
  t.deepEqual(asRoot, ['the certificate is the root itself: import the certificate your root signed for kubetls\'s request']);
  t.deepEqual(check({ cert: withExt(fx.good, { ca: false }) }), ['the certificate is not a CA certificate (basicConstraints CA:TRUE missing): sign the request as a CA (basicConstraints=critical,CA:TRUE)']);
  t.deepEqual(check({ cert: withExt(fx.good, { keyUsage: undefined }) }), ['the certificate has no key usage: a CA certificate must allow Certificate Sign (RFC 5280 4.2.1.3)']);
  t.deepEqual(check({ cert: withExt(fx.good, { keyUsage: ['CRL Sign'] }) }), ['the certificate\'s key usage does not allow Certificate Sign']);
  const narrow = 'the certificate\'s extended key usage does not allow both serverAuth and clientAuth, which the leaves under it need';
  t.deepEqual(check({ cert: fx.eku.server }), [narrow]);
  t.deepEqual(check({ cert: fx.eku.client }), [narrow]);
});

test('the certificate must chain to the root, lie inside its lifetime and the clock, and match the key kubetls made', (t) => {
  t.deepEqual(check({ root: fx.otherRoot }), ['the certificate does not chain to the given root (issuer CN=Example Corp Root, root CN=Other Root)']);
  const starts = check({ root: fx.reissuedRoot, cert: fx.eku.both }); // signed before the root was issued again
  t.is(starts.length, 1, starts.join('\n'));
  t.regex(starts[0]!, /^the certificate starts \(.*Z\) before its root \(.*Z\)$/);
  const iso = (s: string) => new Date(s).toISOString().slice(0, 16).replace('T', ' ') + 'Z';
  const end = new Date(fx.good.x509.validTo);
  t.deepEqual(check({ now: new Date(end.getTime() + 1000) }), [`the certificate expired on ${iso(fx.good.x509.validTo)}`]);
  t.deepEqual(check({ now: end }), [`the certificate expired on ${iso(fx.good.x509.validTo)}`], 'at its notAfter it is expired');
  const start = new Date(fx.good.x509.validFrom).getTime();
  t.deepEqual(check({ now: new Date(start - 6 * 60_000) }), [`the certificate is not valid before ${iso(fx.good.x509.validFrom)}`]);
  t.deepEqual(check({ now: new Date(start - 5 * 60_000) }), [], 'a signer whose clock runs up to 5 minutes ahead');
  t.deepEqual(check({ key: fx.otherKey }), ['the certificate does not match the key kubetls made for this CA: sign the request ca.ts request wrote']);
});

test('a certificate that outlives its root is refused, one inside its lifetime is not', async (t) => {
  const short = await makeRoot({ days: 30, dir: tempDir() });
  const longer = await read(await signWithRoot(short, f('ca.csr'), { ext: CA_EXT, days: 31, out: f('longer.crt') }));
  const shortRoot = await read(short.crt);
  const p = check({ root: shortRoot, cert: longer });
  t.is(p.length, 1, p.join('\n'));
  t.regex(p[0]!, /^the certificate outlives its root: it ends \d{4}-\d\d-\d\d \d\d:\d\dZ, the root \d{4}-\d\d-\d\d \d\d:\d\dZ$/);
  const inside = await read(await signWithRoot(short, f('ca.csr'), { ext: CA_EXT, days: 29, out: f('inside.crt') }));
  t.deepEqual(check({ root: shortRoot, cert: inside }), []);
});

test('name constraints of the root and of the certificate must allow every name under the CA; kinds other than DNS and IP are refused', (t) => {
  const allow = { permitted: ['DNS:kubemaster', 'IP:127.0.0.0/255.0.0.0'], excluded: [] };
  t.deepEqual(check({ root: withExt(fx.root, allow) }), []);
  t.deepEqual(check({ root: withExt(fx.root, { permitted: ['DNS:example.com'] }) }),
    ['the root\'s name constraints refuse DNS:kubemaster, which a certificate under this CA carries: not within the permitted DNS:example.com']);
  t.deepEqual(check({ cert: withExt(fx.good, { excluded: ['IP:127.0.0.0/255.255.255.0'] }) }),
    ['the certificate\'s name constraints refuse IP:127.0.0.1, which a certificate under this CA carries: excluded by IP:127.0.0.0/255.255.255.0']);
  t.deepEqual(check({ cert: withExt(fx.good, { permitted: ['email:a@example.com', 'DNS:kubemaster'] }) }),
    ['the certificate\'s name constraints include email:a@example.com: kubetls checks DNS and IP constraints only']);
  t.deepEqual(check({ root: withExt(fx.root, { excluded: ['DirName:CN=x'] }) }),
    ['the root\'s name constraints include DirName:CN=x: kubetls checks DNS and IP constraints only']);
  t.deepEqual(check({ sans: [], root: withExt(fx.root, { permitted: ['DNS:example.com'] }) }), [], 'no leaf name, nothing to refuse');
});

test('every problem of a pair is named at once, not only the first', (t) => {
  const all = check({ cert: withExt(fx.good, { ca: false, keyUsage: undefined }), root: fx.otherRoot, key: fx.otherKey });
  t.is(all.length, 4, all.join('\n'));
});

test('parseExtensions reads basicConstraints, key usage and name constraints as openssl prints them', (t) => {
  t.deepEqual(parseExtensions([
    'X509v3 Basic Constraints: critical', '    CA:TRUE, pathlen:1', 'X509v3 Key Usage: critical', '    Certificate Sign, CRL Sign',
    'X509v3 Name Constraints: critical', '    Permitted:', '      DNS:example.com', '      IP:127.0.0.0/255.0.0.0', '    Excluded:', '      DNS:.bad.example.com',
  ].join('\n')), { ca: true, pathlen: 1, keyUsage: ['Certificate Sign', 'CRL Sign'], permitted: ['DNS:example.com', 'IP:127.0.0.0/255.0.0.0'], excluded: ['DNS:.bad.example.com'] });
  t.deepEqual(parseExtensions('X509v3 Basic Constraints: critical\n    CA:FALSE\n'), { ca: false, permitted: [], excluded: [] });
  t.deepEqual(parseExtensions(''), { ca: false, permitted: [], excluded: [] });
  t.deepEqual(parseExtensions('X509v3 Basic Constraints: \n    CA:TRUE\nX509v3 Key Usage: \n    Digital Signature\n'), { ca: true, keyUsage: ['Digital Signature'], permitted: [], excluded: [] });
  // a value line that only looks like a heading is a value; an extension the checks do not read is skipped
  t.deepEqual(parseExtensions('X509v3 Subject Key Identifier: \n    CA:TRUE\nX509v3 Basic Constraints: critical\n    CA:TRUE, pathlen:10\n'), { ca: true, pathlen: 10, permitted: [], excluded: [] });
  t.deepEqual(parseExtensions('X509v3 Basic Constraints: \n    CA:TRUEISH\n'), { ca: false, permitted: [], excluded: [] });
  t.deepEqual(parseExtensions('X509v3 Name Constraints: \n    DNS:stray\n    Permitted:\n      DNS:a\n'), { ca: false, permitted: ['DNS:a'], excluded: [] }, 'a name before Permitted: belongs to no list');
  t.deepEqual(parseExtensions('X509v3 Name Constraints: critical\n    Permitted:\n      DNS:a\n        Signature Algorithm: sha1WithRSAEncryption\n'),
    { ca: false, permitted: ['DNS:a'], excluded: [], signature: 'sha1WithRSAEncryption' }, 'the signature line is never a name');
});

test('caExtensions reads a real certificate with the real openssl, a v1 certificate as no CA', async (t) => {
  const root = await makeRoot({ dir: tempDir(), ext: ['basicConstraints=critical,CA:TRUE,pathlen:2', 'keyUsage=critical,keyCertSign', 'nameConstraints=critical,excluded;DNS:evil.example'] });
  t.deepEqual(await caExtensions(readFileSync(root.crt, 'utf8')), { ca: true, pathlen: 2, keyUsage: ['Certificate Sign'], permitted: [], excluded: ['DNS:evil.example'], signature: 'ecdsa-with-SHA256' });
  await execa('openssl', ['x509', '-req', '-in', f('other.csr'), '-signkey', f('other.key'), '-days', '1', '-out', f('v1.crt')]); // no extensions: X.509 v1
  t.deepEqual(await caExtensions(readFileSync(f('v1.crt'), 'utf8')), { ca: false, permitted: [], excluded: [], signature: 'ecdsa-with-SHA256' });
  t.deepEqual(await caExtensions('not a certificate'), { ca: false, permitted: [], excluded: [] });
});

test('DNS name constraints: a name allows itself and below, a leading dot only below, case aside', (t) => {
  t.true(dnsWithin('example.com', 'example.com'));
  t.true(dnsWithin('a.b.Example.COM', 'example.com'));
  t.true(dnsWithin('example.com.', 'example.com'));
  t.true(dnsWithin('a.example.com', 'Example.com'));
  t.false(dnsWithin('badexample.com', 'example.com'));
  t.false(dnsWithin('example.com', '.example.com'));
  t.true(dnsWithin('a.example.com', '.example.com'));
  t.true(dnsWithin('a.example.com', '.EXAMPLE.com'));
  t.true(dnsWithin('anything', ''));
  t.false(dnsWithin('example.org', 'example.com'));
  t.false(dnsWithin('example.com.evil', 'example.com'));
});

test('IP name constraints: an address inside ADDRESS/MASK, IPv4 and IPv6 in openssl\'s spelling, never across families', (t) => {
  t.true(ipWithin('127.0.0.2', '127.0.0.0/255.0.0.0'));
  t.false(ipWithin('10.0.0.1', '127.0.0.0/255.0.0.0'));
  t.true(ipWithin('10.1.2.3', '10.1.0.0/255.255.0.0'));
  t.false(ipWithin('10.2.2.3', '10.1.0.0/255.255.0.0'));
  t.true(ipWithin('fd00::1', 'FD00:0:0:0:0:0:0:0/FFFF:FF00:0:0:0:0:0:0'));
  t.false(ipWithin('fe00::1', 'FD00:0:0:0:0:0:0:0/FFFF:FF00:0:0:0:0:0:0'));
  t.false(ipWithin('127.0.0.1', 'FD00:0:0:0:0:0:0:0/FFFF:FF00:0:0:0:0:0:0'));
  t.false(ipWithin('::ffff:127.0.0.1', '127.0.0.0/255.0.0.0'), 'an IPv6 address is not inside an IPv4 range');
  t.false(ipWithin('127.0.0.1', 'garbage'));
  t.false(ipWithin('127.0.0.1', '127.0.0.0'), 'no mask');
  t.false(ipWithin('127.0.0.1', '127.0.0.0/255.0.0'), 'a mask that is no address');
  t.true(ipWithin('127.0.0.1', '0.0.0.0/0.0.0.0'));
  t.deepEqual(ipBytes('::ffff:10.0.0.1'), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 0, 0, 1]);
  t.deepEqual(ipBytes('1::'), [0, 1, ...Array(14).fill(0)]);
  t.deepEqual(ipBytes('::1'), [...Array(15).fill(0), 1]);
  t.deepEqual(ipBytes('FD00:0:0:0:0:0:0:ABCD'), [0xfd, 0, ...Array(12).fill(0), 0xab, 0xcd]);
  t.deepEqual(ipBytes('10.0.0.255'), [10, 0, 0, 255]);
  t.is(ipBytes('kubemaster'), undefined);
  t.is(ipBytes(''), undefined);
});

test('constraintProblem: excluded wins over permitted; permitted of one kind leaves the other kind alone', (t) => {
  const ext = { permitted: ['DNS:example.com', 'IP:127.0.0.0/255.0.0.0'], excluded: ['DNS:bad.example.com'] };
  t.is(constraintProblem('DNS:a.example.com', ext), undefined);
  t.is(constraintProblem('DNS:x.bad.example.com', ext), 'excluded by DNS:bad.example.com');
  t.is(constraintProblem('DNS:kubemaster', ext), 'not within the permitted DNS:example.com');
  t.is(constraintProblem('DNS:kubemaster', { permitted: ['DNS:a.com', 'DNS:b.com'], excluded: [] }), 'not within the permitted DNS:a.com, DNS:b.com');
  t.is(constraintProblem('IP:127.0.0.9', ext), undefined);
  t.is(constraintProblem('IP:10.0.0.1', ext), 'not within the permitted IP:127.0.0.0/255.0.0.0');
  t.is(constraintProblem('DNS:anything', { permitted: ['IP:127.0.0.0/255.0.0.0'], excluded: [] }), undefined);
  t.is(constraintProblem('IP:127.0.0.1', { permitted: [], excluded: ['IP:127.0.0.0/255.255.255.0'] }), 'excluded by IP:127.0.0.0/255.255.255.0');
  t.is(constraintProblem('IP:127.0.0.1', { permitted: [], excluded: ['DNS:127.0.0.1'] }), undefined, 'a DNS constraint never matches an IP SAN');
  t.is(constraintProblem('DNS:x.example.com', { permitted: ['DNS:example.com'], excluded: ['DNS:'] }), 'excluded by DNS:', 'an empty DNS exclusion excludes every name');
});

test('a certificate the root signed with SHA-1 is refused: Go refuses it', async (t) => {
  const sha1 = path.join(dir, 'sha1.crt');
  await execa('openssl', ['x509', '-req', '-in', f('ca.csr'), '-CA', fx.rootFiles.crt, '-CAkey', fx.rootFiles.key, '-set_serial', '77', '-days', '100', '-sha1',
    '-copy_extensions', 'copyall', '-out', sha1]);
  const cert = await read(sha1);
  t.is(cert.ext.signature, 'ecdsa-with-SHA1');
  t.deepEqual(check({ cert: withExt(cert, { keyUsage: ['Certificate Sign'], ca: true }) }),
    ['the root signed the certificate with ecdsa-with-SHA1: Go\'s crypto/x509 refuses it as insecure; sign with SHA-256 or better']);
});

test('a root whose extended key usage leaves out serverAuth is refused: nothing below it could serve', async (t) => {
  const narrow = await makeRoot({ dir: tempDir(), ext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign', 'extendedKeyUsage=clientAuth'] });
  const cert = await read(await signWithRoot(narrow, f('ca.csr'), { ext: CA_EXT, out: f('under-narrow.crt') }));
  t.deepEqual(check({ root: await read(narrow.crt), cert }),
    ['the root\'s extended key usage does not allow both serverAuth and clientAuth, so nothing below it may serve or log in']);
  const both = await makeRoot({ dir: tempDir(), ext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign', 'extendedKeyUsage=serverAuth,clientAuth'] });
  t.deepEqual(check({ root: await read(both.crt), cert: await read(await signWithRoot(both, f('ca.csr'), { ext: CA_EXT, out: f('under-both.crt') })) }), []);
});

test('a certificate that ends inside pki.renew_before_days is refused: it would be due at once', (t) => {
  const end = new Date(fx.good.x509.validTo).getTime();
  const days = Math.floor((end - Date.now()) / 86_400_000);
  const inside = check({ renewBeforeDays: days + 1 });
  t.is(inside.length, 1, inside.join('\n'));
  t.regex(inside[0]!, new RegExp(`^the certificate ends .*Z, inside pki\\.renew_before_days \\(${days + 1} d\\): it would be due at once; sign it for longer$`));
  t.deepEqual(check({ renewBeforeDays: days - 1 }), []);
  t.deepEqual(check({ renewBeforeDays: 0 }), []);
  t.deepEqual(check({ now: new Date(end - 86_400_000), renewBeforeDays: 1 }).length, 1, 'exactly renew_before_days left is due');
});

// ---- written for the mutants Stryker's first run left alive (test/MUTATION.md) ----------------------------------------

test('parseExtensions: a value that mentions X509v3 is a value, and Permitted: under another extension starts no list', (t) => {
  t.deepEqual(parseExtensions('X509v3 Name Constraints: critical\n    Permitted:\n      DirName:CN=X509v3 look-alike\n'),
    { ca: false, permitted: ['DirName:CN=X509v3 look-alike'], excluded: [] });
  t.deepEqual(parseExtensions('X509v3 Certificate Policies: \n    Permitted:\n      DNS:not-a-constraint\n'), { ca: false, permitted: [], excluded: [] });
});

test('a certificate that names the root as its issuer but was signed by another key does not chain', async (t) => {
  // a root with the same name and no key identifiers, so that only the signature tells the two apart
  const noIds = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', 'subjectKeyIdentifier=none', 'authorityKeyIdentifier=none'];
  const real = await makeRoot({ dir: tempDir(), ext: noIds });
  const twin = await makeRoot({ dir: tempDir(), ext: noIds });
  const cert = await read(await signWithRoot(real, f('ca.csr'), { ext: [...CA_EXT, 'subjectKeyIdentifier=none', 'authorityKeyIdentifier=none'], out: f('no-ids.crt') }));
  const twinRoot = await read(twin.crt);
  t.true(cert.x509.checkIssued(twinRoot.x509), 'the names match');
  t.deepEqual(check({ root: await read(real.crt), cert }), []);
  t.deepEqual(check({ root: twinRoot, cert }), ['the certificate does not chain to the given root (issuer CN=Example Corp Root, root CN=Example Corp Root)']);
});

test('a root named with several fields is named whole in a refusal', async (t) => {
  const dirOf = tempDir();
  await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dirOf, 'k'), '-subj', '/O=Example Corp/CN=Corp Root',
    '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-out', path.join(dirOf, 'c')]);
  // a certificate signed after that root was made, so that only the chain is wrong, whatever second each was made in
  const cert = await read(await signWithRoot(fx.rootFiles, f('ca.csr'), { ext: CA_EXT, out: f('after-corp.crt') }));
  t.deepEqual(check({ root: await read(path.join(dirOf, 'c')), cert }), ['the certificate does not chain to the given root (issuer CN=Example Corp Root, root O=Example Corp, CN=Corp Root)']);
});

test('name constraints: other kinds are named together and only a kind prefix counts; one permitted name of several is enough', (t) => {
  t.deepEqual(check({ cert: withExt(fx.good, { permitted: ['email:a@example.com', 'URI:IP:x'] }) }),
    ['the certificate\'s name constraints include email:a@example.com, URI:IP:x: kubetls checks DNS and IP constraints only']);
  t.is(constraintProblem('DNS:b.com', { permitted: ['DNS:a.com', 'DNS:b.com'], excluded: [] }), undefined);
  t.is(constraintProblem('IP:10.0.0.1', { permitted: ['IP:127.0.0.0/255.0.0.0', 'IP:10.0.0.0/255.0.0.0'], excluded: [] }), undefined);
});

test('ipWithin: a name, an IPv6 address in an IPv4 range, and a mask of the other family are never inside', (t) => {
  t.false(ipWithin('kubemaster', '127.0.0.0/255.0.0.0'));
  t.false(ipWithin('fd00::1', '0.0.0.0/0.0.0.0'));
  t.false(ipWithin('fd00::1', 'FD00:0:0:0:0:0:0:0/255.0.0.0'));
  t.false(ipWithin('127.0.0.1', '127.0.0.0/FFFF:0:0:0:0:0:0:0'));
  t.deepEqual(ipBytes('::ffff:10.100.200.255'), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 100, 200, 255]);
});
