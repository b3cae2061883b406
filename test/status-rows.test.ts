/**
 * lib/status.ts's verdicts, called in-process on small EC PKIs ("tests that bite"): every row status a check
 * can give, fed the case that gives it, including what a TLS port on 127.0.0.1 serves. Kept apart from
 * status.test.ts (which drives scripts/status.ts) so that `npm run mutate` can run these alone (test/MUTATION.md).
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import test from 'ava';
import { ExitError } from '../lib/cli.ts';
import type { Inventory } from '../lib/inventory.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { kubeconfig } from '../lib/kubeconfig.ts';
import { configureLog } from '../lib/log.ts';
import { applyPki } from '../lib/pki/apply.ts';
import { planPki } from '../lib/pki/plan.ts';
import { readServed } from '../lib/probe.ts';
import type { Remote } from '../lib/remote/remote.ts';
import { pkiFilesFor } from '../lib/rollout/desired.ts';
import { lastRenew, lastRenewFile } from '../lib/state.ts';
import { localStatus, prometheus, remoteStatus, servedKubelets, servedStatus, statusCategory, type StatusRow, writePrometheus } from '../lib/status.ts';
import { deployedMode } from './helpers/deployed.ts';
import { tempDir, writeInventory } from './helpers/inventory.ts';

configureLog({ sink: () => undefined, tty: false });

async function build(patch = {}) {
  const file = writeInventory(patch);
  const inv = loadInventory(file);
  await applyPki(inv, planPki(inv));
  return { file, inv, dir: inv.pki.dir };
}

const rowsOf = (rows: StatusRow[]) => rows.map((r) => [r.name, r.where.replace(/^.*\/pki\//, 'pki/'), r.status]);

test('every local file has its row; a readable secret, an unreadable file, a foreign CA key and a drift each say so', async (t) => {
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' } });
  const p = (f: string) => path.join(dir, f);
  t.deepEqual(rowsOf(localStatus(inv)), [
    ['ca.crt', 'pki/ca.crt', 'ok'], ['server.crt', 'pki/server.crt', 'ok'],
    ['kubeminion1.crt', 'pki/kubeminion1.crt', 'ok'], ['kubeconfig', 'kubeminion1:/var/lib/kubelet/kubeconfig', 'ok'],
    ['kubeminion2.crt', 'pki/kubeminion2.crt', 'ok'], ['kubeconfig', 'kubeminion2:/var/lib/kubelet/kubeconfig', 'ok'],
    ['tokens.csv', 'pki/tokens.csv', 'ok']]);
  const server = localStatus(inv).find((r) => r.name === 'server.crt')!;
  t.like(server, { subject: 'CN=kubernetes.default.svc', sans: 'DNS:kubernetes.default.svc,DNS:kubemaster,IP:10.24.0.1', daysLeft: 364, issuer: 'CN=kubemaster' });
  t.is(localStatus(inv).find((r) => r.name === 'tokens.csv')!.subject, 'user kubelet');
  chmodSync(p('ca.key'), 0o644);
  chmodSync(p('server.key'), 0o640);
  chmodSync(p('tokens.csv'), 0o604);
  writeFileSync(p('kubeminion1.crt'), 'garbage');
  chmodSync(p('kubeminion1.key'), 0o644); // unreadable says more than insecure mode
  const moved = { ...inv, apiserver: { ...inv.apiserver, dns: ['kubemaster'] } };
  const rows = localStatus(moved, new Date(Date.now() + 340 * 86_400_000)); // also inside the renew window
  t.deepEqual(rowsOf(rows).map(([n, w, s]) => [n, w, s.replace(/\/tmp\/\S+\/pki\//, 'pki/')]), [
    ['ca.crt', 'pki/ca.crt', 'insecure mode 0644: pki/ca.key'],
    ['server.crt', 'pki/server.crt', 'insecure mode 0640: pki/server.key'],
    ['kubeminion1.crt', 'pki/kubeminion1.crt', 'unreadable: pki/kubeminion1.crt: not a PEM certificate'],
    ['kubeconfig', 'kubeminion1:/var/lib/kubelet/kubeconfig', 'unreadable: pki/kubeminion1.crt: not a PEM certificate'],
    ['kubeminion2.crt', 'pki/kubeminion2.crt', 'renew due'], ['kubeconfig', 'kubeminion2:/var/lib/kubelet/kubeconfig', 'renew due'],
    ['tokens.csv', 'pki/tokens.csv', 'insecure mode 0604: pki/tokens.csv']]);
  chmodSync(p('server.key'), 0o600);
  t.is(localStatus(moved, new Date(Date.now() + 340 * 86_400_000)).find((r) => r.name === 'server.crt')!.status, 'drift: SAN removed: DNS:kubernetes.default.svc', 'the renew reason is not repeated in a drift');
  // a CA key that does not match: its row says key mismatch (and still the mode), the leaves are judged without a CA
  const other = await build({ pki: { key: 'ecdsa-p256' } });
  writeFileSync(p('ca.key'), readFileSync(path.join(other.dir, 'ca.key')));
  chmodSync(p('ca.key'), 0o600);
  const broken = localStatus(inv);
  t.regex(broken[0].status, /^key mismatch: .*ca\.key does not match .*ca\.crt/);
  t.like(broken[0], { subject: '-', sans: '-', issuer: '-' });
  chmodSync(p('ca.key'), 0o644);
  t.regex(localStatus(inv)[0].status, /^insecure mode 0644: /);
  writeFileSync(p('ca.crt'), '');
  t.regex(localStatus(inv)[0].status, /^unreadable: .*ca\.crt: empty, not a PEM certificate/);
  t.is(localStatus(inv).find((r) => r.name === 'server.crt')!.status, 'not signed by CA');
  rmSync(p('tokens.csv'));
  t.is(localStatus(inv).find((r) => r.name === 'tokens.csv')!.status, 'missing');
  writeFileSync(p('tokens.csv'), 'x\n');
  t.regex(localStatus(inv).find((r) => r.name === 'tokens.csv')!.status, /^unreadable: .*tokens\.csv: not one/);
});

test('the modern profile adds its CAs, admin.kubeconfig and the service-account pair, each judged', async (t) => {
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' }, profile: 'modern', minions: ['kubeminion1'] });
  const p = (f: string) => path.join(dir, f);
  const rows = localStatus(inv);
  t.deepEqual(rows.slice(0, 3).map((r) => r.name), ['ca.crt', 'etcd-ca.crt', 'front-proxy-ca.crt']);
  t.true(rows.every((r) => r.status === 'ok'), JSON.stringify(rows.filter((r) => r.status !== 'ok')));
  t.deepEqual(rows.filter((r) => r.name === 'admin.kubeconfig').map((r) => r.where.replace(/^.*\/pki\//, 'pki/')), ['pki/admin.kubeconfig']);
  t.like(rows.at(-1), { name: 'sa.key', status: 'ok', subject: '-' });
  const sa = () => localStatus(inv).at(-1)!.status;
  chmodSync(p('sa.key'), 0o640);
  t.regex(sa(), /^insecure mode 0640: .*sa\.key$/);
  chmodSync(p('sa.key'), 0o600);
  const other = await build({ pki: { key: 'ecdsa-p256' }, profile: 'modern', minions: ['kubeminion1'] });
  writeFileSync(p('sa.pub'), readFileSync(path.join(other.dir, 'sa.pub')));
  t.is(sa(), 'key mismatch: sa.pub does not match sa.key');
  writeFileSync(p('sa.pub'), 'x');
  t.regex(sa(), /^unreadable: .*sa\.pub: not a PEM public key$/);
  rmSync(p('sa.pub'));
  t.is(sa(), 'missing: sa.key and sa.pub incomplete');
  rmSync(p('sa.key'));
  t.is(sa(), 'missing');
  writeFileSync(p('etcd-ca.key'), readFileSync(p('front-proxy-ca.key')));
  t.regex(localStatus(inv)[1].status, /^key mismatch: .*etcd-ca\.key does not match/);
});

/** A host as status --remote reads it: each remote path holds `content(path)` (undefined: absent). Only reads. */
function readOnlyHost(host: Inventory['master'], content: (remote: string) => Buffer | undefined, inv?: Inventory): Remote {
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const m = (q: string) => (inv ? deployedMode(inv, host, q) : { owner: 'root', group: 'root', mode: 0o600 });
  return {
    host,
    async inspect(paths: string[]) { return new Map(paths.map((q) => { const c = content(q); return [q, c && { kind: 'file', owner: m(q).owner, group: m(q).group, mode: m(q).mode, size: c.length, sha256: sha(c) }]; })); },
    async read(q: string) { return content(q); },
  } as unknown as Remote;
}

test('--remote judges each deployed copy by its bytes and each kubeconfig by the certificate it embeds', async (t) => {
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' }, minions: ['kubeminion1'] });
  const other = await build({ pki: { key: 'ecdsa-p256' }, minions: ['kubeminion1'] });
  const p = (f: string) => path.join(dir, f);
  const local = (remote: string) => (existsSync(p(path.posix.basename(remote))) ? readFileSync(p(path.posix.basename(remote))) : undefined);
  const kc = (from: string, token?: string) => Buffer.from(kubeconfig({ cluster: inv.cluster, server: 'https://kubemaster:6443', ca: readFileSync(p('ca.crt')),
    cert: readFileSync(path.join(from, 'kubeminion1.crt')), key: readFileSync(path.join(from, 'kubeminion1.key')), token }));
  const minion = (kubeconf: Buffer | undefined, swap?: string) => readOnlyHost(inv.minions[0], (r) => (r === '/var/lib/kubelet/kubeconfig' ? kubeconf
    : swap && r.endsWith(`/${swap}`) ? readFileSync(path.join(other.dir, swap)) : local(r)));
  const statuses = async (h: Remote) => (await remoteStatus(inv, h)).map((r) => [r.name, r.where, r.status]);
  t.deepEqual(await statuses(minion(kc(dir))), [['ca.crt', 'kubeminion1:/srv/kubernetes/ca.crt', 'ok'], ['kubeminion1.crt', 'kubeminion1:/srv/kubernetes/kubeminion1.crt', 'ok'],
    ['kubeminion1.key', 'kubeminion1:/srv/kubernetes/kubeminion1.key', 'ok'], ['kubeconfig', 'kubeminion1:/var/lib/kubelet/kubeconfig', 'ok']]);
  const ok = (await remoteStatus(inv, minion(kc(dir))))[1];
  t.like(ok, { subject: 'CN=kubeminion1', issuer: 'CN=kubemaster', daysLeft: 364 });
  t.deepEqual((await statuses(minion(kc(other.dir), 'ca.crt'))).map((r) => r[2]), ['drift: differs from the local PKI', 'ok', 'ok', 'drift: embeds another certificate than the local PKI']);
  t.deepEqual((await statuses(minion(undefined))).at(-1), ['kubeconfig', 'kubeminion1:/var/lib/kubelet/kubeconfig', 'missing']);
  t.deepEqual((await statuses(readOnlyHost(inv.minions[0], (r) => (r.endsWith('.crt') || r.startsWith('/var/lib/kubetls/') ? undefined : kc(dir))))).map((r) => r[2]),
    ['missing', 'missing', 'key mismatch: /srv/kubernetes/kubeminion1.key is not the local kubeminion1.key (so not the key of its certificate)', 'ok']);
  t.regex((await statuses(minion(Buffer.from('not: [a kubeconfig')))).at(-1)![2] as string, /^unreadable: kubeminion1:\/var\/lib\/kubelet\/kubeconfig: /);
  const tokenOnly = Buffer.from(kc(dir, 'x'.repeat(32)).toString().replace(/ +client-certificate-data: .*\n/, '').replace(/ +client-key-data: .*\n/, ''));
  t.is((await statuses(minion(tokenOnly))).at(-1)![2], 'drift: no client certificate');
  // a local certificate that cannot be read: the deployed copy is judged by bytes, and the row says what is wrong
  writeFileSync(p('kubeminion1.crt'), 'garbage');
  const rows = await statuses(minion(kc(other.dir), 'kubeminion1.crt'));
  t.regex(rows[1][2] as string, /^drift: differs from the local PKI$/);
  const same = await statuses(readOnlyHost(inv.minions[0], (r) => (r === '/var/lib/kubelet/kubeconfig' ? kc(other.dir) : local(r))));
  t.regex(same[1][2] as string, /^unreadable: .*kubeminion1\.crt: not a PEM certificate$/);
});

test('what 6443 serves is judged from the handshake: expired, untrusted, another serial, due, ok, or nothing there', async (t) => {
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' }, master: { name: 'kubemaster', address: '127.0.0.1' }, minions: [] });
  const other = await build({ pki: { key: 'ecdsa-p256' }, master: { name: 'kubemaster', address: '127.0.0.1' }, minions: [] });
  const p = (f: string) => path.join(dir, f);
  const serve = async (from: string) => {
    const s = tls.createServer({ cert: readFileSync(path.join(from, 'server.crt')), key: readFileSync(path.join(from, 'server.key')) }, (c) => c.end());
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return { at: { ...inv, apiserver: { ...inv.apiserver, port: (s.address() as AddressInfo).port } }, close: () => new Promise((r) => s.close(r)) };
  };
  const mine = await serve(dir);
  try {
    const row = await servedStatus(mine.at);
    t.like(row, { name: 'server.crt', served: 'apiserver', status: 'ok', subject: 'CN=kubernetes.default.svc', issuer: 'CN=kubemaster', daysLeft: 364 });
    t.is(row.where, `127.0.0.1:${mine.at.apiserver.port} (served)`);
    const notAfter = Date.parse(row.notAfter!);
    t.is((await servedStatus(mine.at, new Date(notAfter - 30 * 86_400_000))).status, 'renew due');
    t.is((await servedStatus(mine.at, new Date(notAfter - 30 * 86_400_000 - 1000))).status, 'ok');
    t.is((await servedStatus(mine.at, new Date(notAfter))).status, 'expired');
    // renewed locally but not yet served: the served one is another serial
    const served = readFileSync(p('server.crt'));
    writeFileSync(p('server.crt'), readFileSync(path.join(other.dir, 'server.crt')));
    t.regex((await servedStatus(mine.at)).status, /^drift: serves serial [0-9A-F]+, local is [0-9A-F]+$/);
    writeFileSync(p('server.crt'), served);
    writeFileSync(p('ca.crt'), 'garbage'); // no CA to trust: nothing served is trusted
    t.regex((await servedStatus(mine.at)).status, /^drift: not trusted with the local ca\.crt for kubemaster \(/);
  } finally {
    await mine.close();
  }
  const gone = await servedStatus({ ...inv, apiserver: { ...inv.apiserver, port: 1 } });
  t.regex(gone.status, /^missing: /);
  t.like(gone, { subject: '-', sans: '-', issuer: '-' });
});

test('a certificate from another CA served for the master\'s name is untrusted, even with the same subject and SANs', async (t) => {
  const { inv } = await build({ pki: { key: 'ecdsa-p256' }, master: { name: 'kubemaster', address: '127.0.0.1' }, minions: [] });
  const other = await build({ pki: { key: 'ecdsa-p256' }, master: { name: 'kubemaster', address: '127.0.0.1' }, minions: [] });
  const s = tls.createServer({ cert: readFileSync(path.join(other.dir, 'server.crt')), key: readFileSync(path.join(other.dir, 'server.key')) }, (c) => c.end());
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  try {
    const at = { ...inv, apiserver: { ...inv.apiserver, port: (s.address() as AddressInfo).port } };
    t.regex((await servedStatus(at)).status, /^drift: not trusted with the local ca\.crt for kubemaster \(.+\)$/);
    // and for another name than the master's: the name is checked too
    t.regex((await servedStatus({ ...at, master: { ...at.master, name: 'elsewhere' } })).status, /^drift: not trusted with the local ca\.crt for elsewhere/);
  } finally {
    await new Promise((r) => s.close(r));
  }
});

test('the Prometheus status label is a fixed category; ok is 1 only for ok; label values are escaped', (t) => {
  const cat: [string, string][] = [['ok', 'ok'], ['renew due', 'renew_due'], ['expired', 'expired'], ['drift: SAN added: DNS:x', 'drift'], ['missing', 'missing'],
    ['missing: connect ECONNREFUSED', 'missing'], ['not signed by CA', 'not_signed_by_ca'], ['key mismatch: sa.pub does not match', 'key_mismatch'],
    ['unreadable: pki/x: empty', 'unreadable'], ['insecure mode 0644: pki/ca.key', 'insecure_mode'], ['unreachable: timeout', 'unreachable'], ['something new', 'other'],
    ['insecure mode 0644', 'insecure_mode'], ['OK', 'other']];
  for (const [s, c] of cat) t.is(statusCategory(s), c, s);
  const rows: StatusRow[] = [
    { name: 'a"b\\c\nd', where: 'h:/x', subject: '-', sans: '-', issuer: '-', status: 'ok', notAfter: '2030-01-01T00:00:00.000Z' },
    { name: 'server.crt', where: '127.0.0.1:6443 (served)', subject: '-', sans: '-', issuer: '-', status: 'renew due', notAfter: '2030-01-02T00:00:01.999Z', served: 'apiserver' },
    { name: 'tokens.csv', where: 'pki/tokens.csv', subject: '-', sans: '-', issuer: '-', status: 'missing' },
  ];
  const text = prometheus(rows, new Date(1_700_000_000_900));
  t.deepEqual(text.split('\n').filter((l) => !l.startsWith('#')), [
    'kubetls_certificate_not_after_seconds{name="a\\"b\\\\c\\nd",where="h:/x"} 1893456000',
    'kubetls_served_certificate_not_after_seconds{cert="apiserver",where="127.0.0.1:6443"} 1893542401',
    'kubetls_certificate_ok{name="a\\"b\\\\c\\nd",where="h:/x",status="ok"} 1',
    'kubetls_certificate_ok{name="server.crt",where="127.0.0.1:6443 (served)",status="renew_due"} 0',
    'kubetls_certificate_ok{name="tokens.csv",where="pki/tokens.csv",status="missing"} 0',
    'kubetls_renew_last_success_timestamp_seconds 1700000000',
    '']);
  t.regex(prometheus([]), /^kubetls_renew_last_success_timestamp_seconds 0$/m);
  for (const family of ['kubetls_certificate_not_after_seconds', 'kubetls_served_certificate_not_after_seconds', 'kubetls_certificate_ok', 'kubetls_renew_last_success_timestamp_seconds']) {
    t.regex(text, new RegExp(`^# HELP ${family} \\S.*\\n# TYPE ${family} gauge$`, 'm'), family);
  }
});

/** A loopback address of its own (127.0.0.0/8), so that port 10250 is free for this test whatever else runs. */
const loopback = () => `127.${101 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250) + 1}.${Math.floor(Math.random() * 250) + 1}`;

test('what each kubelet serves on 10250 is judged from the handshake for its node name: ok, due, expired, another serial, untrusted, nothing there', async (t) => {
  const [a1, a2] = [loopback(), loopback()];
  const doc = { pki: { key: 'ecdsa-p256' }, profile: 'modern', master: { name: 'kubemaster', address: '127.0.0.1' },
    minions: [{ name: 'kubeminion1', address: a1 }, { name: 'kubeminion2', address: a2 }, { name: 'kubeminion3', address: '::1' }] };
  const { inv, dir } = await build(doc);
  const other = await build(doc);
  const p = (f: string) => path.join(dir, f);
  const pair = (from: string, name: string) => ({ cert: readFileSync(path.join(from, `${name}.crt`)), key: readFileSync(path.join(from, `${name}.key`)) });
  const s = tls.createServer(pair(dir, 'kubelet-kubeminion1'), (c) => c.end());
  await new Promise<void>((r, j) => s.listen(10250, a1, r).on('error', j));
  try {
    const rows = await servedKubelets(inv);
    t.deepEqual(rows.map((r) => r.name), ['kubelet-kubeminion1.crt', 'kubelet-kubeminion2.crt', 'kubelet-kubeminion3.crt']);
    t.like(rows[0], { where: `${a1}:10250 (served)`, served: 'kubelet', status: 'ok', subject: 'O=system:nodes, CN=system:node:kubeminion1',
      sans: `DNS:kubeminion1,IP:${a1}`, issuer: 'CN=kubemaster', daysLeft: 364 });
    t.like(rows[1], { where: `${a2}:10250 (served)`, served: 'kubelet', subject: '-', sans: '-', issuer: '-' });
    t.regex(rows[1].status, /^missing: /, 'nothing listens there');
    t.is(rows[2].where, '[::1]:10250 (served)', 'an IPv6 address is bracketed before the port');
    const one = async (now?: Date) => (await servedKubelets(inv, now))[0].status;
    const notAfter = Date.parse(rows[0].notAfter!);
    t.is(await one(new Date(notAfter - 30 * 86_400_000)), 'renew due');
    t.is(await one(new Date(notAfter - 30 * 86_400_000 - 1000)), 'ok');
    t.is(await one(new Date(notAfter)), 'expired');
    t.is(await one(new Date(notAfter - 1000)), 'renew due', 'one second before the end it is not expired yet');
    // renewed locally, still serving the old one
    const mine = readFileSync(p('kubelet-kubeminion1.crt'));
    writeFileSync(p('kubelet-kubeminion1.crt'), readFileSync(path.join(other.dir, 'kubelet-kubeminion1.crt')));
    t.regex(await one(), /^drift: serves serial [0-9A-F]+, local is [0-9A-F]+$/);
    writeFileSync(p('kubelet-kubeminion1.crt'), mine);
    // the right CA but another node's certificate: the name is checked
    s.setSecureContext(pair(dir, 'kubelet-kubeminion2'));
    t.is(await one(), 'drift: not trusted with the local ca.crt for kubeminion1 (ERR_TLS_CERT_ALTNAME_INVALID)');
    // the node's own name, signed by another CA
    s.setSecureContext(pair(other.dir, 'kubelet-kubeminion1'));
    t.regex(await one(), /^drift: not trusted with the local ca\.crt for kubeminion1 \(/);
    // no readable local CA: nothing served is trusted
    s.setSecureContext(pair(dir, 'kubelet-kubeminion1'));
    t.is(await one(), 'ok');
    writeFileSync(p('ca.crt'), 'garbage');
    t.regex(await one(), /^drift: not trusted with the local ca\.crt for kubeminion1 \(/);
    t.deepEqual(await servedKubelets({ ...inv, profile: 'legacy' }), [], 'legacy kubelets serve no certificate of ours');
  } finally {
    await new Promise((r) => s.close(r));
  }
});

test('the last renewal is the mtime of .last-renew, absent before the first; the textfile is written 0644 and never into a folder', (t) => {
  const dir = tempDir();
  const inv = { pki: { dir } } as Inventory;
  t.is(lastRenewFile(inv), path.join(dir, '.last-renew'));
  t.is(lastRenew(inv), undefined);
  writeFileSync(lastRenewFile(inv), 'x\n');
  utimesSync(lastRenewFile(inv), 1_700_000_000, 1_700_000_000);
  t.is(lastRenew(inv)?.getTime(), 1_700_000_000_000);
  const prom = path.join(dir, 'kubetls.prom');
  writePrometheus(prom, 'a 1\n');
  t.is(readFileSync(prom, 'utf8'), 'a 1\n');
  t.is(statSync(prom).mode & 0o777, 0o644, 'node_exporter runs as another user and must read it');
  writePrometheus(prom, 'a 2\n');
  t.is(readFileSync(prom, 'utf8'), 'a 2\n');
  const e = t.throws(() => writePrometheus(dir, 'a 1\n'), { instanceOf: ExitError, message: /expects a file .* is a folder/ });
  t.is(e?.code, 2);
});

test('a row without a certificate shows - for subject, SANs and issuer; several drifts are listed together; modern rows name each kubeconfig', async (t) => {
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' } });
  const p = (f: string) => path.join(dir, f);
  const byName = (rows: StatusRow[], name: string, where = '') => rows.find((r) => r.name === name && r.where.includes(where))!;
  t.like(byName(localStatus(inv), 'kubeminion1.crt'), { subject: 'CN=kubeminion1', sans: '-', issuer: 'CN=kubemaster' }, 'a client certificate has no SAN');
  rmSync(p('kubeminion2.crt'));
  rmSync(p('tokens.csv'));
  const rows = localStatus(inv);
  for (const [name, where] of [['kubeminion2.crt', 'pki/'], ['kubeconfig', 'kubeminion2:']]) {
    const r = byName(rows, name, where);
    t.deepEqual([r.status, r.subject, r.sans, r.issuer, r.notAfter, r.daysLeft], ['missing', '-', '-', '-', undefined, undefined], `${name} ${where}`);
  }
  t.like(byName(rows, 'tokens.csv'), { status: 'missing', subject: '-', sans: '-', issuer: '-' });
  writeFileSync(p('tokens.csv'), 'x\n');
  t.like(byName(localStatus(inv), 'tokens.csv'), { name: 'tokens.csv', subject: '-' });
  t.regex(byName(localStatus(inv), 'tokens.csv').status, /^unreadable: /);
  t.regex(byName(localStatus(inv), 'tokens.csv').where, /\/pki\/tokens\.csv$/, 'the unreadable row says where');
  const moved = { ...inv, apiserver: { ...inv.apiserver, dns: ['kubemaster', 'api.example'] } };
  t.is(byName(localStatus(moved), 'server.crt').status, 'drift: SAN added: DNS:api.example; SAN removed: DNS:kubernetes.default.svc');

  const modern = await build({ pki: { key: 'ecdsa-p256' }, profile: 'modern', minions: ['kubeminion1'] });
  const m = localStatus(modern.inv);
  t.like(byName(m, 'kubeminion1.crt'), { subject: 'O=system:nodes, CN=system:node:kubeminion1' });
  t.like(byName(m, 'admin.crt'), { subject: 'O=system:masters, CN=kubernetes-admin' });
  t.deepEqual(m.filter((r) => !r.where.includes('/pki/')).map((r) => [r.name, r.where]).sort(), [
    ['controller-manager.conf', 'kubemaster:/srv/kubernetes/controller-manager.conf'],
    ['kubeconfig', 'kubeminion1:/var/lib/kube-proxy/kubeconfig'], ['kubeconfig', 'kubeminion1:/var/lib/kubelet/kubeconfig'],
    ['scheduler.conf', 'kubemaster:/srv/kubernetes/scheduler.conf']]);
  writeFileSync(path.join(modern.dir, 'sa.key'), 'x');
  t.like(localStatus(modern.inv).at(-1), { name: 'sa.key', subject: '-' });
  t.regex(localStatus(modern.inv).at(-1)!.status, /^unreadable: .*sa\.key: not a PEM private key$/);
});

test('--remote on the master: every certificate and tokens.csv by its bytes (SANs shown, - where none), each kubeconfig by name', async (t) => {
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' }, profile: 'modern', minions: ['kubeminion1'] });
  const files = new Map(pkiFilesFor(inv, inv.master).map(([l, r]) => [r, l]));
  const kc = (cert: string, certData?: Buffer) => Buffer.from(kubeconfig({ cluster: inv.cluster, server: 'https://kubemaster:6443', ca: readFileSync(path.join(dir, 'ca.crt')),
    cert: certData ?? readFileSync(path.join(dir, `${cert}.crt`)), key: readFileSync(path.join(dir, `${cert}.key`)), user: cert }));
  const host = (over: Record<string, Buffer> = {}) => readOnlyHost(inv.master, (r) => over[path.posix.basename(r)]
    ?? (files.has(r) ? readFileSync(files.get(r)!) : r.endsWith('.conf') ? kc(path.posix.basename(r, '.conf')) : undefined), inv);
  const rows = await remoteStatus(inv, host());
  t.true(rows.every((r) => r.status === 'ok'), JSON.stringify(rows.filter((r) => r.status !== 'ok')));
  t.deepEqual(rows.filter((r) => /\.(csv|conf)$/.test(r.name)).map((r) => [r.name, r.where]), [
    ['tokens.csv', 'kubemaster:/srv/kubernetes/tokens.csv'],
    ['controller-manager.conf', 'kubemaster:/srv/kubernetes/controller-manager.conf'], ['scheduler.conf', 'kubemaster:/srv/kubernetes/scheduler.conf']]);
  t.like(rows.find((r) => r.name === 'tokens.csv'), { subject: '-', sans: '-', issuer: '-', notAfter: undefined });
  t.like(rows.find((r) => r.name === 'server.crt'), { sans: 'DNS:kubernetes.default.svc,DNS:kubemaster,IP:10.24.0.1', issuer: 'CN=kubemaster' });
  t.like(rows.find((r) => r.name === 'etcd-server-kubemaster.crt'), { where: 'kubemaster:/srv/kubernetes/etcd-server.crt', issuer: 'CN=etcd-ca', sans: 'DNS:kubemaster,DNS:localhost,IP:127.0.0.1,IP:::1' });
  t.like(rows.find((r) => r.name === 'controller-manager.conf'), { subject: 'CN=system:kube-controller-manager', sans: '-', issuer: 'CN=kubemaster' });
  // a kubeconfig whose embedded certificate is not one: the row names the kubeconfig and the field
  const bad = await remoteStatus(inv, host({ 'scheduler.conf': kc('scheduler', Buffer.from('garbage')) }));
  t.regex(bad.find((r) => r.name === 'scheduler.conf')!.status, /^unreadable: kubemaster:\/srv\/kubernetes\/scheduler\.conf \(client-certificate-data\): not a PEM certificate$/);
  const noCert = Buffer.from(kc('scheduler').toString().replace(/ +client-certificate-data: .*\n/, ''));
  t.like((await remoteStatus(inv, host({ 'scheduler.conf': noCert }))).find((r) => r.name === 'scheduler.conf'),
    { status: 'drift: no client certificate', subject: '-', sans: '-', issuer: '-' });
});

test('a port that accepts but never answers TLS is given up after the timeout, naming it; an IPv6 master is bracketed; a served row lists its SANs', async (t) => {
  const silent = net.createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as AddressInfo).port;
  try {
    await t.throwsAsync(readServed('127.0.0.1', port, 'kubemaster', undefined, 300), { message: `127.0.0.1:${port}: no TLS answer in 300 ms` });
  } finally {
    silent.close();
  }
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' }, master: { name: 'kubemaster', address: '::1' }, minions: [] });
  const s = tls.createServer({ cert: readFileSync(path.join(dir, 'server.crt')), key: readFileSync(path.join(dir, 'server.key')) }, (c) => c.end());
  await new Promise<void>((r) => s.listen(0, '::1', r));
  try {
    const row = await servedStatus({ ...inv, apiserver: { ...inv.apiserver, port: (s.address() as AddressInfo).port } });
    t.like(row, { status: 'ok', where: `[::1]:${(s.address() as AddressInfo).port} (served)`, sans: 'DNS:kubernetes.default.svc,DNS:kubemaster,IP:10.24.0.1' });
    const elsewhere = await servedStatus({ ...inv, master: { ...inv.master, name: 'elsewhere' }, apiserver: { ...inv.apiserver, port: (s.address() as AddressInfo).port } });
    t.is(elsewhere.status, 'drift: not trusted with the local ca.crt for elsewhere (ERR_TLS_CERT_ALTNAME_INVALID)', 'the reason is the TLS error itself');
  } finally {
    await new Promise((r) => s.close(r));
  }
});

// ---- deployed private keys, their owners and modes, and restarts owed: what monitoring and verify must see ----------

/** The modern master as kubetls deploys it, with `over(path, state)` changing what one path holds (undefined: gone). */
async function modernMaster() {
  const { inv, dir } = await build({ pki: { key: 'ecdsa-p256' }, profile: 'modern', minions: ['kubeminion1'] });
  const files = new Map(pkiFilesFor(inv, inv.master).map(([l, r, bytes]) => [r, { l, bytes }]));
  const kc = (cert: string) => Buffer.from(kubeconfig({ cluster: inv.cluster, server: `https://kubemaster:${inv.apiserver.port}`, ca: readFileSync(path.join(dir, 'ca.crt')),
    cert: readFileSync(path.join(dir, `${cert}.crt`)), key: readFileSync(path.join(dir, `${cert}.key`)), user: `system:kube-${cert}`, context: `system:kube-${cert}@${inv.cluster}` }));
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const host = (change: Record<string, { gone?: true; bytes?: Buffer; owner?: string; group?: string; mode?: number }> = {}): Remote => {
    const content = (q: string): Buffer | undefined => (change[path.posix.basename(q)]?.gone ? undefined : change[path.posix.basename(q)]?.bytes
      ?? (files.has(q) ? files.get(q)!.bytes() : q.endsWith('.conf') ? kc(path.posix.basename(q, '.conf')) : q.startsWith('/var/lib/kubetls/') && change[path.posix.basename(q)] ? Buffer.alloc(0) : undefined));
    return {
      host: inv.master,
      async inspect(paths: string[]) {
        return new Map(paths.map((q) => {
          const c = content(q);
          const m = { ...deployedMode(inv, inv.master, q), ...change[path.posix.basename(q)] };
          return [q, c && { kind: 'file', owner: m.owner, group: m.group, mode: m.mode, size: c.length, sha256: sha(c) }];
        }));
      },
      async read(q: string) { return content(q); },
    } as unknown as Remote;
  };
  return { inv, dir, host };
}

test('status --remote has a row for every deployed key: a missing key, a key that is not its certificate\'s, a key others can read, a key of another owner', async (t) => {
  const { inv, dir, host } = await modernMaster();
  const bad = (rows: StatusRow[]) => rows.filter((r) => r.status !== 'ok').map((r) => [r.name, r.status]);
  t.deepEqual(bad(await remoteStatus(inv, host())), [], 'as kubetls deployed it: every row ok');
  const rows = await remoteStatus(inv, host({
    'server.key': { gone: true }, 'etcd-server.key': { gone: true }, 'sa.key': { mode: 0o644 }, 'front-proxy-client.key': { owner: 'root' },
    'apiserver-kubelet-client.key': { bytes: readFileSync(path.join(dir, 'scheduler.key')) },
  }));
  t.deepEqual(bad(rows), [
    ['server.key', 'missing'],
    ['sa.key', 'insecure mode 0644: kubemaster:/srv/kubernetes/sa.key'],
    ['apiserver-kubelet-client.key', 'key mismatch: /srv/kubernetes/apiserver-kubelet-client.key is not the local apiserver-kubelet-client.key (so not the key of its certificate)'],
    ['front-proxy-client.key', 'drift: owner root:nogroup, expected kube:nogroup'],
    ['etcd-server-kubemaster.key', 'missing'],
  ]);
  // and monitoring sees each: one series each, 0, with the status as a category
  const text = prometheus(rows);
  for (const [name, where, status] of [['server.key', '/srv/kubernetes/server.key', 'missing'], ['sa.key', '/srv/kubernetes/sa.key', 'insecure_mode'],
    ['etcd-server-kubemaster.key', '/srv/kubernetes/etcd-server.key', 'missing'], ['apiserver-kubelet-client.key', '/srv/kubernetes/apiserver-kubelet-client.key', 'key_mismatch']]) {
    t.true(text.includes(`kubetls_certificate_ok{name="${name}",where="kubemaster:${where}",status="${status}"} 0`), `${name} in the textfile`);
  }
  // a kubeconfig that embeds another key than the local one, or that others can read
  const conf = readFileSync(path.join(dir, 'scheduler.key'));
  const swapped = (await remoteStatus(inv, host({ 'controller-manager.conf': { bytes: Buffer.from(kubeconfig({ cluster: inv.cluster, server: 'https://kubemaster:6443',
    ca: readFileSync(path.join(dir, 'ca.crt')), cert: readFileSync(path.join(dir, 'controller-manager.crt')), key: conf })) }, 'scheduler.conf': { mode: 0o604 } })));
  t.deepEqual(bad(swapped), [['controller-manager.conf', 'key mismatch: embeds another key than the local controller-manager.key'],
    ['scheduler.conf', 'insecure mode 0604: kubemaster:/srv/kubernetes/scheduler.conf']]);
});

test('verify fails a deployed key others can read, with another owner, or missing; a certificate may be as readable as kubetls makes it', async (t) => {
  const { inv, host } = await modernMaster();
  const { deployedChecks } = await import('../lib/verify.ts');
  const failed = async (change: Parameters<typeof host>[0]) => (await deployedChecks(inv, host(change))).filter((r) => r.check === 'deployed' && !r.ok).map((r) => [r.target, r.detail]);
  t.deepEqual(await failed({}), []);
  const sa = (await failed({ 'sa.key': { mode: 0o644 } }))[0]!;
  t.is(sa[0], 'kubemaster:/srv/kubernetes/sa.key');
  t.regex(sa[1]!, /^= \S*sa\.key, kube:nogroup 0644: insecure mode 0644, expected kube:nogroup 0600 \(run renew\.ts \(or master\.ts\)\)$/);
  const owner = (await failed({ 'etcd-peer.key': { owner: 'kube', group: 'nogroup' } }))[0]!;
  t.regex(owner[1]!, /: owner kube:nogroup, expected etcd:etcd \(run renew\.ts/);
  t.deepEqual((await failed({ 'server.key': { gone: true } })).map(([tg, d]) => [tg, d]), [['kubemaster:/srv/kubernetes/server.key', 'missing']]);
  t.deepEqual(await failed({ 'etcd-ca.crt': { mode: 0o644 } }), [], 'a certificate kubetls deploys 0644 stays ok at 0644');
});

test('a restart an interrupted run left owed is a row of status --remote and a failed check of verify, naming the unit and what to run', async (t) => {
  const { inv, host } = await modernMaster();
  const { deployedChecks } = await import('../lib/verify.ts');
  const owed = host({ 'restart.kube-controller-manager': {} });
  const rows = (await remoteStatus(inv, owed)).filter((r) => r.status !== 'ok');
  t.deepEqual(rows.map((r) => [r.name, r.where, r.status]), [['restart.kube-controller-manager', 'kubemaster:/var/lib/kubetls/restart.kube-controller-manager',
    'renew due: kube-controller-manager owes a restart an earlier run did not make (it runs on files it has not read yet); run renew.ts (or master.ts)']]);
  t.regex(prometheus(rows), /kubetls_certificate_ok\{name="restart\.kube-controller-manager",where="kubemaster:\/var\/lib\/kubetls\/restart\.kube-controller-manager",status="renew_due"\} 0/);
  const checks = (await deployedChecks(inv, owed)).filter((r) => !r.ok && r.check !== 'configured'); // the fake host has no env files
  t.deepEqual(checks.map((r) => [r.check, r.target]), [['restart owed', 'kubemaster:kube-controller-manager']]);
  t.regex(checks[0]!.detail, /^kube-controller-manager owes a restart an earlier run did not make \(\/var\/lib\/kubetls\/restart\.kube-controller-manager\): it may run on old credentials; run renew\.ts \(or master\.ts\)$/);
  // none owed: no row, no check
  t.false((await remoteStatus(inv, host())).some((r) => r.name.startsWith('restart.')));
});
