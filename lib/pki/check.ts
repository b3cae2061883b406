/**
 * Judging one certificate against the inventory, its CA and the clock: ok · renew due · expired · drift · missing ·
 * not signed by CA · key mismatch, with the reasons (`SAN added: IP:10.0.0.5`, `expires in 12 d`). Used by the plan,
 * status and verify. Reads files, writes nothing.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { CaName, LeafSpec } from '../../config/certs.ts';
import type { Inventory } from '../inventory.ts';
import { shown } from '../log.ts';
import { PkiError, readCert, readKey, type CertInfo } from './read.ts';

const DAY = 86_400_000;

export function expectedKeyType(inv: Inventory, ca = false): string {
  return inv.pki.key === 'rsa' ? `rsa ${ca ? inv.pki.caBits : inv.pki.bits}` : inv.pki.key;
}

export type Status = 'ok' | 'renew due' | 'expired' | 'drift' | 'missing' | 'not signed by CA' | 'key mismatch';
export interface Check { status: Status; reasons: string[]; info?: CertInfo; daysLeft?: number }

/** How one leaf certificate compares with the inventory, the CA and the clock. Reads files, writes nothing. */
export function checkLeaf(inv: Inventory, spec: LeafSpec, ca: CertInfo | undefined, now = new Date()): Check {
  const crt = path.join(inv.pki.dir, `${spec.name}.crt`);
  const keyFile = path.join(inv.pki.dir, `${spec.name}.key`);
  const info = readCert(crt);
  if (!info) return { status: 'missing', reasons: [existsSync(keyFile) ? 'certificate missing' : 'missing'] };
  const left = info.notAfter.getTime() - now.getTime();
  const daysLeft = Math.floor(left / DAY); // shown only; the window below compares exact durations
  const found: [Status, string][] = [];
  const issuer = spec.ca === 'ca' ? ca : readCert(path.join(inv.pki.dir, `${spec.ca}.crt`));
  if (!issuer || !info.x509.checkIssued(issuer.x509) || !info.x509.verify(issuer.x509.publicKey)) found.push(['not signed by CA', `not signed by the current ${spec.ca === 'ca' ? 'CA' : spec.ca}`]);
  if (!existsSync(keyFile)) found.push(['key mismatch', 'key file missing']);
  else if (!info.x509.checkPrivateKey(readKey(keyFile))) found.push(['key mismatch', 'key does not match the certificate']);
  if (left <= 0) found.push(['expired', `expired ${-daysLeft} d ago`]);
  for (const d of drift(inv, spec, info)) found.push(['drift', d]);
  if (left > 0 && untilDue(inv, info.notAfter, now) <= 0) found.push(['renew due', `expires in ${daysLeft} d`]);
  const order: Status[] = ['not signed by CA', 'key mismatch', 'expired', 'drift', 'renew due'];
  const status = found.length ? order.find((s) => found.some(([f]) => f === s))! : 'ok';
  return { status, reasons: found.map(([, r]) => r), info, daysLeft };
}

/** What no longer matches the inventory: subject, SANs, key type and size, extended key usage. */
export function drift(inv: Inventory, spec: LeafSpec, info: CertInfo): string[] {
  const out: string[] = [];
  const dn = (s: { cn: string; o?: string }) => `${s.o ? `O=${s.o}, ` : ''}CN=${s.cn}`;
  if (info.subject.cn !== spec.cn || (info.subject.o ?? undefined) !== spec.o) out.push(`subject ${dn(info.subject)}, expected ${dn(spec)}`);
  const added = spec.sans.filter((s) => !info.sans.includes(s));
  const removed = info.sans.filter((s) => !spec.sans.includes(s));
  if (added.length) out.push(`SAN added: ${added.join(', ')}`);
  if (removed.length) out.push(`SAN removed: ${removed.join(', ')}`);
  const want = expectedKeyType(inv);
  if (info.keyType !== want) out.push(`key ${info.keyType}, expected ${want}`);
  for (const e of spec.eku) if (!info.eku.includes(e)) out.push(`no extendedKeyUsage ${e}`);
  return out;
}

/** The CA: present and sound, or absent (then it is created). Anything in between is an error: never replaced silently. */
export function checkCa(inv: Inventory, now = new Date(), name: CaName = 'ca'): Check {
  const crt = path.join(inv.pki.dir, `${name}.crt`);
  const keyFile = path.join(inv.pki.dir, `${name}.key`);
  const what = name === 'ca' ? 'CA' : name;
  const info = readCert(crt);
  const hasKey = existsSync(keyFile);
  if (!info && !hasKey) return { status: 'missing', reasons: ['missing'] };
  if (!info && existsSync(path.join(inv.pki.dir, `${name}.csr`))) {
    throw new PkiError(`${shown(keyFile)} waits for its certificate from your root (${name}.csr was requested): sign it, then npx zx scripts/ca.ts import ${name} --cert FILE --root FILE (docs/own-root.md)`);
  }
  if (!info) throw new PkiError(`${shown(keyFile)} exists without ca.crt: refusing to replace the CA silently. Restore ca.crt, or move ca.key away to create a new CA (every certificate is then reissued).`);
  if (!hasKey) throw new PkiError(`${shown(crt)} exists without ca.key: cannot sign with this CA. Restore ca.key, or move ca.crt away to create a new CA (every certificate is then reissued).`);
  if (!info.x509.checkPrivateKey(readKey(keyFile))) {
    throw new PkiError(`${shown(keyFile)} does not match ${shown(crt)}: refusing to replace the CA silently. Restore the matching pair.`);
  }
  if (!info.isCa) throw new PkiError(`${shown(crt)} is not a CA certificate (basicConstraints CA:FALSE).`);
  const daysLeft = Math.floor((info.notAfter.getTime() - now.getTime()) / DAY);
  if (info.notAfter <= now) return { status: 'expired', reasons: [`${what} expired ${-daysLeft} d ago`], info, daysLeft };
  if (untilDue(inv, info.notAfter, now) <= 0) return { status: 'renew due', reasons: [`${what} expires in ${daysLeft} d`], info, daysLeft };
  return { status: 'ok', reasons: [], info, daysLeft };
}

/**
 * Milliseconds until a certificate enters its renewal window (<= 0: due). Exact durations, not whole days: with
 * `days: 2, renew_before_days: 1` a fresh certificate (2 d - a few seconds left) is not due, one with 23 h left is.
 */
export function untilDue(inv: Inventory, notAfter: Date, now = new Date()): number {
  return notAfter.getTime() - now.getTime() - inv.pki.renewBeforeDays * DAY;
}
