/**
 * The operator's own root, without a lab: `ca.ts request` and `ca.ts import` with roots and certificates made by the
 * real openssl as an operator would make them, master.ts --pki-only under the three intermediates, what a host would
 * receive, status's rows; then every certificate import must refuse, each fed on purpose, through the command an
 * operator runs. The import checks themselves, one by one: test/import-check.test.ts.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { loadInventory } from '../lib/inventory/load.ts';
import { clientTrust, deployedBytes, pemCerts, rootBytes } from '../lib/pki/trust.ts';
import { httpsGet, readServed } from '../lib/probe.ts';
import { rootRow } from '../lib/status.ts';
import { tempDir, writeInventory } from './helpers/inventory.ts';
import { makeRoot, signWithRoot, type Root } from './helpers/own-root.ts';
import { runScript } from './helpers/run.ts';

const CAS = ['ca', 'etcd-ca', 'front-proxy-ca'] as const;
const modern = (patch: Record<string, unknown> = {}) => writeInventory({
  profile: 'modern', pki: { key: 'ecdsa-p256' }, master: { name: 'kubemaster', address: '127.0.0.1' },
  minions: [{ name: 'kubeminion1', address: '127.0.0.2' }], ...patch,
});
const pkiOf = (inv: string) => loadInventory(inv).pki.dir;
const ca = (inv: string, ...args: string[]) => runScript('ca', [...args, '--inventory', inv]);
const listing = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort().map((f) => `${f}:${statSync(path.join(dir, f)).mtimeMs}`) : []);

/** request, sign with the root (as the operator), import: one CA of kubetls under the root. */
async function underRoot(t: { is: (a: unknown, b: unknown, m?: string) => void }, inv: string, root: Root, name: string, sign: Parameters<typeof signWithRoot>[2] = {}) {
  const req = await ca(inv, 'request', name);
  t.is(req.code, 0, req.all);
  const signed = await signWithRoot(root, path.join(pkiOf(inv), `${name}.csr`), sign);
  return { signed, imported: await ca(inv, 'import', name, '--cert', signed, '--root', root.crt) };
}

test('ca.ts request makes the CA key owner-only and a CA request, and a second request changes nothing', async (t) => {
  const inv = modern();
  const r = await ca(inv, 'request', 'etcd-ca');
  t.is(r.code, 0, r.all);
  const dir = pkiOf(inv);
  t.is(statSync(path.join(dir, 'etcd-ca.key')).mode & 0o777, 0o600);
  const text = (await execa('openssl', ['req', '-in', path.join(dir, 'etcd-ca.csr'), '-noout', '-text', '-verify'])).stdout;
  t.regex(text, /Subject: CN ?= ?etcd-ca/);
  t.regex(text, /CA:TRUE, pathlen:0/);
  t.regex(text, /Certificate Sign, CRL Sign/);
  t.regex(r.all, /ca\.ts import etcd-ca --cert SIGNED\.crt --root ROOT\.crt/);
  t.notRegex(r.all, /PRIVATE KEY/);
  const before = listing(dir);
  const again = await ca(inv, 'request', 'etcd-ca');
  t.is(again.code, 0, again.all);
  t.regex(again.all, /nothing to do/);
  t.deepEqual(listing(dir), before);
});

test('master.ts refuses to sign while a requested CA waits for its certificate, and status says what to do', async (t) => {
  const inv = modern();
  t.is((await ca(inv, 'request', 'ca')).code, 0);
  const m = await runScript('master', ['--inventory', inv, '--pki-only']);
  t.is(m.code, 1, m.all);
  t.regex(m.all, /ca\.key waits for its certificate from your root .*ca\.ts import ca/);
  t.false(existsSync(path.join(pkiOf(inv), 'ca.crt')));
  const s = await runScript('status', ['--inventory', inv, '--json']);
  const row = (JSON.parse(s.stdout) as { rows: { name: string; status: string }[] }).rows.find((x) => x.name === 'ca.crt');
  t.regex(row!.status, /^missing: ca\.csr waits to be signed by your root, then ca\.ts import ca/);
});

test('three CAs imported under one root: master.ts signs every leaf under them, hosts get each leaf with its intermediate and no root, and the root key is nowhere', async (t) => {
  const inv = modern();
  const root = await makeRoot();
  for (const name of CAS) {
    const { imported } = await underRoot(t, inv, root, name);
    t.is(imported.code, 0, imported.all);
    // accepted, and told what the operator should know: a root without name constraints trusts what this CA signs anywhere
    t.regex(imported.all, /WARNING: neither the certificate nor the root carries name constraints: a certificate this CA signs/);
    t.notRegex(imported.all, /CAs? below it|before leaves signed/, 'pathlen:0 as requested, and a life longer than pki.days');
  }
  const dir = pkiOf(inv);
  const m = await runScript('master', ['--inventory', inv, '--pki-only']);
  t.is(m.code, 0, m.all);
  t.notRegex(m.all, /root\.crt belongs to no host/, 'the root beside a CA is kubetls\'s, not an orphan to delete');
  const i = loadInventory(inv);
  const rootX = new X509Certificate(readFileSync(root.crt));
  for (const name of CAS) {
    t.is(new X509Certificate(readFileSync(path.join(dir, `${name}.root.crt`))).fingerprint256, rootX.fingerprint256);
    // a trust point a host receives is the intermediate alone: the root there would let every certificate it ever signed log in
    const trust = pemCerts(deployedBytes(i, `${name}.crt`));
    t.is(trust.length, 1);
    t.is(trust[0]!.issuer, rootX.subject);
    // kubetls's own clients (node's TLS) trust the intermediate and the root
    t.deepEqual(pemCerts(clientTrust(i, name)).map((c) => c.fingerprint256), [trust[0]!.fingerprint256, rootX.fingerprint256]);
  }
  for (const leaf of ['server', 'kubelet-kubeminion1', 'etcd-server-kubemaster', 'etcd-peer-kubemaster', 'front-proxy-client', 'kubeminion1', 'admin']) {
    const sent = pemCerts(deployedBytes(i, `${leaf}.crt`));
    t.is(sent.length, 2, `${leaf}: the leaf and its intermediate`);
    t.true(sent[0]!.checkIssued(sent[1]!) && sent[1]!.checkIssued(rootX), leaf);
    // what a client trusting only the root does: openssl verify with the root as the only anchor
    const chain = path.join(tempDir(), 'chain.pem');
    writeFileSync(chain, sent[1]!.toString());
    const v = await execa('openssl', ['verify', '-CAfile', root.crt, '-untrusted', chain, path.join(dir, `${leaf}.crt`)], { reject: false });
    t.regex(v.stdout, /: OK$/, `${leaf}: ${v.stderr}`);
  }
  // the root's key never reached pki.dir, in any file, in any form
  const rootKeyBody = readFileSync(root.key, 'utf8').replace(/-----[^-]+-----|\s/g, '');
  const rootKeyDer = createPrivateKey(readFileSync(root.key)).export({ type: 'pkcs8', format: 'der' }).toString('base64');
  for (const f of readdirSync(dir)) {
    const text = readFileSync(path.join(dir, f), 'utf8').replace(/\s/g, '');
    t.false(text.includes(rootKeyBody) || text.includes(rootKeyDer), f);
  }
  t.false(m.all.includes(rootKeyBody));
  const s = await runScript('status', ['--inventory', inv, '--json']);
  t.is(s.code, 0, s.all);
  const rows = (JSON.parse(s.stdout) as { rows: { name: string; status: string }[] }).rows;
  for (const name of CAS) t.is(rows.find((x) => x.name === `${name}.root.crt`)?.status, 'ok');
  // importing the same pair again changes nothing
  const before = listing(dir);
  const again = await ca(inv, 'import', 'ca', '--cert', path.join(root.dir, 'ca-signed.crt'), '--root', root.crt);
  t.is(again.code, 0, again.all);
  t.regex(again.all, /nothing to do/);
  t.deepEqual(listing(dir), before);
});

test('status warns a year ahead that the root expires, and says drift when the CA no longer chains to it', async (t) => {
  const inv = modern();
  const root = await makeRoot({ days: 200 });
  const { imported } = await underRoot(t, inv, root, 'ca', { days: 100 });
  t.is(imported.code, 0, imported.all);
  const i = loadInventory(inv);
  t.regex(rootRow(i, 'ca')!.status, /^renew due: your root expires in 19\d d; kubetls cannot renew it/);
  t.is(rootRow(i, 'ca', new Date(Date.now() + 201 * 86_400_000))!.status, 'expired');
  t.is(rootRow(i, 'etcd-ca'), undefined, 'a CA kubetls made itself has no root row');
  const other = await makeRoot({ cn: 'Other Root' });
  writeFileSync(path.join(i.pki.dir, 'ca.root.crt'), readFileSync(other.crt));
  t.is(rootRow(i, 'ca')!.status, 'drift: ca.crt does not chain to this root');
  // a root file that did not issue ca.crt is no root of it: not trusted, not a reason to send a chain
  t.is(rootBytes(i, 'ca'), undefined);
  t.is(pemCerts(clientTrust(i, 'ca')).length, 1);
});

/** One refusal: exit 2, every named reason printed, nothing in pki.dir changed by the import. */
async function refused(t: any, setup: (inv: string, root: Root) => Promise<{ cert: string; root: string }>, reason: RegExp, patch: Record<string, unknown> = {}) {
  const inv = modern(patch);
  const root = await makeRoot();
  const files = await setup(inv, root);
  const before = listing(pkiOf(inv));
  const r = await ca(inv, 'import', 'ca', '--cert', files.cert, '--root', files.root);
  t.is(r.code, 2, r.all);
  t.regex(r.all, reason);
  t.notRegex(r.all, /BEGIN [A-Z ]*PRIVATE KEY/);
  t.deepEqual(listing(pkiOf(inv)), before, 'nothing written');
  t.false(existsSync(path.join(pkiOf(inv), 'ca.crt')));
}
const requested = async (inv: string) => { await ca(inv, 'request', 'ca'); return path.join(pkiOf(inv), 'ca.csr'); };

test('ca.ts import refuses a certificate that is not a CA', async (t) => {
  await refused(t, async (inv, root) => ({ cert: await signWithRoot(root, await requested(inv), { ext: ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature'] }), root: root.crt }),
    /not a CA certificate .*\n.*key usage does not allow Certificate Sign/);
});

test('ca.ts import refuses a CA certificate without key usage', async (t) => {
  await refused(t, async (inv, root) => ({ cert: await signWithRoot(root, await requested(inv), { ext: ['basicConstraints=critical,CA:TRUE'] }), root: root.crt }), /has no key usage/);
});

test('ca.ts import refuses a CA whose extended key usage leaves out clientAuth', async (t) => {
  await refused(t, async (inv, root) => ({ cert: await signWithRoot(root, await requested(inv), { ext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign', 'extendedKeyUsage=serverAuth'] }), root: root.crt }),
    /extended key usage does not allow both serverAuth and clientAuth/);
});

test('ca.ts import refuses a root with pathlen 0 above kubetls\'s CA', async (t) => {
  await refused(t, async (inv) => {
    const root = await makeRoot({ ext: ['basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign,cRLSign'] });
    return { cert: await signWithRoot(root, await requested(inv)), root: root.crt };
  }, /the root has pathlen 0: it may sign no CA/);
});

test('ca.ts import refuses a certificate that outlives its root', async (t) => {
  await refused(t, async (inv) => {
    const root = await makeRoot({ days: 30 });
    return { cert: await signWithRoot(root, await requested(inv), { days: 60 }), root: root.crt };
  }, /the certificate outlives its root: it ends .*, the root /);
});

test('ca.ts import refuses a certificate for another key than the one kubetls made', async (t) => {
  await refused(t, async (inv, root) => {
    await requested(inv);
    const other = modern();
    return { cert: await signWithRoot(root, await requested(other)), root: root.crt };
  }, /does not match the key kubetls made for this CA/);
});

test('ca.ts import refuses a certificate that does not chain to the given root', async (t) => {
  await refused(t, async (inv, root) => {
    const other = await makeRoot({ cn: 'Other Root' });
    return { cert: await signWithRoot(other, await requested(inv)), root: root.crt };
  }, /does not chain to the given root \(issuer CN=Other Root, root CN=Example Corp Root\)/);
});

test('ca.ts import refuses a root that is not self-signed', async (t) => {
  await refused(t, async (inv, root) => {
    // the operator's issuing CA, given as if it were the root: kubetls's CA does chain to it, but it is no root
    const issuingDir = tempDir('kubetls-issuing-');
    const issuingKey = path.join(issuingDir, 'issuing.key');
    const csr = path.join(issuingDir, 'issuing.csr');
    await execa('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', issuingKey, '-subj', '/CN=Issuing CA', '-out', csr]);
    const issuingCrt = await signWithRoot(root, csr, { ext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'] });
    const issuing: Root = { dir: issuingDir, crt: issuingCrt, key: issuingKey };
    return { cert: await signWithRoot(issuing, await requested(inv)), root: issuingCrt };
  }, /the root is not self-signed \(issuer CN=Example Corp Root\)/);
});

test('ca.ts import refuses a root whose name constraints exclude a name a leaf under the CA carries', async (t) => {
  await refused(t, async (inv) => {
    const root = await makeRoot({ ext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', 'nameConstraints=critical,permitted;DNS:example.com,permitted;IP:127.0.0.0/255.0.0.0'] });
    return { cert: await signWithRoot(root, await requested(inv)), root: root.crt };
  }, /the root's name constraints refuse DNS:kubemaster, which a certificate under this CA carries: not within the permitted DNS:example\.com/);
});

test('ca.ts import refuses a root key offered with the root or the certificate, and never prints it', async (t) => {
  await refused(t, async (inv, root) => {
    const bundle = path.join(root.dir, 'root-and-key.pem');
    writeFileSync(bundle, `${readFileSync(root.crt, 'utf8')}${readFileSync(root.key, 'utf8')}`);
    return { cert: await signWithRoot(root, await requested(inv)), root: bundle };
  }, /holds a private key: kubetls never takes the root's key/);
  await refused(t, async (inv, root) => {
    const withKey = path.join(root.dir, 'cert-and-key.pem');
    writeFileSync(withKey, `${readFileSync(await signWithRoot(root, await requested(inv)), 'utf8')}${readFileSync(root.key, 'utf8')}`);
    return { cert: withKey, root: root.crt };
  }, /holds a private key: kubetls never takes a key it did not make/);
  const inv = modern();
  const flag = await ca(inv, 'import', 'ca', '--cert', 'x.crt', '--root', 'r.crt', '--root-key', 'r.key');
  t.is(flag.code, 2, flag.all);
  t.regex(flag.all, /Unknown option '--root-key'/);
});

test('ca.ts import and request refuse to replace a CA in use', async (t) => {
  const inv = modern();
  t.is((await runScript('master', ['--inventory', inv, '--pki-only'])).code, 0);
  const root = await makeRoot();
  const before = readFileSync(path.join(pkiOf(inv), 'ca.crt'));
  const req = await ca(inv, 'request', 'ca');
  t.is(req.code, 2, req.all);
  t.regex(req.all, /ca\.crt is the CA in use: ca\.ts request ca would replace it, which only a CA rotation may do/);
  // a request made elsewhere for a key of this name, signed: still refused while ca.crt is in use
  const other = modern();
  await ca(other, 'request', 'ca');
  const signed = await signWithRoot(root, path.join(pkiOf(other), 'ca.csr'));
  const imp = await ca(inv, 'import', 'ca', '--cert', signed, '--root', root.crt);
  t.is(imp.code, 2, imp.all);
  t.regex(imp.all, /is the CA in use: ca\.ts import ca would replace it/);
  t.deepEqual(readFileSync(path.join(pkiOf(inv), 'ca.crt')), before);
  t.false(existsSync(path.join(pkiOf(inv), 'ca.root.crt')));
});

test('ca.ts refuses an action or a CA name it does not know, and legacy has no etcd-ca', async (t) => {
  const inv = modern();
  for (const [args, re] of [[['sign', 'ca'], /unknown action 'sign'/], [['request'], /request takes one CA name/], [['request', 'kube-ca'], /no CA named 'kube-ca'/],
    [['import', 'ca'], /import needs --cert FILE and --root FILE/]] as const) {
    const r = await ca(inv, ...args);
    t.is(r.code, 2, r.all);
    t.regex(r.all, re);
  }
  const legacy = await ca(writeInventory(), 'request', 'etcd-ca');
  t.is(legacy.code, 2);
  t.regex(legacy.all, /no CA named 'etcd-ca' in the legacy profile: one of ca/);
});

test('ca.ts import refuses during a rotation of a CA kubetls made itself, and request refuses during any rotation', async (t) => {
  const inv = modern();
  t.is((await runScript('master', ['--inventory', inv, '--pki-only'])).code, 0);
  const dir = pkiOf(inv);
  // a rotation of the cluster CA in its first phase, as renew.ts --rotate-ca cluster records it
  writeFileSync(path.join(dir, '.rotate-ca.json'), JSON.stringify({ what: 'cluster', targets: ['ca'], phase: 'new', started: new Date().toISOString(), old: {}, next: {} }), { mode: 0o600 });
  const root = await makeRoot();
  const other = modern();
  await ca(other, 'request', 'ca');
  const signed = await signWithRoot(root, path.join(pkiOf(other), 'ca.csr'));
  const before = listing(dir);
  const imp = await ca(inv, 'import', 'ca', '--cert', signed, '--root', root.crt);
  t.is(imp.code, 2, imp.all);
  t.regex(imp.all, /a CA rotation is running: ca\.ts import ca is refused until it ends/);
  const req = await ca(inv, 'request', 'etcd-ca');
  t.is(req.code, 2, req.all);
  t.regex(req.all, /a CA rotation is running: ca\.ts request etcd-ca is refused/);
  t.deepEqual(listing(dir), before);
});

test('kubetls\'s own clients refuse a certificate the root signed outside kubetls\'s intermediate, even for the right name', async (t) => {
  const inv = modern();
  const root = await makeRoot();
  t.is((await underRoot(t, inv, root, 'ca')).imported.code, 0);
  t.is((await runScript('master', ['--inventory', inv, '--pki-only'])).code, 0);
  const i = loadInventory(inv);
  const dir = tempDir();
  // what anyone holding a certificate from the same root could present: a leaf for the master's name, signed by the root
  await execa('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'rogue.key'), '-subj', '/CN=kubemaster', '-out', path.join(dir, 'rogue.csr')]);
  const rogue = await signWithRoot(root, path.join(dir, 'rogue.csr'), { ext: ['basicConstraints=critical,CA:FALSE', 'extendedKeyUsage=serverAuth', 'subjectAltName=DNS:kubemaster'], days: 30 });
  const serve = async (cert: Buffer, key: Buffer) => {
    const srv = https.createServer({ cert, key }, (_q, res) => res.end('ok'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return { srv, port: (srv.address() as { port: number }).port };
  };
  const ours = await serve(deployedBytes(i, 'server.crt'), readFileSync(path.join(i.pki.dir, 'server.key')));
  const theirs = await serve(readFileSync(rogue), readFileSync(path.join(dir, 'rogue.key')));
  try {
    const ca = clientTrust(i);
    const good = await readServed('127.0.0.1', ours.port, 'kubemaster', ca);
    t.true(good.authorized, good.error);
    t.like(await httpsGet({ host: '127.0.0.1', port: ours.port, servername: 'kubemaster', ca, path: '/' }), { status: 200, body: 'ok' });
    // node's own check alone would take the rogue one: it chains to the root, for the right name
    const plain = await new Promise<boolean>((r) => { const c = tls.connect({ host: '127.0.0.1', port: theirs.port, servername: 'kubemaster', ca }, () => { r(c.authorized); c.end(); }); c.on('error', () => r(false)); });
    t.true(plain, 'the root alone vouches for it');
    const bad = await readServed('127.0.0.1', theirs.port, 'kubemaster', ca);
    t.false(bad.authorized);
    t.regex(bad.error ?? '', /the certificate for kubemaster was issued by Example Corp Root, not by kubetls's intermediate/);
    await t.throwsAsync(httpsGet({ host: '127.0.0.1', port: theirs.port, servername: 'kubemaster', ca, path: '/' }), { message: /not by kubetls's intermediate/ });
  } finally {
    ours.srv.close();
    theirs.srv.close();
  }
});

test('an import run again after it was killed before removing the request removes it, and changes nothing else', async (t) => {
  const inv = modern();
  const root = await makeRoot();
  const { signed, imported } = await underRoot(t, inv, root, 'ca');
  t.is(imported.code, 0);
  const csr = path.join(pkiOf(inv), 'ca.csr');
  t.false(existsSync(csr));
  writeFileSync(csr, 'left by a run killed after the import', { mode: 0o600 });
  const crt = readFileSync(path.join(pkiOf(inv), 'ca.crt'));
  const again = await ca(inv, 'import', 'ca', '--cert', signed, '--root', root.crt);
  t.is(again.code, 0, again.all);
  t.false(existsSync(csr));
  t.deepEqual(readFileSync(path.join(pkiOf(inv), 'ca.crt')), crt);
});
