/**
 * The local PKI (SEED.md steps 1–8 and 12): decide, file by file, what to create, keep or reissue and why, then do it
 * with lib/openssl.ts. Looking first is what makes a rerun write nothing.
 *
 *   plan = planPki(inv)          // reads pki.dir, writes nothing
 *   result = await applyPki(inv, plan, { dryRun })
 *
 * Certificates are read with node's X509Certificate (the same OpenSSL library, without a process per file); everything
 * that creates or signs runs the openssl binary.
 */
import { createHash, createPrivateKey, createPublicKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import {
  chmodSync, closeSync, constants as fsc, existsSync, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync,
  renameSync, rmSync, statSync, writeSync, type Stats,
} from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { TOKEN_USER, minionIdentity } from '../config/profiles.ts';
import { local as localModes } from '../config/files.ts';
import { ExitError } from './cli.ts';
import { apiTarget, oneLine, type Inventory } from './inventory.ts';
import { log, registerSecret, shown } from './log.ts';
import { kubeconfig } from './kubeconfig.ts';
import * as openssl from './openssl.ts';
import { deployedBytes } from './trust.ts';

const DAY = 86_400_000;

// ---- reading what is there -------------------------------------------------------------------------------------------

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
function readPkiFile(file: string): Buffer {
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

/** The secrets kubetls keeps in pki.dir (keys and the token), as base names: owner-only (0600), always. */
export function secretFiles(inv: Inventory): string[] {
  // with the keys of a CA rotation (lib/trust.ts): the new ones before they sign, the old ones until they are dropped
  const rotated = caSpecs(inv).map((c) => c.name as string).concat(inv.profile === 'modern' ? ['sa'] : []).flatMap((n) => [`${n}.next.key`, `${n}.prev.key`]);
  return ['ca.key', ...leafSpecs(inv).map((s) => `${s.name}.key`), 'tokens.csv', ...(inv.profile === 'modern' ? ['sa.key'] : []), ...rotated];
}

/** `0644` when others may read or write the file (any group or other bit), undefined when owner-only or absent. */
export function insecureMode(file: string): string | undefined {
  let mode: number;
  try { mode = statSync(file).mode & 0o777; } catch { return undefined; }
  return mode & 0o077 ? `0${mode.toString(8).padStart(3, '0')}` : undefined;
}

/**
 * master.ts and renew.ts: a secret of ours that others can read (a copy with `cp`, an untar, a umask 022 editor) is set
 * back to 0600, with a warning and the shell line; status.ts only reports it (`insecure mode 0644`), it writes nothing.
 * Only the files kubetls owns are touched, never the folder or foreign files in it. Returns the base names fixed.
 */
export function tightenModes(inv: Inventory, dryRun = false): string[] {
  inspectPkiDir(inv.pki.dir); // a pki.dir that is not kubetls's to use is refused before any of its files is touched
  const fixed: string[] = [];
  for (const f of secretFiles(inv)) {
    const file = path.join(inv.pki.dir, f);
    const mode = insecureMode(file);
    if (!mode) continue;
    log.warn(`${shown(file)} had mode ${mode}: other accounts could read this secret; setting it to 0600`);
    log.cmd(['chmod', '600', file]);
    if (!dryRun) chmodSync(file, localModes.secret);
    fixed.push(f);
  }
  return fixed;
}

function normaliseSan(entry: string): string {
  const [kind, ...rest] = entry.split(':');
  const value = rest.join(':');
  if (kind === 'IP Address') return `IP:${canonicalIp(value)}`; // node's subjectAltName text: `IP Address:10.0.0.1`
  return `${kind}:${value}`;
}

export function canonicalIp(ip: string): string {
  return ip.includes(':') ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip;
}

function describeKey(k: KeyObject): string {
  const d = k.asymmetricKeyDetails ?? {};
  if (k.asymmetricKeyType === 'rsa') return `rsa ${d.modulusLength}`;
  if (k.asymmetricKeyType === 'ec') return d.namedCurve === 'prime256v1' ? 'ecdsa-p256' : d.namedCurve === 'secp384r1' ? 'ecdsa-p384' : `ec ${d.namedCurve}`;
  return String(k.asymmetricKeyType);
}

export function expectedKeyType(inv: Inventory, ca = false): string {
  return inv.pki.key === 'rsa' ? `rsa ${ca ? inv.pki.caBits : inv.pki.bits}` : inv.pki.key;
}

// ---- what the inventory wants ----------------------------------------------------------------------------------------

/** The CAs: the cluster CA of the recipe, and (modern) kubeadm's etcd and front-proxy CAs, kept apart so that a certificate of one can never authenticate to the service of another. */
export type CaName = 'ca' | 'etcd-ca' | 'front-proxy-ca';
export interface CaSpec { name: CaName; cn: string }
export function caSpecs(inv: Inventory): CaSpec[] {
  return [{ name: 'ca', cn: inv.master.name }, // the recipe's step 2: CN=<master>
    ...(inv.profile === 'modern' ? [{ name: 'etcd-ca' as const, cn: 'etcd-ca' }, { name: 'front-proxy-ca' as const, cn: 'front-proxy-ca' }] : [])];
}

export type Eku = 'serverAuth' | 'clientAuth';
export interface LeafSpec {
  /** server: the apiserver's (recipe step 5); minion: a node's client certificate (step 12); leaf: the modern profile's others */
  kind: 'server' | 'minion' | 'leaf';
  name: string; // file base name: server, kubeminion1, apiserver-etcd-client, etcd-server-kubemaster
  cn: string;
  o?: string;
  sans: string[];
  eku: Eku[];
  /** the section of openssl.cnf it is signed with (-extensions): server, client, or its own `ext_<name>` when it has SANs */
  section: string;
  ca: CaName;
}

export function leafSpecs(inv: Inventory): LeafSpec[] {
  // One server certificate for every master (the recipe's server.crt), not one per master as kubeadm issues: behind a
  // TCP balancer every master must answer for the endpoint's name anyway, so a master's key already speaks for all of
  // them (README, "HA"). With a balancer it names, beyond apiserver.dns/ip, every master's name and address (each
  // master's own components and the rolling gates reach it directly) and the endpoint's name and address.
  const ep = inv.apiserver.endpoint;
  const extra = ep ? [...inv.masters.flatMap((m) => [`DNS:${m.name}`, sanOf(m.address)]), `DNS:${ep.name}`, sanOf(ep.address)] : [];
  const server: LeafSpec = {
    kind: 'server', name: 'server', cn: inv.apiserver.cn, eku: ['serverAuth'], section: 'server', ca: 'ca',
    sans: [...new Set([...inv.apiserver.dns.map((d) => `DNS:${d}`), ...inv.apiserver.ip.map((ip) => `IP:${canonicalIp(ip)}`), ...extra])],
  };
  const minions = inv.minions.map((m): LeafSpec => ({
    kind: 'minion', name: m.name, ...minionIdentity(inv.profile, m.name), sans: [], eku: ['clientAuth'], section: 'client', ca: 'ca',
  }));
  return [server, ...minions, ...(inv.profile === 'modern' ? modernLeaves(inv) : [])];
}

/** `DNS:name` or `IP:address`, whichever an address is. */
const sanOf = (a: string) => (isIP(a) ? `IP:${canonicalIp(a)}` : `DNS:${a}`);

/**
 * The modern profile's certificates beyond the recipe's, as kubeadm's `certs check-expiration` lists them (see
 * config/layout.ts for where each goes and who reads it). Client identities are the ones the default RBAC binds.
 */
function modernLeaves(inv: Inventory): LeafSpec[] {
  const client = (name: string, cn: string, ca: CaName, o?: string): LeafSpec => ({ kind: 'leaf', name, cn, o, sans: [], eku: ['clientAuth'], section: 'client', ca });
  const withSans = (name: string, cn: string, o: string | undefined, sans: string[], eku: Eku[], ca: CaName): LeafSpec =>
    ({ kind: 'leaf', name, cn, o, sans: [...new Set(sans)], eku, section: `ext_${name.replace(/-/g, '_')}`, ca });
  return [
    client('apiserver-kubelet-client', 'kube-apiserver-kubelet-client', 'ca'),
    client('apiserver-etcd-client', 'kube-apiserver-etcd-client', 'etcd-ca'),
    client('front-proxy-client', 'front-proxy-client', 'front-proxy-ca'),
    client('controller-manager', 'system:kube-controller-manager', 'ca'),
    client('scheduler', 'system:kube-scheduler', 'ca'),
    client('kube-proxy', 'system:kube-proxy', 'ca'),
    client('admin', 'kubernetes-admin', 'ca', 'system:masters'),
    ...inv.etcd.members.flatMap((m) => {
      const sans = [`DNS:${m.name}`, 'DNS:localhost', sanOf(m.address), 'IP:127.0.0.1', 'IP:::1'];
      return [withSans(`etcd-server-${m.name}`, m.name, undefined, sans, ['serverAuth', 'clientAuth'], 'etcd-ca'),
        withSans(`etcd-peer-${m.name}`, m.name, undefined, sans, ['serverAuth', 'clientAuth'], 'etcd-ca')];
    }),
    ...inv.minions.map((m) => withSans(`kubelet-${m.name}`, `system:node:${m.name}`, 'system:nodes', [`DNS:${m.name}`, sanOf(m.address)], ['serverAuth'], 'ca')),
  ];
}

// ---- checking one certificate ----------------------------------------------------------------------------------------

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

export class PkiError extends Error {
  constructor(message: string) { super(message); this.name = 'PkiError'; }
}
/** A PKI file that is there but cannot be read as what it should be: the message starts with the file's name. */
export class UnreadableError extends PkiError {
  constructor(message: string) { super(message); this.name = 'UnreadableError'; }
}

/**
 * tokens.csv (step 8): `TOKEN,kubelet,kubelet`, TOKEN 32 characters of base64 without `=+/`. Undefined when absent.
 * A file that is there but unreadable is a PkiError naming it, never replaced silently: a new token would go to every
 * host and lock out whatever else uses the old one. (The token itself is never quoted in the message.)
 * The first line is the kubelet's token, the one every kubeconfig gets (a fourth column, the groups, is allowed as
 * in Kubernetes). During a token rotation the token being retired is kept on another line until every kubeconfig has
 * the new one; which line that is, .token-retiring says (its sha256, never the token). Any other line (a token the
 * operator added for something else) is kept as it is, in every rewrite.
 */
export function readToken(inv: Inventory): string | undefined {
  return readTokenFile(inv)?.current;
}

/** The token a running rotation still accepts (see readToken), if any. */
export function retiringToken(inv: Inventory): string | undefined {
  return readTokenFile(inv)?.retiring;
}

export interface TokenFile { current: string; currentLine: string; retiring?: string; others: string[] }
const TOKEN_LINE = /^([A-Za-z0-9]{32}),([^,\n]+),([^,\n]+)(,[^\n]*)?$/;
export const retiringMarker = (inv: Inventory) => path.join(inv.pki.dir, '.token-retiring');
const sha = (t: string) => createHash('sha256').update(t).digest('hex');

export function readTokenFile(inv: Inventory): TokenFile | undefined {
  const file = path.join(inv.pki.dir, 'tokens.csv');
  if (!existsSync(file)) return undefined;
  const text = readPkiFile(file).toString('latin1');
  const [first = '', ...rest] = text.split('\n').filter((l) => l !== '');
  const m = TOKEN_LINE.exec(first);
  if (!m || m[2] !== TOKEN_USER) {
    throw new UnreadableError(`${shown(file)}: ${text.trim() ? `not one "TOKEN,${TOKEN_USER},${TOKEN_USER}" line (truncated?)` : 'empty (truncated?)'}; `
      + 'restore it, or move it away to make a new token (every host then gets the new one)');
  }
  registerSecret(m[1]!);
  let marker: string | undefined;
  try { marker = readFileSync(retiringMarker(inv), 'utf8').trim(); } catch { /* no rotation running */ }
  let retiring: string | undefined;
  const others: string[] = [];
  for (const line of rest) {
    const t = TOKEN_LINE.exec(line)?.[1];
    if (t) registerSecret(t);
    if (t && marker && !retiring && sha(t) === marker) retiring = t;
    else others.push(line);
  }
  return { current: m[1]!, currentLine: first, retiring, others };
}

/** tokens.csv's content: the current line, during a rotation the retiring token's line, then the other lines as they were. */
export function tokensCsv(currentLine: string, retiringLine?: string, others: string[] = []): string {
  return [currentLine, retiringLine, ...others].filter((l): l is string => !!l).map((l) => `${l}\n`).join('');
}

/** Step 8 with a cryptographic RNG: 128 random bytes → base64 → drop `=+/` → the first 32 characters. */
export function newToken(): string {
  for (;;) {
    const t = randomBytes(128).toString('base64').replace(/[=+/]/g, '').slice(0, 32);
    if (t.length === 32) return t;
  }
}

// ---- the plan --------------------------------------------------------------------------------------------------------

export type Action = 'create' | 'keep' | 'reissue';
export interface PlanItem {
  kind: 'ca' | 'server' | 'minion' | 'leaf' | 'token' | 'sa';
  name: string; // ca, server, kubeminion1, tokens, sa
  files: string[]; // base names in pki.dir, in the order they are renamed into place
  action: Action;
  reason: string;
  spec?: LeafSpec;
}
export interface Plan {
  items: PlanItem[];
  ca: Check; // the cluster CA
  cas: Partial<Record<CaName, Check>>; // every CA of the profile, the cluster CA included
  orphans: string[]; // <name>.crt files of minions no longer in the inventory: reported, never deleted
  config: { file: string; text: string; changed: boolean };
}

export function planPki(inv: Inventory, now = new Date()): Plan {
  const dir = inv.pki.dir;
  const cas: Partial<Record<CaName, Check>> = {};
  const items: PlanItem[] = [];
  for (const c of caSpecs(inv)) {
    const check = cas[c.name] = checkCa(inv, now, c.name);
    const isNew = check.status === 'missing';
    items.push({ kind: 'ca', name: c.name, files: [`${c.name}.key`, `${c.name}.crt`], action: isNew ? 'create' : 'keep', reason: isNew ? 'no CA yet' : check.reasons.join('; ') });
  }
  const ca = cas.ca!;
  for (const spec of leafSpecs(inv)) {
    const files = [`${spec.name}.key`, `${spec.name}.csr`, `${spec.name}.crt`];
    const kind = spec.kind;
    if (cas[spec.ca]!.status === 'missing') {
      const exists = existsSync(path.join(dir, `${spec.name}.crt`));
      items.push({ kind, name: spec.name, files, spec, action: exists ? 'reissue' : 'create', reason: exists ? 'new CA' : '' });
      continue;
    }
    const c = checkLeaf(inv, spec, ca.info, now);
    const action: Action = c.status === 'ok' ? 'keep' : c.status === 'missing' ? 'create' : 'reissue';
    items.push({ kind, name: spec.name, files, spec, action, reason: action === 'reissue' ? c.reasons.join('; ') : '' });
  }
  // a tokens.csv that is there but unreadable throws (readTokenFile): it is never replaced by a plan
  items.push({ kind: 'token', name: 'tokens', files: ['tokens.csv'], action: readToken(inv) ? 'keep' : 'create', reason: '' });
  if (inv.profile === 'modern') {
    const sa = saState(inv);
    items.push({ kind: 'sa', name: 'sa', files: ['sa.key', 'sa.pub'], action: sa === 'ok' ? 'keep' : sa === 'missing' ? 'create' : 'reissue',
      reason: sa === 'ok' || sa === 'missing' ? '' : sa });
  }
  // By construction, not only by validation: no two parts of a plan may write one file (a minion named `ca` would
  // replace the CA, `sa` the service-account key). Every item's files and their `.new` names are checked against each
  // other and against the files kubetls keeps beside them.
  const rotation = [...caSpecs(inv).map((c) => c.name as string), 'sa'].flatMap((n) => ['next', 'prev'].flatMap((side) => [`${n}.${side}.key`, `${n}.${side}.${n === 'sa' ? 'pub' : 'crt'}`]));
  const owners = new Map<string, string>(['openssl.cnf', ...caSpecs(inv).map((c) => `${c.name}.srl`), 'admin.kubeconfig', '.renew-pending.json', '.last-renew', '.kubetls.lock', '.rotate-ca.json', ...rotation].map((f) => [f, 'kubetls']));
  for (const item of items) {
    for (const f of item.files.flatMap((x) => [x, `${x}.new`])) {
      const first = owners.get(f.toLowerCase());
      if (first) throw new PkiError(`${item.kind} ${item.name} would write ${f}, which belongs to ${first}: refusing a plan whose files collide`);
      owners.set(f.toLowerCase(), `${item.kind} ${item.name}`);
    }
  }
  const known = new Set([...caSpecs(inv).map((c) => c.name), ...leafSpecs(inv).map((l) => l.name)]);
  const orphans = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.crt') && !known.has(f.slice(0, -4))).sort() : [];
  const configFile = path.join(dir, 'openssl.cnf');
  const text = openssl.opensslConfig(inv);
  const changed = !existsSync(configFile) || readFileSync(configFile, 'utf8') !== text;
  return { items, ca, cas, orphans, config: { file: configFile, text, changed } };
}

function saState(inv: Inventory): 'ok' | 'missing' | string {
  const key = path.join(inv.pki.dir, 'sa.key');
  const pub = path.join(inv.pki.dir, 'sa.pub');
  if (!existsSync(key) && !existsSync(pub)) return 'missing';
  if (!existsSync(key) || !existsSync(pub)) return 'sa.key and sa.pub incomplete';
  const derived = createPublicKey(readKey(key)).export({ type: 'spki', format: 'pem' }); // unreadable: a PkiError naming the file
  return derived === readPublicKey(pub).export({ type: 'spki', format: 'pem' }) ? 'ok' : 'sa.pub does not match sa.key';
}

// ---- doing it --------------------------------------------------------------------------------------------------------

export interface ApplyOptions { dryRun?: boolean; concurrency?: number }
export interface PkiResult { plan: Plan; written: string[] }

/**
 * Carry out a plan. Keys are generated in parallel (bounded by the CPU count), the CA key alongside the others; only
 * signing waits for the CA, and signing is serial because openssl rewrites ca.srl. Every file is produced under a
 * `.new` name in pki.dir and renamed into place once the whole item succeeded.
 */
export async function applyPki(inv: Inventory, plan: Plan, o: ApplyOptions = {}): Promise<PkiResult> {
  const dir = inv.pki.dir;
  const dry = { dryRun: o.dryRun };
  const written: string[] = [];
  const work = plan.items.filter((i) => i.action !== 'keep');
  inspectPkiDir(dir); // refused (PkiDirError) before anything is written, even admin.kubeconfig on a run with nothing to do
  if (!work.length && !plan.config.changed) {
    if (writeAdminKubeconfig(inv, o.dryRun)) written.push('admin.kubeconfig');
    return { plan, written };
  }

  ensureDir(dir, o.dryRun);
  const cnf = plan.config.file;
  if (plan.config.changed) {
    log.action(`cat > ${shown(cnf)}  # generated from ${shown(inv.file)} and config/openssl.ts`);
    if (!o.dryRun) writeAtomic(cnf, plan.config.text, localModes.public);
    written.push('openssl.cnf');
  }
  const p = (f: string) => path.join(dir, f);
  const tmp = (f: string) => `${p(f)}.new`;
  const commit = (item: PlanItem) => {
    for (const f of item.files) {
      if (!o.dryRun && !existsSync(tmp(f))) continue;
      log.cmd(['mv', tmp(f), p(f)]);
      if (!o.dryRun) renameSync(tmp(f), p(f));
      written.push(f);
    }
  };
  if (!o.dryRun) for (const item of work) for (const f of item.files) rmSync(tmp(f), { force: true }); // leftovers of a killed run
  const keys = pLimit(o.concurrency ?? availableParallelism());
  const signing = pLimit(1);
  // Each CA's files while it is being made: its .new names; after that, the real ones. A leaf waits only for its CA.
  const caReady = new Map<CaName, Promise<void>>();
  for (const c of caSpecs(inv)) {
    const item = plan.items.find((i) => i.kind === 'ca' && i.name === c.name)!;
    caReady.set(c.name, item.action === 'create'
      ? keys(async () => {
        await openssl.genkey(tmp(`${c.name}.key`), inv.pki.key, inv.pki.caBits, dry);
        await openssl.reqX509({ key: tmp(`${c.name}.key`), subj: openssl.subj(c.cn), days: inv.pki.caDays, out: tmp(`${c.name}.crt`), config: cnf }, dry);
        commit(item);
      })
      : Promise.resolve());
  }

  const jobs = work.map(async (item) => {
    const spec = item.spec;
    if (item.kind === 'ca') return caReady.get(item.name as CaName);
    if (item.kind === 'token') {
      log.action(`echo "\${TOKEN},${TOKEN_USER},${TOKEN_USER}" > ${shown(tmp('tokens.csv'))}  # TOKEN: 32 chars of base64(128 random bytes) without =+/`);
      if (!o.dryRun) {
        const token = newToken();
        registerSecret(token);
        // a rotation (`renew --cert tokens --force`): the old token stays accepted on a second line until every
        // kubeconfig holds the new one (lib/renew.ts then retires it), so no client is refused during the switch
        let old: TokenFile | undefined;
        try { old = item.action === 'reissue' ? readTokenFile(inv) : undefined; } catch { /* malformed: nothing to keep */ }
        if (old?.retiring) throw new PkiError('tokens.csv: a token rotation is still running (the old token is still accepted): finish it first with renew.ts, then rotate again');
        if (old) {
          log.info('tokens.csv: the old token stays valid (second line) until every kubeconfig has the new one');
          // the marker first: a run killed between the two writes leaves a marker naming a line that is not there (harmless)
          writeAtomic(retiringMarker(inv), `${sha(old.current)}\n`, localModes.secret);
        }
        // the new token on the kubelet's own line (its uid and groups columns kept), the old one below it, the rest as is
        const line = old ? `${token}${old.currentLine.slice(32)}` : `${token},${TOKEN_USER},${TOKEN_USER}`;
        writeAtomic(p('tokens.csv'), tokensCsv(line, old?.currentLine, old?.others), localModes.secret, false);
      }
      return commit(item);
    }
    if (item.kind === 'sa') {
      await keys(async () => {
        await openssl.genkey(tmp('sa.key'), inv.pki.key, inv.pki.bits, dry);
        await openssl.pubout({ key: tmp('sa.key'), out: tmp('sa.pub') }, dry);
      });
      return commit(item);
    }
    if (!spec) return;
    const [key, csr, crt] = item.files.map(tmp);
    const subj = openssl.subj(spec.cn, spec.o);
    await keys(async () => {
      if (spec.kind === 'server') {
        await openssl.genkey(key, inv.pki.key, inv.pki.bits, dry); // step 3
        await openssl.reqNew({ key, subj, reqexts: 'SAN', config: cnf, out: csr }, dry); // step 4
      } else {
        await openssl.reqNewkey({ type: inv.pki.key, bits: inv.pki.bits, keyout: key, subj, config: cnf, out: csr }, dry); // step 12
      }
    });
    await caReady.get(spec.ca);
    await signing(() => openssl.x509Req({ csr, ca: p(`${spec.ca}.crt`), caKey: p(`${spec.ca}.key`), serial: p(`${spec.ca}.srl`), extensions: spec.section,
      extfile: cnf, days: inv.pki.days, out: crt }, dry)); // steps 5 and 12
    commit(item);
  });
  const results = await Promise.allSettled([...caReady.values(), ...jobs]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  if (writeAdminKubeconfig(inv, o.dryRun)) written.push('admin.kubeconfig');
  return { plan, written };
}

/**
 * The operator's kubeconfig (modern profile), kept in pki.dir beside the CA key and never sent anywhere: user
 * CN=kubernetes-admin in O=system:masters, which every cluster authorizes without an RBAC binding (a break-glass
 * credential, like kubeadm's super-admin.conf; see the README). It connects to master.address and checks the
 * apiserver's certificate for master.name (tls-server-name), as verify.ts does. Written when it differs from what the
 * current files give; returns true when written.
 */
export function adminKubeconfigText(inv: Inventory): string | undefined {
  const f = (n: string) => path.join(inv.pki.dir, n);
  if (inv.profile !== 'modern' || !existsSync(f('admin.crt')) || !existsSync(f('admin.key')) || !existsSync(f('ca.crt'))) return undefined;
  const api = apiTarget(inv);
  const host = isIP(api.address) === 6 ? `[${api.address}]` : api.address;
  return kubeconfig({
    cluster: inv.cluster, server: `https://${host}:${api.port}`, tlsServerName: api.name,
    ca: deployedBytes(inv, 'ca.crt'), cert: readFileSync(f('admin.crt')), key: readFileSync(f('admin.key')),
    user: 'kubernetes-admin', context: `kubernetes-admin@${inv.cluster}`,
  });
}
export function writeAdminKubeconfig(inv: Inventory, dryRun?: boolean): boolean {
  const text = adminKubeconfigText(inv);
  const file = path.join(inv.pki.dir, 'admin.kubeconfig');
  if (text === undefined || (existsSync(file) && readFileSync(file, 'utf8') === text)) return false;
  const api = apiTarget(inv);
  log.action(`kubectl config … --kubeconfig=${shown(file)}  # admin.crt + admin.key embedded, server ${api.address}:${api.port} checked for ${api.name}`);
  if (!dryRun) writeAtomic(file, text, localModes.secret);
  return true;
}

/** A pki.dir kubetls will not use as it is: exit 2 with one line (lib/cli.ts main), and the folder left as it was. */
export class PkiDirError extends ExitError {
  constructor(message: string) { super(oneLine(message), 2); this.name = 'PkiDirError'; }
}

/**
 * What an existing pki.dir is to kubetls (see inspectPkiDir): `ours`, used as it is; `tighten`, ours to set to 0700;
 * `shared`, used with its mode left as it is (and a warning).
 */
type PkiDirState =
  | { state: 'missing' }
  | { state: 'ours' }
  | { state: 'tighten'; st: Stats }
  | { state: 'shared'; st: Stats; strangers: string[] };

/**
 * The rule for pki.dir (issue: a folder kubetls did not make was chmodded 0700 in place). `me` is the uid kubetls
 * runs as (root); an entry is "kubetls's own" when its name is one kubetls writes (PKI_FILE) and `me` owns it.
 *   - missing: created 0700 (with its parents).
 *   - a symlink (even to a good folder), or anything but a folder: refused. lstat, never followed: the link's target
 *     may be anyone's folder.
 *   - a folder owned by another uid: refused, even empty: never ours to change or to fill.
 *   - owned by `me`, no group/other bits (0700, or stricter such as 0500): used as it is, never changed.
 *   - owned by `me`, group/other bits, holding nothing but kubetls's own entries (or nothing: a folder just made with
 *     mkdir, even 1777): set to 0700. If another user slipped a file in before the chmod took effect (they could
 *     write there), the mode is put back and the folder refused.
 *   - owned by `me`, others can read/enter but not write (e.g. 0755), holding other files (a checkout pointed at by
 *     mistake): used, its mode left as it is with a warning (nobody else can plant anything there; keys are 0600).
 *   - owned by `me`, group- or world-writable (0775, 0777, 1777…), holding anything that is not kubetls's own:
 *     refused. A folder others write to is a folder others use: chmod would lock them out, and writing there would let
 *     them plant links openssl follows.
 * A refusal is a PkiDirError (exit 2, one line naming the folder, its owner and mode), with or without --dry-run, and
 * nothing in the folder is touched: tightenModes and applyPki look first (master.ts and renew.ts call tightenModes
 * before planPki reads anything).
 */
function inspectPkiDir(dir: string): PkiDirState {
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    throw e;
  }
  const me = process.getuid?.(); // undefined on Windows: no owners to compare
  const at = `pki.dir ${shown(dir)}`;
  const mode = octal(st.mode);
  if (st.isSymbolicLink()) throw new PkiDirError(`${at} is a symlink (to ${readlinkSync(dir)}): refusing to follow it; point pki.dir at the folder itself`);
  if (!st.isDirectory()) throw new PkiDirError(`${at} is ${fileKind(st)} (mode ${mode}, owned by uid ${st.uid}), not a folder: point pki.dir at a folder of its own`);
  if (me !== undefined && st.uid !== me) {
    throw new PkiDirError(`${at} is owned by uid ${st.uid} (mode ${mode}), not by uid ${me} that runs kubetls: refusing to change a folder others own; point pki.dir at a folder of its own`);
  }
  if ((st.mode & 0o077) === 0) return { state: 'ours' };
  const others = strangers(dir, me);
  if (!others.length) return { state: 'tighten', st };
  if (st.mode & 0o022) throw sharedFolder(dir, st, others);
  return { state: 'shared', st, strangers: others };
}

/** Entries of `dir` that are not kubetls's own: a name it does not write, or an owner other than `me`. */
function strangers(dir: string, me: number | undefined): string[] {
  return readdirSync(dir).filter((f) => {
    if (!PKI_FILE.test(f)) return true;
    try { return me !== undefined && lstatSync(path.join(dir, f)).uid !== me; } catch { return false; } // gone meanwhile
  });
}
const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');
const named = (files: string[]) => `${files.slice(0, 3).join(', ')}${files.length > 3 ? ', …' : ''}`;
const sharedFolder = (dir: string, st: Stats, others: string[]) => new PkiDirError(`pki.dir ${shown(dir)} is mode ${octal(st.mode)} owned by uid ${st.uid} and holds files kubetls did not make (${named(others)}): refusing to change a folder others use; point pki.dir at a folder of its own`);
function fileKind(st: Stats): string {
  if (st.isFile()) return 'a file';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a folder';
}

/** pki.dir made ready to write into, by the rule of inspectPkiDir (refusals throw PkiDirError, nothing changed). */
function ensureDir(dir: string, dryRun?: boolean): void {
  const found = inspectPkiDir(dir);
  if (found.state === 'missing') {
    log.cmd(['mkdir', '-m', '700', dir]);
    if (!dryRun) mkdirSync(dir, { recursive: true, mode: localModes.dir });
  } else if (found.state === 'shared') {
    log.warn(oneLine(`${shown(dir)} holds files that are not part of the PKI (${named(found.strangers)}): its mode is left as it is (${octal(found.st.mode)}); give the PKI a folder of its own`));
  } else if (found.state === 'tighten') {
    log.cmd(['chmod', '700', dir]);
    if (!dryRun) tightenDir(dir, found.st);
  }
}

/**
 * chmod 0700 on the very folder inspectPkiDir judged (opened without following a link, same inode), then a second
 * look: an entry another user added before the chmod (the folder was writable by others) gives the folder its old
 * mode back and refuses it. After the chmod nobody else can add one.
 */
function tightenDir(dir: string, judged: Stats): void {
  const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  try {
    const now = fstatSync(fd);
    if (now.dev !== judged.dev || now.ino !== judged.ino) throw new PkiDirError(`pki.dir ${shown(dir)} was replaced while kubetls looked at it: nothing was changed; run again`);
    fchmodSync(fd, localModes.dir);
    const late = strangers(dir, process.getuid?.());
    if (late.length) {
      fchmodSync(fd, judged.mode & 0o7777);
      throw sharedFolder(dir, judged, late);
    }
  } finally {
    closeSync(fd);
  }
}
/** What kubetls itself keeps in pki.dir: <name>.key/.csr/.crt, sa.pub, ca.srl, openssl.cnf, tokens.csv, `.new` leftovers, its state files. */
const PKI_FILE = /^(?:[a-z0-9-]+(?:\.next|\.prev)?\.(?:key|csr|crt|pub|srl|cnf|csv|kubeconfig)|\.renew-pending\.json|\.last-renew|\.kubetls\.lock|\.token-retiring|\.rotate-ca\.json)(?:\.new)?$/;

/**
 * Write a file atomically: a `.new` file created with its final mode (O_EXCL, so never through an old file or a link),
 * then rename. With `rename = false` the `.new` file is left for the caller to rename.
 */
export function writeAtomic(file: string, content: string | Buffer, mode: number, rename = true): void {
  const tmp = `${file}.new`;
  rmSync(tmp, { force: true }); // a leftover of an interrupted run of ours
  const fd = openSync(tmp, 'wx', mode);
  try {
    try { writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content); } finally { closeSync(fd); }
    if (rename) renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true }); // no stray .new beside a file that could not be replaced (a folder there, a full disk)
    throw e;
  }
}

// ---- the summary table -----------------------------------------------------------------------------------------------

export interface SummaryRow { file: string; subject: string; sans: string; notAfter: string; action: string }

/** One row per item of the plan, read from disk after applyPki (so what is shown is what is there). */
export function summary(inv: Inventory, plan: Plan, dryRun = false): SummaryRow[] {
  const done = { create: dryRun ? 'would create' : 'created', reissue: dryRun ? 'would reissue' : 'reissued', keep: 'kept' };
  return plan.items.map((item) => {
    const main = item.kind === 'token' ? 'tokens.csv' : item.kind === 'sa' ? 'sa.pub' : `${item.name}.crt`;
    const info = main.endsWith('.crt') && !(dryRun && item.action !== 'keep') ? readCert(path.join(inv.pki.dir, main)) : undefined;
    const dn = info ? `${info.subject.o ? `O=${info.subject.o}, ` : ''}CN=${info.subject.cn}` : '-';
    return {
      file: shown(path.join(inv.pki.dir, main)),
      subject: dn,
      sans: info?.sans.join(',') || '-',
      notAfter: info ? info.notAfter.toISOString().slice(0, 10) : '-',
      action: `${done[item.action]}${item.reason && item.action !== 'create' ? `: ${item.reason}` : ''}`,
    };
  });
}
