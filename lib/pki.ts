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
import { createPrivateKey, createPublicKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { TOKEN_USER, minionIdentity } from '../config/profiles.ts';
import { local as localModes } from '../config/files.ts';
import type { Inventory } from './inventory.ts';
import { log, registerSecret, shown } from './log.ts';
import * as openssl from './openssl.ts';

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

export function parseCert(pem: string | Buffer): CertInfo {
  const x = new X509Certificate(pem);
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

export function readCert(file: string): CertInfo | undefined {
  return existsSync(file) ? parseCert(readFileSync(file)) : undefined;
}

function normaliseSan(entry: string): string {
  const [kind, ...rest] = entry.split(':');
  const value = rest.join(':');
  if (kind === 'IP Address' || kind === 'IP') return `IP:${canonicalIp(value)}`;
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

export interface LeafSpec {
  kind: 'server' | 'minion';
  name: string; // file base name: server, kubeminion1
  cn: string;
  o?: string;
  sans: string[];
  eku: 'serverAuth' | 'clientAuth';
  section: 'server' | 'client'; // the section of openssl.cnf it is signed with (-extensions)
}

export function leafSpecs(inv: Inventory): LeafSpec[] {
  const server: LeafSpec = {
    kind: 'server', name: 'server', cn: inv.apiserver.cn, eku: 'serverAuth', section: 'server',
    sans: [...inv.apiserver.dns.map((d) => `DNS:${d}`), ...inv.apiserver.ip.map((ip) => `IP:${canonicalIp(ip)}`)],
  };
  return [server, ...inv.minions.map((m): LeafSpec => ({
    kind: 'minion', name: m.name, ...minionIdentity(inv.profile, m.name), sans: [], eku: 'clientAuth', section: 'client',
  }))];
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
  const daysLeft = Math.floor((info.notAfter.getTime() - now.getTime()) / DAY);
  const found: [Status, string][] = [];
  if (!ca || !info.x509.checkIssued(ca.x509) || !info.x509.verify(ca.x509.publicKey)) found.push(['not signed by CA', 'not signed by the current CA']);
  if (!existsSync(keyFile)) found.push(['key mismatch', 'key file missing']);
  else if (!info.x509.checkPrivateKey(createPrivateKey(readFileSync(keyFile)))) found.push(['key mismatch', 'key does not match the certificate']);
  if (daysLeft < 0 || info.notAfter <= now) found.push(['expired', `expired ${-daysLeft} d ago`]);
  for (const d of drift(inv, spec, info)) found.push(['drift', d]);
  if (daysLeft >= 0 && daysLeft <= inv.pki.renewBeforeDays) found.push(['renew due', `expires in ${daysLeft} d`]);
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
  if (!info.eku.includes(spec.eku)) out.push(`no extendedKeyUsage ${spec.eku}`);
  return out;
}

/** The CA: present and sound, or absent (then it is created). Anything in between is an error: never replaced silently. */
export function checkCa(inv: Inventory, now = new Date()): Check {
  const crt = path.join(inv.pki.dir, 'ca.crt');
  const keyFile = path.join(inv.pki.dir, 'ca.key');
  const info = readCert(crt);
  const hasKey = existsSync(keyFile);
  if (!info && !hasKey) return { status: 'missing', reasons: ['missing'] };
  if (!info) throw new PkiError(`${shown(keyFile)} exists without ca.crt: refusing to replace the CA silently. Restore ca.crt, or move ca.key away to create a new CA (every certificate is then reissued).`);
  if (!hasKey) throw new PkiError(`${shown(crt)} exists without ca.key: cannot sign with this CA. Restore ca.key, or move ca.crt away to create a new CA (every certificate is then reissued).`);
  if (!info.x509.checkPrivateKey(createPrivateKey(readFileSync(keyFile)))) {
    throw new PkiError(`${shown(keyFile)} does not match ${shown(crt)}: refusing to replace the CA silently. Restore the matching pair.`);
  }
  if (!info.isCa) throw new PkiError(`${shown(crt)} is not a CA certificate (basicConstraints CA:FALSE).`);
  const daysLeft = Math.floor((info.notAfter.getTime() - now.getTime()) / DAY);
  if (info.notAfter <= now) return { status: 'expired', reasons: [`CA expired ${-daysLeft} d ago`], info, daysLeft };
  if (daysLeft <= inv.pki.renewBeforeDays) return { status: 'renew due', reasons: [`CA expires in ${daysLeft} d`], info, daysLeft };
  return { status: 'ok', reasons: [], info, daysLeft };
}

export class PkiError extends Error {
  constructor(message: string) { super(message); this.name = 'PkiError'; }
}

/** tokens.csv (step 8): `TOKEN,kubelet,kubelet`, TOKEN 32 characters of base64 without `=+/`. */
export function readToken(inv: Inventory): string | undefined {
  const file = path.join(inv.pki.dir, 'tokens.csv');
  if (!existsSync(file)) return undefined;
  const m = /^([A-Za-z0-9]{32}),([^,\n]+),([^,\n]+)/.exec(readFileSync(file, 'utf8'));
  if (!m || m[2] !== TOKEN_USER) return undefined;
  registerSecret(m[1]);
  return m[1];
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
  kind: 'ca' | 'server' | 'minion' | 'token' | 'sa';
  name: string; // ca, server, kubeminion1, tokens, sa
  files: string[]; // base names in pki.dir, in the order they are renamed into place
  action: Action;
  reason: string;
  spec?: LeafSpec;
}
export interface Plan {
  items: PlanItem[];
  ca: Check;
  orphans: string[]; // <name>.crt files of minions no longer in the inventory: reported, never deleted
  config: { file: string; text: string; changed: boolean };
}

export function planPki(inv: Inventory, now = new Date()): Plan {
  const dir = inv.pki.dir;
  const ca = checkCa(inv, now);
  const caNew = ca.status === 'missing';
  const items: PlanItem[] = [{
    kind: 'ca', name: 'ca', files: ['ca.key', 'ca.crt'], action: caNew ? 'create' : 'keep',
    reason: caNew ? 'no CA yet' : ca.reasons.join('; '),
  }];
  for (const spec of leafSpecs(inv)) {
    const files = [`${spec.name}.key`, `${spec.name}.csr`, `${spec.name}.crt`];
    const kind = spec.kind;
    if (caNew) {
      const exists = existsSync(path.join(dir, `${spec.name}.crt`));
      items.push({ kind, name: spec.name, files, spec, action: exists ? 'reissue' : 'create', reason: exists ? 'new CA' : '' });
      continue;
    }
    const c = checkLeaf(inv, spec, ca.info, now);
    const action: Action = c.status === 'ok' ? 'keep' : c.status === 'missing' ? 'create' : 'reissue';
    items.push({ kind, name: spec.name, files, spec, action, reason: action === 'reissue' ? c.reasons.join('; ') : '' });
  }
  const token = readToken(inv);
  const tokenFile = path.join(dir, 'tokens.csv');
  items.push({ kind: 'token', name: 'tokens', files: ['tokens.csv'],
    action: token ? 'keep' : existsSync(tokenFile) ? 'reissue' : 'create', reason: token || !existsSync(tokenFile) ? '' : 'malformed tokens.csv' });
  if (inv.profile === 'modern') {
    const sa = saState(inv);
    items.push({ kind: 'sa', name: 'sa', files: ['sa.key', 'sa.pub'], action: sa === 'ok' ? 'keep' : sa === 'missing' ? 'create' : 'reissue',
      reason: sa === 'ok' || sa === 'missing' ? '' : sa });
  }
  const known = new Set(['ca', 'server', ...inv.minions.map((m) => m.name)]);
  const orphans = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.crt') && !known.has(f.slice(0, -4))).sort() : [];
  const configFile = path.join(dir, 'openssl.cnf');
  const text = openssl.opensslConfig(inv);
  const changed = !existsSync(configFile) || readFileSync(configFile, 'utf8') !== text;
  return { items, ca, orphans, config: { file: configFile, text, changed } };
}

function saState(inv: Inventory): 'ok' | 'missing' | string {
  const key = path.join(inv.pki.dir, 'sa.key');
  const pub = path.join(inv.pki.dir, 'sa.pub');
  if (!existsSync(key) && !existsSync(pub)) return 'missing';
  if (!existsSync(key) || !existsSync(pub)) return 'sa.key and sa.pub incomplete';
  const derived = createPublicKey(createPrivateKey(readFileSync(key))).export({ type: 'spki', format: 'pem' });
  return derived === createPublicKey(readFileSync(pub)).export({ type: 'spki', format: 'pem' }) ? 'ok' : 'sa.pub does not match sa.key';
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
  if (!work.length && !plan.config.changed) return { plan, written };

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
  const caItem = plan.items.find((i) => i.kind === 'ca')!;
  // The CA's files while it is being made: its .new names; after that, the real ones.
  const caReady = caItem.action === 'create'
    ? keys(async () => {
      await openssl.genkey(tmp('ca.key'), inv.pki.key, inv.pki.caBits, dry);
      await openssl.reqX509({ key: tmp('ca.key'), subj: openssl.subj(inv.master.name), days: inv.pki.caDays, out: tmp('ca.crt'), config: cnf }, dry);
      commit(caItem);
    })
    : Promise.resolve();

  const jobs = work.map(async (item) => {
    const spec = item.spec;
    if (item.kind === 'ca') return caReady;
    if (item.kind === 'token') {
      log.action(`echo "\${TOKEN},${TOKEN_USER},${TOKEN_USER}" > ${shown(tmp('tokens.csv'))}  # TOKEN: 32 chars of base64(128 random bytes) without =+/`);
      if (!o.dryRun) {
        const token = newToken();
        registerSecret(token);
        writeAtomic(p('tokens.csv'), `${token},${TOKEN_USER},${TOKEN_USER}\n`, localModes.secret, false);
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
    await caReady;
    await signing(() => openssl.x509Req({ csr, ca: p('ca.crt'), caKey: p('ca.key'), serial: p('ca.srl'), extensions: spec.section,
      extfile: cnf, days: inv.pki.days, out: crt }, dry)); // steps 5 and 12
    commit(item);
  });
  const results = await Promise.allSettled([caReady, ...jobs]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return { plan, written };
}

function ensureDir(dir: string, dryRun?: boolean): void {
  if (!existsSync(dir)) {
    log.cmd(['mkdir', '-m', '700', dir]);
    if (!dryRun) mkdirSync(dir, { recursive: true, mode: localModes.dir });
  } else if ((statSync(dir).mode & 0o777) !== localModes.dir) {
    log.cmd(['chmod', '700', dir]);
    if (!dryRun) chmodSync(dir, localModes.dir);
  }
}

/**
 * Write a file atomically: a `.new` file created with its final mode (O_EXCL, so never through an old file or a link),
 * then rename. With `rename = false` the `.new` file is left for the caller to rename.
 */
export function writeAtomic(file: string, content: string | Buffer, mode: number, rename = true): void {
  const tmp = `${file}.new`;
  rmSync(tmp, { force: true }); // a leftover of an interrupted run of ours
  const fd = openSync(tmp, 'wx', mode);
  try { writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content); } finally { closeSync(fd); }
  if (rename) renameSync(tmp, file);
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
