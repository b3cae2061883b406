/**
 * The kubelet-serving approver's decision (lib/csr/decide.ts) on requests the real openssl makes, read back by
 * lib/csr/read.ts: a node's own request is approved, and each forged one is denied with the reason a person reads.
 * No cluster: the CSR objects are what the apiserver would store (username and groups are the requester's).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { decide, KUBELET_SERVING, problemsOf, shownValue, type CsrFacts } from '../lib/csr/decide.ts';
import { decided, readCsr, sansOf, strictDer, subjectLines, type CsrObject } from '../lib/csr/read.ts';
import type { Host } from '../lib/inventory.ts';
import { tempDir } from './helpers/inventory.ts';

const host = (name: string, address: string): Host => ({ name, role: 'minion', address, port: 22, user: 'root', explicit: { address: true, port: false, user: false } });
const HOSTS = [host('kubeminion1', '127.60.0.5'), host('kubeminion2', '127.60.0.6'), host('node3.lab', 'node3.lab'), host('v6node', 'fd00::6')];
const USAGES = ['digital signature', 'server auth'];

/** A request as a kubelet makes it (ECDSA P-256 unless `key` says), with `subj` and `sans`, and its CSR object. */
async function request(o: { subj?: string; sans?: string; key?: string[]; signer?: string; username?: string; groups?: string[]; usages?: string[]; config?: string } = {}): Promise<CsrObject> {
  const dir = tempDir();
  if (o.config) writeFileSync(path.join(dir, 'cnf'), o.config);
  const key = o.key ?? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const args = ['req', ...(o.config ? ['-config', path.join(dir, 'cnf')] : []), '-new', ...key, '-nodes', '-keyout', path.join(dir, 'k'), '-subj', o.subj ?? '/O=system:nodes/CN=system:node:kubeminion1', '-out', path.join(dir, 'r')];
  const sans = o.sans ?? 'DNS:kubeminion1,IP:127.60.0.5';
  if (sans) args.push('-addext', `subjectAltName=${sans}`);
  await execa('openssl', args);
  return {
    metadata: { name: 'csr-x' },
    spec: { request: readFileSync(path.join(dir, 'r')).toString('base64'), signerName: o.signer ?? 'kubernetes.io/kubelet-serving', username: o.username ?? 'system:node:kubeminion1',
      groups: o.groups ?? ['system:nodes', 'system:authenticated'], usages: o.usages ?? USAGES },
  };
}
const facts = (o: Partial<CsrFacts> = {}): CsrFacts => ({ signerName: 'kubernetes.io/kubelet-serving', username: 'system:node:kubeminion1', groups: ['system:nodes'],
  usages: USAGES, subject: ['O=system:nodes', 'CN=system:node:kubeminion1'], dns: ['kubeminion1'], ips: [], otherSans: [], key: { type: 'ec', bits: 256, curve: 'P-256' }, signatureOk: true, ...o });
const verdict = async (o: Parameters<typeof request>[0]) => decide(await readCsr(await request(o)), HOSTS);
const denied = async (t: import('ava').ExecutionContext, o: Parameters<typeof request>[0], reason: RegExp) => {
  const d = await verdict(o);
  t.is(d.verdict, 'deny', JSON.stringify(d));
  if (d.verdict === 'deny') t.regex(d.reason, reason);
};

test('a node\'s own serving request (its name and its address from cluster.yaml, P-256, KEP-267 usages) is approved for that node', async (t) => {
  t.deepEqual(await verdict({}), { verdict: 'approve', node: 'kubeminion1' });
  t.deepEqual(await verdict({ usages: ['key encipherment', 'digital signature', 'server auth'] }), { verdict: 'approve', node: 'kubeminion1' });
  t.deepEqual(await verdict({ key: ['-newkey', 'rsa:2048'] }), { verdict: 'approve', node: 'kubeminion1' });
  t.deepEqual(await verdict({ key: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], sans: 'IP:127.60.0.5' }), { verdict: 'approve', node: 'kubeminion1' });
  // a host whose address is a name: that name may be served; an IPv6 host: its address in any spelling
  t.deepEqual(await verdict({ subj: '/O=system:nodes/CN=system:node:node3.lab', username: 'system:node:node3.lab', sans: 'DNS:node3.lab,DNS:NODE3.lab' }), { verdict: 'approve', node: 'node3.lab' });
  t.deepEqual(await verdict({ subj: '/O=system:nodes/CN=system:node:v6node', username: 'system:node:v6node', sans: 'DNS:v6node,IP:fd00:0:0:0:0:0:0:6' }), { verdict: 'approve', node: 'v6node' });
});

test('a request carrying another node\'s address, or an address cluster.yaml does not give the node, is denied naming the address', async (t) => {
  await denied(t, { sans: 'DNS:kubeminion1,IP:127.60.0.6' }, /IP address 127\.60\.0\.6 is not kubeminion1's in cluster\.yaml \(127\.60\.0\.5\)/);
  await denied(t, { sans: 'DNS:kubeminion1,IP:10.24.0.1' }, /IP address 10\.24\.0\.1 is not kubeminion1's/);
  await denied(t, { sans: 'IP:::ffff:127.60.0.6' }, /IP address .* is not kubeminion1's/);
});

test('a node\'s node_ip may be served beside its address, and only that node\'s: another node\'s node_ip is denied', (t) => {
  const withIp = (name: string, address: string, nodeIp: string): Host => ({ ...host(name, address), nodeIp });
  const hosts = [withIp('kubeminion1', '127.60.0.5', '198.51.100.5'), withIp('kubeminion2', '127.60.0.6', '198.51.100.6')];
  t.deepEqual(decide(facts({ ips: ['198.51.100.5'] }), hosts), { verdict: 'approve', node: 'kubeminion1' });
  t.deepEqual(decide(facts({ ips: ['127.60.0.5', '198.51.100.5'] }), hosts), { verdict: 'approve', node: 'kubeminion1' });
  const d = decide(facts({ ips: ['198.51.100.6'] }), hosts);
  t.is(d.verdict, 'deny');
  if (d.verdict === 'deny') t.regex(d.reason, /IP address 198\.51\.100\.6 is not kubeminion1's in cluster\.yaml \(127\.60\.0\.5, 198\.51\.100\.5\)/);
  // without node_ip, the Node's own address is not enough: the node_ip of the lab is denied
  t.is(decide(facts({ ips: ['198.51.100.5'] }), HOSTS).verdict, 'deny');
});

test('a DNS name that is not the node\'s is denied, also when it hides a second name after a comma', async (t) => {
  await denied(t, { sans: 'DNS:kubeminion1,DNS:kubeminion2' }, /DNS name kubeminion2 is not kubeminion1's in cluster\.yaml/);
  await denied(t, { sans: 'DNS:kubernetes.default.svc' }, /DNS name kubernetes\.default\.svc is not kubeminion1's/);
  // one dNSName whose text reads like two SANs in openssl's output: read from the DER, it stays one name
  const config = '[req]\ndistinguished_name = dn\nreq_extensions = ext\n[dn]\n[ext]\nsubjectAltName = @alt\n[alt]\nDNS.1 = kubeminion1, IP Address:127.60.0.5\n';
  const d = await readCsr(await request({ config, sans: '' }));
  t.deepEqual([d.dns, d.ips], [['kubeminion1, IP Address:127.60.0.5'], []]);
  t.is(decide(d, HOSTS).verdict, 'deny');
});

test('a URI or email SAN, or no SAN at all, is denied', async (t) => {
  await denied(t, { sans: 'DNS:kubeminion1,URI:spiffe://cluster/ns/x' }, /SAN URI:spiffe:\/\/cluster\/ns\/x is not allowed/);
  await denied(t, { sans: 'DNS:kubeminion1,email:root@kubeminion1' }, /SAN email:root@kubeminion1 is not allowed/);
  await denied(t, { sans: 'DNS:kubeminion1,otherName:1.2.3.4;UTF8:x' }, /SAN othername:\(not shown\) is not allowed/);
  await denied(t, { sans: '' }, /no DNS or IP SAN/);
});

test('a requester that is not a node of cluster.yaml, or not in system:nodes, is denied', async (t) => {
  await denied(t, { username: 'alice' }, /requester alice is not a node/);
  await denied(t, { username: 'system:node:' }, /requester system:node: is not a node/);
  await denied(t, { username: 'system:serviceaccount:kube-system:x', groups: ['system:serviceaccounts'] }, /is not a node/);
  await denied(t, { groups: ['system:authenticated'] }, /requester system:node:kubeminion1 is not in group system:nodes/);
  await denied(t, { subj: '/O=system:nodes/CN=system:node:stranger', username: 'system:node:stranger', sans: 'DNS:stranger' }, /node stranger is not a host of cluster\.yaml/);
});

test('the decision on facts alone: every reason is given at once, an empty subject is named, a curve counts only for an EC key', (t) => {
  t.deepEqual(decide(facts(), HOSTS), { verdict: 'approve', node: 'kubeminion1' });
  t.deepEqual(decide(facts({ subject: [], dns: ['kubeminion2'] }), HOSTS), { verdict: 'deny',
    reason: 'kubetls approve: subject (empty) is not O=system:nodes, CN=system:node:kubeminion1; DNS name kubeminion2 is not kubeminion1\'s in cluster.yaml' });
  t.is(decide(facts({ key: { type: 'other', bits: 256, curve: 'P-256' } }), HOSTS).verdict, 'deny');
  t.is(decide(facts({ key: { type: 'ec', bits: 256 } }), HOSTS).verdict, 'deny');
});

test('a value the requester chose reaches a reason escaped and cut: no terminal escape from a DNS name, a SAN or a user name', (t) => {
  const d = decide(facts({ dns: ['evil\x1b[2J\x9bname'], otherSans: [`URI:${'x'.repeat(300)}`] }), HOSTS);
  t.is(d.verdict, 'deny');
  const reason = d.verdict === 'deny' ? d.reason : '';
  t.false(/[\x00-\x1f\x7f-\x9f]/.test(reason), reason);
  t.regex(reason, /DNS name evil\\u\{1b\}\[2J\\u\{9b\}name is not/);
  t.regex(reason, /SAN URI:x{96}… is not allowed/);
  t.is(shownValue('y'.repeat(100)), 'y'.repeat(100), 'a value of exactly 100 characters is shown whole');
  const many = decide(facts({ dns: Array.from({ length: 5000 }, (_, i) => `n${i}`) }), HOSTS);
  t.true(many.verdict === 'deny' && many.reason.length <= 2000, 'a denial of thousands of SANs stays small enough to store');
  t.is(shownValue('y'.repeat(101)), `${'y'.repeat(100)}…`);
  t.regex(problemsOf(facts({ username: 'bob\nsystem:node:kubeminion1' }), HOSTS)[0]!, /^requester bob\\u\{a\}system:node:kubeminion1 is not a node/);
});

test('a subject other than O=system:nodes, CN=the requester is denied', async (t) => {
  await denied(t, { subj: '/O=system:nodes/CN=system:node:kubeminion2' }, /subject O=system:nodes, CN=system:node:kubeminion2 is not O=system:nodes, CN=system:node:kubeminion1/);
  await denied(t, { subj: '/O=system:nodes/OU=x/CN=system:node:kubeminion1' }, /subject .*OU=x.* is not/);
  await denied(t, { subj: '/O=system:masters/CN=system:node:kubeminion1' }, /subject O=system:masters/);
  await denied(t, { subj: '/CN=system:node:kubeminion1' }, /subject CN=system:node:kubeminion1 is not/);
  await denied(t, { subj: '/O=system:nodes/O=system:nodes' }, /subject .* is not/);
});

test('usages beyond KEP-267\'s (client auth, a missing digital signature, repeats) are denied', async (t) => {
  await denied(t, { usages: ['digital signature', 'server auth', 'client auth'] }, /usages digital signature, server auth, client auth are not/);
  await denied(t, { usages: ['server auth'] }, /usages server auth are not/);
  await denied(t, { usages: ['digital signature', 'key encipherment'] }, /usages .* are not/);
  await denied(t, { usages: ['digital signature', 'server auth', 'server auth'] }, /usages .* are not/);
  await denied(t, { usages: [] }, /usages \(none\) are not/);
});

test('a key kubetls would not issue with (RSA under 2048 bits, P-521, Ed25519) is denied', async (t) => {
  await denied(t, { key: ['-newkey', 'rsa:1024'] }, /key rsa 1024 bits is not RSA of 2048 bits or more/);
  await denied(t, { key: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521'] }, /key ec P-521 521 bits is not/);
  await denied(t, { key: ['-newkey', 'ed25519'] }, /key other .* is not/);
});

test('a request whose signature does not verify (the body changed after signing) is denied', async (t) => {
  const o = await request({});
  const der = Buffer.from(Buffer.from(o.spec.request, 'base64').toString().replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const i = der.indexOf(Buffer.from('kubeminion1'));
  der[i + 10] = '2'.charCodeAt(0); // the subject's CN becomes kubeminion2 in the signed body
  const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  const facts = await readCsr({ ...o, spec: { ...o.spec, request: Buffer.from(pem).toString('base64') } });
  t.false(facts.signatureOk);
  t.regex(problemsOf(facts, HOSTS).join('; '), /signature does not verify/);
  const garbage = await readCsr({ ...o, spec: { ...o.spec, request: Buffer.from('not a request').toString('base64') } });
  t.is(decide(garbage, HOSTS).verdict, 'deny');
});

test('a CSR of another signer is left alone, never denied', async (t) => {
  for (const signer of ['kubernetes.io/kube-apiserver-client-kubelet', 'kubernetes.io/kube-apiserver-client', 'example.com/x']) {
    const d = await verdict({ signer, username: 'alice', usages: ['client auth'] });
    t.deepEqual(d, { verdict: 'ignore', reason: `signer ${signer} is not kubernetes.io/kubelet-serving` });
  }
});

test('a CSR already approved, denied or failed is decided; a pending one (or one with another condition) is not', (t) => {
  const o = (types: string[]): CsrObject => ({ metadata: { name: 'x' }, spec: { request: '', signerName: KUBELET_SERVING }, status: { conditions: types.map((type) => ({ type })) } });
  for (const c of ['Approved', 'Denied', 'Failed']) t.true(decided(o([c])), c);
  t.false(decided(o([])));
  t.false(decided(o(['SomethingElse'])));
  t.false(decided({ metadata: { name: 'x' }, spec: { request: '', signerName: KUBELET_SERVING } }));
});

test('the SAN reader takes only well-formed DER: a length past its end, or an IP of 5 bytes, is another SAN (denied)', (t) => {
  const line = (hex: string) => `  1:d=7  hl=2 l=   3 prim: OBJECT            :X509v3 Subject Alternative Name\n  2:d=7  hl=2 l=  9 prim: OCTET STRING      [HEX DUMP]:${hex}\n`;
  t.deepEqual(sansOf(line('3006820461626364')), { dns: ['abcd'], ips: [], otherSans: [] });
  t.deepEqual(sansOf(line('3007820561626364')).otherSans, ['(malformed subjectAltName)']);
  t.deepEqual(sansOf(line('3009820461626364')).otherSans, ['(malformed subjectAltName)']);
  t.deepEqual(sansOf(line('30078705010203040a')).otherSans, ['IP:(5 bytes)']);
  t.deepEqual(sansOf(line('3006870401020304')).ips, ['1.2.3.4']);
  t.deepEqual(sansOf(`  1:d=7 prim: OBJECT :X509v3 Subject Alternative Name\n  2:d=7 prim: BOOLEAN :255\n  3:d=7 prim: OCTET STRING [HEX DUMP]:3006820461626364\n`).dns, ['abcd']);
  t.deepEqual(sansOf('  1:d=7 prim: OBJECT :X509v3 Subject Alternative Name\n').otherSans, ['(unreadable subjectAltName)']);
  t.deepEqual(sansOf(''), { dns: [], ips: [], otherSans: [] });
});

test('the subject reader: every attribute on its own line, escaped', (t) => {
  t.deepEqual(subjectLines('subject=\n    O=system:nodes\n    CN=system:node:a\\, b\n'), ['O=system:nodes', 'CN=system:node:a\\, b']);
  t.deepEqual(subjectLines('nothing'), []);
});

test('a request that is not exactly one CERTIFICATE REQUEST block is denied: a harmless block before a forged one, a byte-order mark, text after', async (t) => {
  const own = await request({});
  const pem = Buffer.from(own.spec.request, 'base64').toString();
  const forged = Buffer.from((await request({ sans: 'DNS:kubeminion1,DNS:kubernetes.default.svc,IP:10.96.0.1' })).spec.request, 'base64').toString();
  const harmless = pem.replaceAll('CERTIFICATE REQUEST', 'FOO').replace(/-----END FOO-----\n$/, '-----END FOO-----\x0b\n');
  for (const text of [harmless + forged, `\ufeff${pem}`, `${pem}junk\n`, pem + pem]) {
    const o = { ...own, spec: { ...own.spec, request: Buffer.from(text).toString('base64') } };
    t.is(strictDer(o.spec.request), undefined);
    const d = decide(await readCsr(o), HOSTS);
    t.is(d.verdict, 'deny');
  }
  t.truthy(strictDer(own.spec.request));
});

test('text in an extension cannot pose as the subject: an nsComment holding subject lines leaves the real subject, denied', async (t) => {
  // an IA5String with real newlines, as DER (the config file's own syntax would not keep them)
  const text = Buffer.from('\nsubject=\n    O=system:nodes\n    CN=system:node:kubeminion1\n');
  const config = `[req]\ndistinguished_name = dn\nreq_extensions = ext\n[dn]\n[ext]\nsubjectAltName = DNS:kubeminion1\nnsComment = DER:16${text.length.toString(16).padStart(2, '0')}${text.toString('hex')}\n`;
  const o = await request({ config, sans: '', subj: '/O=system:nodes/OU=system:masters/CN=system:node:kubeminion1' });
  const facts = await readCsr(o);
  t.deepEqual(facts.subject, ['O=system:nodes', 'OU=system:masters', 'CN=system:node:kubeminion1']);
  t.is(decide(facts, HOSTS).verdict, 'deny');
});

test('a denial\'s reason is cut at 2000 characters, its first reasons kept: one of exactly 2000 stays whole, one longer ends in …', (t) => {
  const reasonOf = (dns: string[]) => `kubetls approve: ${problemsOf(facts({ dns }), HOSTS).join('; ')}`;
  // k bad DNS names, then one sized so that the whole reason is exactly 2000 characters (within shownValue's 100)
  let names: string[] = [];
  for (let k = 20; k < 40 && !names.length; k++) {
    const base = Array.from({ length: k }, (_, i) => `bad${i}.example`);
    const room = 2000 - reasonOf([...base, '']).length;
    if (room > 0 && room <= 100) names = [...base, 'z'.repeat(room)];
  }
  t.is(reasonOf(names).length, 2000);
  const exact = decide(facts({ dns: names }), HOSTS);
  t.is(exact.verdict, 'deny');
  if (exact.verdict === 'deny') t.is(exact.reason, reasonOf(names), 'exactly 2000: whole');
  const long = decide(facts({ dns: [...names, 'one-more.example'] }), HOSTS);
  if (long.verdict === 'deny') {
    t.is(long.reason.length, 2000);
    t.true(long.reason.endsWith('…'));
    t.true(long.reason.startsWith('kubetls approve: DNS name bad0.'), long.reason.slice(0, 60));
  } else t.fail('not denied');
});
