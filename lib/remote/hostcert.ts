/**
 * Host certificates (`@cert-authority` lines in known_hosts), checked the way OpenSSH checks them
 * (PROTOCOL.certkeys; sshkey.c `sshkey_cert_check_host`, sshconnect.c `check_host_key`).
 *
 * Why a certificate is fetched separately: ssh2 does not negotiate the `*-cert-v01@openssh.com` host key algorithms,
 * so the server presents its plain host key K, and ssh2 proves that the server holds K's private key (the exchange
 * hash signature). The certificate for K is then fetched with the real OpenSSH `ssh-keyscan -c`. That fetch is not
 * authenticated, and need not be: everything in the certificate is checked here, and it is accepted only if it is
 * for K itself. Whoever answers the scan can at most hand us a certificate the CA really issued for K, which says
 * what the CA says; a forged, altered, expired or foreign certificate is refused.
 *
 * Checks, in the order a refusal names them (each refusal is one line):
 *  - well-formed (every length in bounds, nothing after the signature), of a key type we verify: ed25519, ECDSA
 *    nistp256/384/521, RSA signed with rsa-sha2-256/512 (ssh-rsa/SHA-1 signatures are refused, as OpenSSH's default
 *    CASignatureAlgorithms does; DSA and security-key types are refused);
 *  - the CA's signature verifies over the certificate body (node:crypto);
 *  - a host certificate (type 2), not a user certificate;
 *  - the certificate is for K (the key ssh2 saw the server prove);
 *  - the CA key is not `@revoked` for the host (a hard refusal: OpenSSH does not fall back to the plain key then);
 *  - signed by the key of a `@cert-authority` line that matches the host's name (same pattern rules as plain lines,
 *    `[host]:port` for other ports);
 *  - valid_after <= now < valid_before;
 *  - no empty principal list: refused, as current OpenSSH does (sshkey.c sshkey_cert_check_authority: "Certificate
 *    lacks principal list"; older releases accepted it for any host, the fail-open reading we do not copy);
 *  - a principal matches the name the CA line matched (principals may be `*`/`?` patterns, matched case-sensitively
 *    against the lower-cased name, as sshkey_cert_check_host does with match_pattern);
 *  - no critical options at all: none is defined for host certificates, and OpenSSH refuses any.
 * A host is looked up under its address and under its inventory name; the CA line and the principal must match the
 * SAME one of them (OpenSSH checks the principal against the very name it looked the CA up under).
 */
import { createPublicKey, verify as cryptoVerify, type JsonWebKey } from 'node:crypto';
import { execa } from 'execa';
import { blobType, fingerprint, lookupName, markedKeys } from './knownhosts.ts';

export interface HostCert {
  certType: string;
  /** the plain public key blob the certificate is for (as a server presents it) */
  key: Buffer;
  serial: bigint;
  type: number; // 1 user, 2 host
  keyId: string;
  principals: string[];
  validAfter: bigint;
  validBefore: bigint;
  critical: Buffer;
  signatureKey: Buffer;
  signature: Buffer;
  /** the bytes the signature covers: everything before the signature field */
  signed: Buffer;
}

export const HOST_CERT = 2;
const CERT_SUFFIX = '-cert-v01@openssh.com';

class Reader {
  private at = 0;
  constructor(private b: Buffer) {}
  get offset() { return this.at; }
  get done() { return this.at === this.b.length; }
  private need(n: number) { if (n < 0 || this.at + n > this.b.length) throw new Error('malformed certificate (truncated)'); }
  u32(): number { this.need(4); const v = this.b.readUInt32BE(this.at); this.at += 4; return v; }
  u64(): bigint { this.need(8); const v = this.b.readBigUInt64BE(this.at); this.at += 8; return v; }
  bytes(): Buffer { const n = this.u32(); this.need(n); const v = this.b.subarray(this.at, this.at + n); this.at += n; return v; }
  str(): string { return this.bytes().toString('utf8'); }
}

/** The public key fields that follow the key type in a plain key blob, by plain key type. */
const KEY_FIELDS: Record<string, number> = {
  'ssh-ed25519': 1, // pk
  'ecdsa-sha2-nistp256': 2, // curve, Q
  'ecdsa-sha2-nistp384': 2,
  'ecdsa-sha2-nistp521': 2,
  'ssh-rsa': 2, // e, n
};

/** Parse an OpenSSH certificate blob (PROTOCOL.certkeys). Throws a one-line Error when it is malformed or of a type we do not verify. */
export function parseCert(blob: Buffer): HostCert {
  const r = new Reader(blob);
  const certType = r.str();
  const plainType = certType.endsWith(CERT_SUFFIX) ? certType.slice(0, -CERT_SUFFIX.length) : '';
  const fields = KEY_FIELDS[plainType];
  if (!fields) throw new Error(`unsupported certificate type ${JSON.stringify(certType.slice(0, 60))}`);
  r.bytes(); // nonce
  const start = r.offset;
  for (let i = 0; i < fields; i++) r.bytes();
  const typeName = Buffer.from(plainType);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(typeName.length);
  const key = Buffer.concat([len, typeName, blob.subarray(start, r.offset)]);
  const serial = r.u64();
  const type = r.u32();
  const keyId = r.str();
  const principals: string[] = [];
  const p = new Reader(r.bytes());
  while (!p.done) principals.push(p.str());
  const validAfter = r.u64();
  const validBefore = r.u64();
  const critical = r.bytes();
  r.bytes(); // extensions: none is defined for host certificates; OpenSSH ignores them there
  r.bytes(); // reserved
  const signatureKey = r.bytes();
  const signed = blob.subarray(0, r.offset);
  const signature = r.bytes();
  if (!r.done) throw new Error('malformed certificate (bytes after the signature)');
  return { certType, key, serial, type, keyId, principals, validAfter, validBefore, critical, signatureKey, signature, signed };
}

const b64u = (b: Buffer) => b.toString('base64url');
/** node's reading of a JWK, with a one-line refusal instead of OpenSSL's message when the key is not a valid one. */
function jwkKey(jwk: JsonWebKey) {
  try { return createPublicKey({ key: jwk, format: 'jwk' }); } catch { throw new Error('malformed CA key'); }
}
/** An SSH mpint as the unsigned big-endian integer JWK wants (no sign byte, at least one byte). */
const unsigned = (b: Buffer) => { let i = 0; while (i < b.length - 1 && b[i] === 0) i++; return b.subarray(i); };
const CURVES: Record<string, { crv: string; size: number; hash: string }> = {
  nistp256: { crv: 'P-256', size: 32, hash: 'sha256' },
  nistp384: { crv: 'P-384', size: 48, hash: 'sha384' },
  nistp521: { crv: 'P-521', size: 66, hash: 'sha512' },
};

/**
 * Does `sig` (an SSH signature: string algorithm, string blob) by the SSH public key `keyBlob` verify over `data`?
 * Throws when the algorithm is not one we accept for a CA (so that the refusal says so instead of "bad signature").
 */
export function verifySignature(keyBlob: Buffer, sig: Buffer, data: Buffer): boolean {
  const k = new Reader(keyBlob);
  const keyType = k.str();
  const s = new Reader(sig);
  const alg = s.str();
  const raw = s.bytes();
  if (!s.done) return false;
  if (keyType === 'ssh-ed25519') {
    if (alg !== 'ssh-ed25519') throw new Error(`signature algorithm ${alg} does not match the CA's ${keyType} key`);
    const pk = k.bytes();
    if (!k.done || pk.length !== 32) throw new Error('malformed CA key');
    const key = jwkKey({ kty: 'OKP', crv: 'Ed25519', x: b64u(pk) });
    return cryptoVerify(null, data, key, raw);
  }
  if (keyType === 'ssh-rsa') {
    // ssh-rsa (SHA-1) is not in OpenSSH's default CASignatureAlgorithms since 8.2: refused here too
    const hash = alg === 'rsa-sha2-256' ? 'sha256' : alg === 'rsa-sha2-512' ? 'sha512' : undefined;
    if (!hash) throw new Error(`signature algorithm ${alg} is not accepted for a CA (rsa-sha2-256 or rsa-sha2-512 only)`);
    const e = k.bytes();
    const n = k.bytes();
    if (!k.done) throw new Error('malformed CA key');
    const key = jwkKey({ kty: 'RSA', n: b64u(unsigned(n)), e: b64u(unsigned(e)) });
    return cryptoVerify(hash, data, key, raw); // PKCS#1 v1.5, node's default for RSA keys
  }
  const m = /^ecdsa-sha2-(nistp256|nistp384|nistp521)$/.exec(keyType);
  if (m) {
    if (alg !== keyType) throw new Error(`signature algorithm ${alg} does not match the CA's ${keyType} key`);
    const c = CURVES[m[1]];
    if (k.str() !== m[1]) throw new Error('malformed CA key (curve)');
    const q = k.bytes();
    if (!k.done || q.length !== 1 + 2 * c.size || q[0] !== 4) throw new Error('malformed CA key (point)');
    const key = jwkKey({ kty: 'EC', crv: c.crv, x: b64u(q.subarray(1, 1 + c.size)), y: b64u(q.subarray(1 + c.size)) });
    // the SSH ECDSA signature blob is mpint r, mpint s; node wants r||s, each left-padded to the field size
    const rs = new Reader(raw);
    const parts = [unsigned(rs.bytes()), unsigned(rs.bytes())];
    if (!rs.done || parts.some((x) => x.length > c.size)) return false;
    const p1363 = Buffer.concat(parts.map((x) => Buffer.concat([Buffer.alloc(c.size - x.length), x])));
    return cryptoVerify(c.hash, data, { key, dsaEncoding: 'ieee-p1363' }, p1363);
  }
  throw new Error(`CA key type ${keyType.slice(0, 40)} is not supported`);
}

/** OpenSSH match_pattern: `*` and `?`, case-sensitive (the host name is lower-cased first, as ssh(1) does). */
function principalMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's');
  return re.test(name);
}

const when = (t: bigint) => (t >= 253402300800n ? 'forever' : new Date(Number(t) * 1000).toISOString().replace(/\.000Z$/, 'Z'));
const keyName = (blob: Buffer) => `${blobType(blob)} ${fingerprint(blob)}`;

export type CertVerdict =
  | { ok: true; name: string; file: string; line: number }
  | { ok: false; reason: string; revoked?: boolean };

/**
 * Judge a certificate fetched for a host: `hostKey` is the plain key the server proved it holds, `hosts` the bare
 * names it is looked up under (address, inventory name), `files` the known_hosts files. See the module comment.
 */
export function checkHostCert(blob: Buffer, o: { hostKey: Buffer; hosts: string[]; port: number; files: string[]; now?: number }): CertVerdict {
  let c: HostCert;
  try { c = parseCert(blob); } catch (e) { return { ok: false, reason: (e as Error).message }; }
  try {
    if (!verifySignature(c.signatureKey, c.signature, c.signed)) return { ok: false, reason: `its signature does not verify (altered, or not made by ${keyName(c.signatureKey)})` };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  if (c.type !== HOST_CERT) return { ok: false, reason: `it is a ${c.type === 1 ? 'user' : `type ${c.type}`} certificate, not a host certificate` };
  if (!c.key.equals(o.hostKey)) return { ok: false, reason: `it is for the key ${keyName(c.key)}, not for the key the host presented` };
  const hosts = [...new Set(o.hosts.map((h) => h.toLowerCase()))];
  const lookups = hosts.map((h) => lookupName(h, o.port));
  // a CA key @revoked for the host refuses it whatever else holds (OpenSSH: HOST_REVOKED, no fallback to the plain key)
  for (const file of o.files) {
    const revoked = markedKeys(file, lookups).find((k) => k.revoked && k.blob.equals(c.signatureKey));
    if (revoked) return { ok: false, revoked: true, reason: `it is signed by the CA key ${keyName(c.signatureKey)}, which is @revoked (${file}:${revoked.line})` };
  }
  // the CA line and the principal must match the same name
  const signedFor: { host: string; file: string; line: number }[] = [];
  for (const [i, host] of hosts.entries()) {
    for (const file of o.files) {
      const ca = markedKeys(file, [lookups[i]]).find((k) => k.ca && k.blob.equals(c.signatureKey));
      if (ca) signedFor.push({ host, file, line: ca.line });
    }
  }
  if (!signedFor.length) return { ok: false, reason: `it is signed by ${keyName(c.signatureKey)}, not by a @cert-authority key for ${lookups.join(' or ')}` };
  const now = BigInt(Math.floor(o.now ?? Date.now() / 1000));
  if (now < c.validAfter) return { ok: false, reason: `it is not valid before ${when(c.validAfter)}` };
  if (now >= c.validBefore) return { ok: false, reason: `it expired at ${when(c.validBefore)}` };
  if (!c.principals.length) return { ok: false, reason: 'it has no principals (OpenSSH refuses such certificates)' };
  const match = signedFor.find((s) => c.principals.some((p) => principalMatch(p, s.host)));
  if (!match) return { ok: false, reason: `its principals (${c.principals.join(', ').slice(0, 200)}) do not include ${[...new Set(signedFor.map((s) => s.host))].join(' or ')}` };
  if (c.critical.length) return { ok: false, reason: 'it carries critical options, which a host certificate must not have' };
  return { ok: true, name: match.host, file: match.file, line: match.line };
}

const f64 = (s: string) => /^[A-Za-z0-9+/]+={0,2}$/.test(s);

/** The `ssh-keyscan -t` name of a plain host key type, or undefined when we cannot verify its certificates. */
function scanType(keyType: string): string | undefined {
  if (keyType === 'ssh-ed25519') return 'ed25519';
  if (keyType.startsWith('ecdsa-sha2-nistp')) return 'ecdsa';
  if (keyType === 'ssh-rsa') return 'rsa';
  return undefined;
}

/**
 * The host certificates a server offers for its `keyType` key, fetched with the real `ssh-keyscan -c` (argv, no
 * shell, bounded). Unauthenticated on purpose: see the module comment. Throws a one-line Error when none comes back.
 */
export async function fetchHostCerts(address: string, port: number, keyType: string, timeoutMs = 5000): Promise<Buffer[]> {
  const t = scanType(keyType);
  if (!t) throw new Error(`host certificates for ${keyType} keys are not supported`);
  const secs = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
  const r = await execa('ssh-keyscan', ['-c', '-T', secs, '-p', String(port), '-t', t, '--', address], {
    reject: false, timeout: timeoutMs + 1000, stdin: 'ignore', maxBuffer: 1 << 20,
  });
  if (r.timedOut) throw new Error(`ssh-keyscan -c got no answer from ${address}:${port} in ${secs} s`);
  if (r.failed && r.exitCode === undefined) throw new Error(`ssh-keyscan could not run: ${(r.shortMessage ?? '').split('\n')[0]}`);
  const want = `${keyType}${CERT_SUFFIX}`;
  // with -c, ssh-keyscan prints `TYPE BASE64` (no host field, unlike its plain-key lines): take the field after the type
  const certs = String(r.stdout).split('\n').filter((l) => l && !l.startsWith('#'))
    .map((l) => l.trim().split(/\s+/)).filter((f) => f.includes(want))
    .map((f) => f[f.indexOf(want) + 1] ?? '').filter(f64).map((b64) => Buffer.from(b64, 'base64'));
  if (!certs.length) throw new Error(`the host offered no ${want} (ssh-keyscan -c -p ${port} -t ${t} ${address})`);
  return certs;
}

/**
 * Fetch and judge the host's certificate for the key it presented. The first certificate that passes wins; otherwise
 * the first refusal is returned (a revoked CA first of all: that one is never overridden).
 */
export async function verifyHostByCert(o: { address: string; hosts: string[]; port: number; hostKey: Buffer; files: string[]; timeoutMs?: number }): Promise<CertVerdict> {
  let certs: Buffer[];
  try { certs = await fetchHostCerts(o.address, o.port, blobType(o.hostKey), o.timeoutMs); } catch (e) { return { ok: false, reason: (e as Error).message }; }
  const verdicts = certs.map((c) => checkHostCert(c, o));
  return verdicts.find((v) => v.ok) ?? verdicts.find((v) => !v.ok && v.revoked) ?? verdicts[0];
}
