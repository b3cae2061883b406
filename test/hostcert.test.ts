/**
 * Host certificates (`@cert-authority`), judged by lib/remote/hostcert.ts: certificates made with the real ssh-keygen
 * (`-s CA -h -n principals -V …`) by an ed25519, an RSA and ECDSA CAs. Each refusal is fed its bad case.
 * The connection through a real sshd with HostCertificate is in hostcert-lab.test.ts (needs root).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { checkHostCert, fetchHostCerts, parseCert, type CertVerdict } from '../lib/remote/hostcert.ts';
import { fingerprint } from '../lib/remote/knownhosts.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'kubetls-hostcert-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const p = (f: string) => path.join(dir, f);

/** A key pair made by ssh-keygen; returns the public key line's `type base64` and its blob. */
async function keygen(name: string, type: string, bits?: number): Promise<{ pub: string; blob: Buffer }> {
  await execa('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', name, '-f', p(name)]);
  const [t, b64] = readFileSync(p(`${name}.pub`), 'utf8').trim().split(/\s+/);
  return { pub: `${t} ${b64}`, blob: Buffer.from(b64, 'base64') };
}

let n = 0;
/** Sign `key`'s public key with `ca` (ssh-keygen -s); `args` are the rest (-h, -n, -V, -O, -t). Returns the certificate blob. */
async function sign(ca: string, key: string, args: string[]): Promise<Buffer> {
  const copy = `${key}-${++n}`;
  copyFileSync(p(`${key}.pub`), p(`${copy}.pub`));
  await execa('ssh-keygen', ['-q', '-s', p(ca), '-I', `test-${n}`, ...args, p(`${copy}.pub`)]);
  return Buffer.from(readFileSync(p(`${copy}-cert.pub`), 'utf8').trim().split(/\s+/)[1], 'base64');
}

let files = 0;
const knownHosts = (lines: string[]) => {
  const f = p(`known_hosts_${++files}`);
  writeFileSync(f, `${lines.join('\n')}\n`);
  return f;
};

const keys = (async () => ({
  ed: await keygen('ca_ed', 'ed25519'),
  rsa: await keygen('ca_rsa', 'rsa', 2048),
  ec256: await keygen('ca_ec256', 'ecdsa', 256),
  ec384: await keygen('ca_ec384', 'ecdsa', 384),
  ec521: await keygen('ca_ec521', 'ecdsa', 521),
  other: await keygen('ca_other', 'ed25519'),
  host: await keygen('host', 'ed25519'),
  hostEc: await keygen('host_ec', 'ecdsa', 256),
  hostRsa: await keygen('host_rsa', 'rsa', 2048),
  stranger: await keygen('stranger', 'ed25519'),
}))();
type Keys = Awaited<typeof keys>;

const HOST = { hosts: ['127.5.0.1', 'kubemaster'], port: 22 };
const GOOD = ['-h', '-n', 'kubemaster,127.5.0.1', '-V', '-5m:+1h'];
/** The standard known_hosts: the ed25519 CA for every name of the host. */
const caLine = (k: Keys, which: keyof Keys = 'ed', hosts = 'kubemaster,127.5.0.1') => `@cert-authority ${hosts} ${k[which].pub}`;
const judge = (cert: Buffer, hostKey: Buffer, file: string, o: Partial<typeof HOST> = {}): CertVerdict =>
  checkHostCert(cert, { ...HOST, ...o, hostKey, files: [file] });
/** The verdict is a refusal whose one-line reason matches `why`. */
const refused = (t: ExecutionContext, v: CertVerdict, why: RegExp) => {
  t.false(v.ok);
  t.regex(!v.ok ? v.reason : '(accepted)', why);
  t.false(!v.ok && v.reason.includes('\n'));
};

test('a host certificate from the @cert-authority CA for the key presented is accepted, for the name that matched', async (t) => {
  const k = await keys;
  const kh = knownHosts(['# CA', caLine(k)]);
  const v = judge(await sign('ca_ed', 'host', GOOD), k.host.blob, kh);
  t.deepEqual(v, { ok: true, name: '127.5.0.1', file: kh, line: 2 });
});

test('RSA CAs (rsa-sha2-256 and rsa-sha2-512) and ECDSA CAs (nistp256, 384, 521) verify, for ed25519, ECDSA and RSA host keys', async (t) => {
  const k = await keys;
  const cases: [keyof Keys, string[], 'host' | 'host_ec' | 'host_rsa', Buffer][] = [
    ['rsa', ['-t', 'rsa-sha2-256'], 'host', k.host.blob],
    ['rsa', ['-t', 'rsa-sha2-512'], 'host_ec', k.hostEc.blob],
    ['ec256', [], 'host_rsa', k.hostRsa.blob],
    ['ec384', [], 'host', k.host.blob],
    ['ec521', [], 'host', k.host.blob],
  ];
  for (const [ca, extra, hostKey, blob] of cases) {
    const kh = knownHosts([caLine(k, ca)]);
    const cert = await sign(`ca_${ca}`, hostKey, [...extra, ...GOOD]);
    t.true(judge(cert, blob, kh).ok, `${ca} ${extra.join(' ')} signing a ${hostKey} key`);
    // the same certificate altered in one byte of its body must fail with that CA type too
    const bad = Buffer.from(cert);
    bad[4 + parseCert(cert).certType.length + 4 + 3] ^= 1; // a byte of the nonce
    refused(t, judge(bad, blob, kh), /^its signature does not verify/);
  }
});

test('an RSA CA signature made with ssh-rsa (SHA-1) is refused, as OpenSSH refuses it by default', async (t) => {
  const k = await keys;
  refused(t, judge(await sign('ca_rsa', 'host', ['-t', 'ssh-rsa', ...GOOD]), k.host.blob, knownHosts([caLine(k, 'rsa')])), /signature algorithm ssh-rsa is not accepted for a CA/);
});

test('a certificate whose principals do not name the host is refused', async (t) => {
  const k = await keys;
  const v = judge(await sign('ca_ed', 'host', ['-h', '-n', 'kubeminion1,127.5.0.2', '-V', '-5m:+1h']), k.host.blob, knownHosts([caLine(k)]));
  refused(t, v, /^its principals \(kubeminion1, 127\.5\.0\.2\) do not include 127\.5\.0\.1 or kubemaster$/);
});

test('the principal must match the same name the @cert-authority line matched', async (t) => {
  const k = await keys;
  // the CA is trusted for kubemaster only; the certificate names only the address
  const cert = await sign('ca_ed', 'host', ['-h', '-n', '127.5.0.1', '-V', '-5m:+1h']);
  refused(t, judge(cert, k.host.blob, knownHosts([caLine(k, 'ed', 'kubemaster')])), /do not include kubemaster$/);
  t.true(judge(cert, k.host.blob, knownHosts([caLine(k, 'ed', '127.5.0.*')])).ok);
});

test('wildcard principals match as in OpenSSH, case-sensitively against the lower-cased name', async (t) => {
  const k = await keys;
  const cert = await sign('ca_ed', 'host', ['-h', '-n', 'kubemaster*', '-V', '-5m:+1h']);
  const kh = knownHosts([caLine(k, 'ed', '*')]);
  t.like(judge(cert, k.host.blob, kh, { hosts: ['127.5.0.1', 'KubeMaster2'] }), { ok: true, name: 'kubemaster2' });
  refused(t, judge(cert, k.host.blob, kh, { hosts: ['127.5.0.1', 'kubeminion1'] }), /do not include/);
  // a principal written in capitals does not match the (lower-cased) name: OpenSSH's match_pattern is case-sensitive
  refused(t, judge(await sign('ca_ed', 'host', ['-h', '-n', 'KubeMaster', '-V', '-5m:+1h']), k.host.blob, kh), /\(KubeMaster\) do not include 127\.5\.0\.1 or kubemaster$/);
});

test('a certificate with no principals is refused (current OpenSSH refuses it; older ones took it for any host)', async (t) => {
  const k = await keys;
  refused(t, judge(await sign('ca_ed', 'host', ['-h', '-V', '-5m:+1h']), k.host.blob, knownHosts([caLine(k)])), /no principals/);
});

test('an expired certificate and one not valid yet are refused, with the date', async (t) => {
  const k = await keys;
  const kh = knownHosts([caLine(k)]);
  refused(t, judge(await sign('ca_ed', 'host', ['-h', '-n', 'kubemaster', '-V', '-2h:-1h']), k.host.blob, kh), /^it expired at \d{4}-\d\d-\d\dT/);
  refused(t, judge(await sign('ca_ed', 'host', ['-h', '-n', 'kubemaster', '-V', '+1h:+2h']), k.host.blob, kh), /^it is not valid before \d{4}-\d\d-\d\dT/);
  // the window is half-open: valid_before itself is already expired, valid_after itself is valid
  const cert = await sign('ca_ed', 'host', ['-h', '-n', 'kubemaster', '-V', '20300101000000:20300102000000']);
  const c = parseCert(cert);
  t.true(checkHostCert(cert, { ...HOST, hostKey: k.host.blob, files: [kh], now: Number(c.validAfter) }).ok);
  refused(t, checkHostCert(cert, { ...HOST, hostKey: k.host.blob, files: [kh], now: Number(c.validBefore) }), /expired/);
  t.true(judge(await sign('ca_ed', 'host', ['-h', '-n', 'kubemaster']), k.host.blob, kh).ok, 'no -V: valid forever');
});

test('a user certificate (no -h) is refused', async (t) => {
  const k = await keys;
  refused(t, judge(await sign('ca_ed', 'host', ['-n', 'kubemaster', '-V', '-5m:+1h']), k.host.blob, knownHosts([caLine(k)])), /user certificate, not a host certificate/);
});

test('a certificate signed by another CA is refused, also when that CA is trusted for other hosts only', async (t) => {
  const k = await keys;
  const cert = await sign('ca_other', 'host', GOOD);
  refused(t, judge(cert, k.host.blob, knownHosts([caLine(k)])), /^it is signed by ssh-ed25519 SHA256:\S+, not by a @cert-authority key for 127\.5\.0\.1 or kubemaster$/);
  refused(t, judge(cert, k.host.blob, knownHosts([caLine(k), `@cert-authority kubeminion* ${k.other.pub}`])), /not by a @cert-authority key/);
  // a plain known_hosts line with the CA's key is not a CA line
  refused(t, judge(cert, k.host.blob, knownHosts([`kubemaster ${k.other.pub}`])), /not by a @cert-authority key/);
});

test('a certificate signed by a @revoked CA key is refused as revoked, even with the @cert-authority line present', async (t) => {
  const k = await keys;
  const kh = knownHosts([caLine(k), `@revoked * ${k.ed.pub}`]);
  const v = judge(await sign('ca_ed', 'host', GOOD), k.host.blob, kh);
  t.deepEqual(v, { ok: false, revoked: true, reason: `it is signed by the CA key ssh-ed25519 ${fingerprint(k.ed.blob)}, which is @revoked (${kh}:2)` });
});

test('a tampered certificate is refused: a principal added, the validity stretched, the signature altered', async (t) => {
  const k = await keys;
  const kh = knownHosts([caLine(k)]);
  const cert = await sign('ca_ed', 'host', ['-h', '-n', 'kubemastex', '-V', '-5m:+1h']);
  t.regex((judge(cert, k.host.blob, kh) as { reason: string }).reason, /do not include/);
  const renamed = Buffer.from(cert.toString('latin1').replace('kubemastex', 'kubemaster'), 'latin1');
  refused(t, judge(renamed, k.host.blob, kh), /signature does not verify/);
  const c = parseCert(cert);
  const at = c.signed.length - c.signatureKey.length - 4 - 4 - 4 - 4 - 8; // valid_before, before critical/extensions/reserved
  const stretched = Buffer.from(cert);
  stretched.writeBigUInt64BE(0xffffffffffffffffn, at);
  t.is(parseCert(stretched).validBefore, 0xffffffffffffffffn);
  refused(t, judge(stretched, k.host.blob, kh), /signature does not verify/);
  const sig = Buffer.from(cert);
  sig[sig.length - 1] ^= 0x80;
  refused(t, judge(sig, k.host.blob, kh), /signature does not verify/);
  refused(t, judge(cert.subarray(0, cert.length - 5), k.host.blob, kh), /malformed certificate \(truncated\)/);
  refused(t, judge(Buffer.concat([cert, Buffer.alloc(1)]), k.host.blob, kh), /bytes after the signature/);
});

test('a valid certificate for a different key than the one the host presented is refused', async (t) => {
  const k = await keys;
  const v = judge(await sign('ca_ed', 'stranger', GOOD), k.host.blob, knownHosts([caLine(k)]));
  refused(t, v, /^it is for the key ssh-ed25519 SHA256:\S+, not for the key the host presented$/);
});

test('a host certificate with critical options is refused (none is defined for hosts)', async (t) => {
  const k = await keys;
  refused(t, judge(await sign('ca_ed', 'host', ['-O', 'force-command=/bin/true', ...GOOD]), k.host.blob, knownHosts([caLine(k)])), /critical options/);
});

test('@cert-authority lines follow the known_hosts patterns: [host]:port, hashed names, negation', async (t) => {
  const k = await keys;
  const cert = await sign('ca_ed', 'host', GOOD);
  const port = knownHosts([caLine(k, 'ed', '[127.5.0.1]:2222')]);
  t.true(judge(cert, k.host.blob, port, { port: 2222 }).ok);
  refused(t, judge(cert, k.host.blob, port), /not by a @cert-authority key for 127\.5\.0\.1 or kubemaster$/);
  const salt = randomBytes(20);
  const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('kubemaster').digest('base64')}`;
  t.like(judge(cert, k.host.blob, knownHosts([caLine(k, 'ed', hashed)])), { ok: true, name: 'kubemaster' });
  refused(t, judge(cert, k.host.blob, knownHosts([caLine(k, 'ed', 'kube*,127.*,!kubemaster,!127.5.0.1')])), /not by a @cert-authority key/);
});

test('certificates of types we do not verify, and garbage, are refused with one line', async (t) => {
  const k = await keys;
  const kh = knownHosts([caLine(k)]);
  refused(t, judge(k.host.blob, k.host.blob, kh), /^unsupported certificate type "ssh-ed25519"$/);
  refused(t, judge(Buffer.from('nonsense'), k.host.blob, kh), /malformed certificate|unsupported certificate type/);
  refused(t, judge(Buffer.alloc(0), k.host.blob, kh), /malformed certificate \(truncated\)/);
});

/** A loopback TCP server that does `onConn` with each connection; resolves with its port. */
async function server(onConn: (s: import('node:net').Socket) => void): Promise<{ port: number; srv: Server }> {
  const srv = createServer(onConn);
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  return { port: (srv.address() as { port: number }).port, srv };
}

test('fetching: a server that offers no certificate, one that never answers, and key types we cannot check each fail with one line', async (t) => {
  const closes = await server((s) => s.end('SSH-2.0-nothing\r\n'));
  const silent = await server(() => undefined);
  try {
    const a = await t.throwsAsync(fetchHostCerts('127.0.0.1', closes.port, 'ssh-ed25519', 2000));
    t.is(a!.message, `the host offered no ssh-ed25519-cert-v01@openssh.com (ssh-keyscan -c -p ${closes.port} -t ed25519 127.0.0.1)`);
    const started = Date.now();
    const b = await t.throwsAsync(fetchHostCerts('127.0.0.1', silent.port, 'ecdsa-sha2-nistp256', 1000));
    t.regex(b!.message, /^(ssh-keyscan -c got no answer from 127\.0\.0\.1:\d+ in 1 s|the host offered no ecdsa-sha2-nistp256-cert-v01@openssh\.com .*)$/);
    t.true(Date.now() - started < 4000, 'bounded by the timeout');
    await t.throwsAsync(fetchHostCerts('127.0.0.1', closes.port, 'ssh-dss'), { message: 'host certificates for ssh-dss keys are not supported' });
  } finally {
    closes.srv.close();
    silent.srv.close();
  }
});
