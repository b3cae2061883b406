/**
 * Reading what is in pki.dir: certificates (node's X509Certificate, the same OpenSSL library without a process per
 * file), private and public keys. Whatever cannot be read is an UnreadableError whose message starts with the file's
 * name and says what the bytes are instead (`pki/server.crt: not a PEM certificate (truncated?)`), never a bare OpenSSL
 * error. Nothing here writes.
 */
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { canonicalIp } from '../../config/certs.ts';
import { shown } from '../log.ts';

export interface CertInfo {
  subject: { cn: string; o?: string };
  issuer: string;
  sans: string[]; // normalised: DNS:name, IP:address
  notAfter: Date;
  serial: string;
  fingerprint: string; // SHA-256, as openssl x509 -fingerprint -sha256 prints it
  keyType: string; // rsa 2048 | ecdsa-p256 | ecdsa-p384
  eku: string[]; // serverAuth, clientAuth
  isCa: boolean;
  x509: X509Certificate;
}

const EKU: Record<string, string> = { '1.3.6.1.5.5.7.3.1': 'serverAuth', '1.3.6.1.5.5.7.3.2': 'clientAuth' };

/**
 * A certificate from PEM bytes. What cannot be read throws a PkiError that names `what` (a file, a kubeconfig) and says
 * what the bytes are instead: `pki/server.crt: not a PEM certificate (truncated?)`, never a bare OpenSSL error.
 */
export function parseCert(pem: string | Buffer, what = 'certificate'): CertInfo {
  let x: X509Certificate;
  try { x = new X509Certificate(pem); } catch (e) { throw new UnreadableError(`${what}: ${pemProblem(pem, 'CERTIFICATE', 'a PEM certificate', e)}`); }
  const field = (dn: string, k: string) => dn.split('\n').find((l) => l.startsWith(`${k}=`))?.slice(k.length + 1);
  return {
    subject: { cn: field(x.subject, 'CN') ?? '', o: field(x.subject, 'O') },
    issuer: x.issuer.replace(/\n/g, ', '),
    sans: (x.subjectAltName ?? '').split(', ').filter(Boolean).map(normaliseSan),
    notAfter: new Date(x.validTo),
    serial: x.serialNumber.toUpperCase(),
    fingerprint: x.fingerprint256,
    keyType: describeKey(x.publicKey),
    eku: (x.keyUsage ?? []).map((oid) => EKU[oid] ?? oid),
    isCa: x.ca,
    x509: x,
  };
}

/** A PKI file that exists (undefined when it does not); anything else that stops reading it is a PkiError naming it. */
export function readCert(file: string): CertInfo | undefined {
  return existsSync(file) ? parseCert(readPkiFile(file), shown(file)) : undefined;
}

/** An unencrypted private key (ca.key, server.key, <minion>.key, sa.key), or a PkiError naming the file. */
export function readKey(file: string): KeyObject {
  const b = readPkiFile(file);
  try { return createPrivateKey(b); } catch (e) { throw new UnreadableError(`${shown(file)}: ${pemProblem(b, 'PRIVATE KEY', 'a PEM private key', e, false)}`); }
}

/** A public key (sa.pub), or a PkiError naming the file. */
export function readPublicKey(file: string): KeyObject {
  const b = readPkiFile(file);
  try { return createPublicKey(b); } catch (e) { throw new UnreadableError(`${shown(file)}: ${pemProblem(b, 'PUBLIC KEY', 'a PEM public key', e)}`); }
}

/** The bytes of a PKI file; a folder, a FIFO (which would block) or an unreadable file is a PkiError naming it. */
export function readPkiFile(file: string): Buffer {
  try {
    if (!statSync(file).isFile()) throw new UnreadableError(`${shown(file)}: not a regular file`);
    return readFileSync(file);
  } catch (e) {
    if (e instanceof PkiError) throw e;
    throw new UnreadableError(`${shown(file)}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/**
 * What is wrong with bytes that should hold one PEM block of `label` (CERTIFICATE, PRIVATE KEY — which also matches
 * `RSA PRIVATE KEY`, `EC PRIVATE KEY`). OpenSSL's own reason is added only for certificates and public keys, and only
 * when the block looks whole: it never quotes the bytes, but a key's bytes are not ours to describe further.
 */
function pemProblem(data: string | Buffer, label: string, noun: string, err: unknown, detail = true): string {
  const t = typeof data === 'string' ? data : data.toString('latin1');
  if (!t.trim()) return `empty, not ${noun} (truncated?)`;
  const begin = new RegExp(`-----BEGIN ([A-Z0-9 ]*${label})-----`).exec(t);
  if (!begin) return `not ${noun}`;
  if (/ENCRYPTED/.test(begin[1]) || /Proc-Type: 4,ENCRYPTED/.test(t)) return `${noun} protected by a passphrase: kubetls needs it unencrypted`;
  if (!t.includes(`-----END ${begin[1]}-----`)) return `not ${noun} (truncated?)`;
  return `not ${noun} (corrupt${detail ? `: ${(err as Error).message}` : ''})`;
}


function normaliseSan(entry: string): string {
  const [kind, ...rest] = entry.split(':');
  const value = rest.join(':');
  if (kind === 'IP Address') return `IP:${canonicalIp(value)}`; // node's subjectAltName text: `IP Address:10.0.0.1`
  return `${kind}:${value}`;
}

function describeKey(k: KeyObject): string {
  const d = k.asymmetricKeyDetails ?? {};
  if (k.asymmetricKeyType === 'rsa') return `rsa ${d.modulusLength}`;
  if (k.asymmetricKeyType === 'ec') return d.namedCurve === 'prime256v1' ? 'ecdsa-p256' : d.namedCurve === 'secp384r1' ? 'ecdsa-p384' : `ec ${d.namedCurve}`;
  return String(k.asymmetricKeyType);
}

export class PkiError extends Error {
  constructor(message: string) { super(message); this.name = 'PkiError'; }
}
/** A PKI file that is there but cannot be read as what it should be: the message starts with the file's name. */
export class UnreadableError extends PkiError {
  constructor(message: string) { super(message); this.name = 'UnreadableError'; }
}
