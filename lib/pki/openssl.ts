/**
 * The real `openssl` binary, one function per command the recipe documents (steps 2–5 and 12 of docs/recipe.md).
 * Each function builds an argv that reads like the recipe's line, logs it as `$ openssl …`, and runs it without a
 * shell. Private keys are written by openssl itself with mode 0600 (it opens key outputs owner-only); callers pass
 * temporary names and rename them into place (lib/pki/apply.ts). The config file they name is config/openssl.ts's.
 * Where the recipe signs with `req -x509` and `x509 -req`, kubetls signs with `openssl ca`, the one command of OpenSSL
 * 3.0 that sets a certificate's notBefore: every certificate is backdated (BACKDATE_MS below).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { DIGEST, signerConfig } from '../../config/openssl.ts';
import type { KeyType } from '../inventory.ts';
import { log } from '../log.ts';

export interface RunOptions { dryRun?: boolean }

export class OpensslError extends Error {
  constructor(readonly argv: string[], readonly exitCode: number | undefined, readonly stderr: string) {
    super(`openssl ${argv.join(' ')} failed (exit ${exitCode ?? '?'}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    this.name = 'OpensslError';
  }
}

/**
 * One openssl process, no shell in between (the recipe's own process count: docs/speed.md). Private keys are 0600 from
 * the first byte because openssl itself opens key outputs owner-only, whatever the umask (OpenSSL >= 3.0; pinned by
 * test/pki.test.ts); the other outputs (certificate, CSR, public key, serial file) are set to 0600 right after, and
 * meanwhile sit in pki.dir, which is 0700.
 */
async function openssl(argv: string[], o: RunOptions = {}, outputs: string[] = []): Promise<void> {
  log.cmd(['openssl', ...argv]);
  if (o.dryRun) return;
  const r = await execa('openssl', argv, { reject: false, stdin: 'ignore', stdout: 'ignore' });
  if (r.exitCode !== 0) throw new OpensslError(argv, r.exitCode, r.stderr || r.shortMessage || ''); // no stderr: openssl did not start
  for (const f of outputs) chmodSync(f, 0o600); // each exists: openssl exited 0 having written it
}

/** What a key of this kind is, as `req -newkey` wants it and as genrsa/genpkey take it. */
export function keySpec(type: KeyType, bits: number): { newkey: string[]; curve?: string } {
  if (type === 'rsa') return { newkey: ['-newkey', `rsa:${bits}`] };
  const curve = type === 'ecdsa-p256' ? 'P-256' : 'P-384';
  return { newkey: ['-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${curve}`], curve };
}

/** Steps 2 and 3: `openssl genrsa -out ca.key 4096` (or `genpkey -algorithm EC` when the inventory asks for ECDSA). */
export async function genkey(out: string, type: KeyType, bits: number, o?: RunOptions): Promise<void> {
  const { curve } = keySpec(type, bits);
  if (curve) await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${curve}`, '-out', out], o);
  else await openssl(['genrsa', '-out', out, String(bits)], o);
}

/**
 * How far back every certificate's notBefore is set, CAs included (kubeadm's CertificateBackdate): a host whose clock
 * runs a few minutes behind the operator's machine accepts a certificate made a moment ago, or a CA rotated in.
 */
export const BACKDATE_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

/** `YYYYMMDDHHMMSSZ` (GeneralizedTime, also past 2049), as openssl ca's -startdate and -enddate take it. */
const asn1Time = (d: Date) => d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');

/** The validity of a certificate signed now for `days` days: notBefore BACKDATE_MS ago, notAfter `days` from now. */
export function validity(days: number, now = Date.now()): string[] {
  return ['-startdate', asn1Time(new Date(now - BACKDATE_MS)), '-enddate', asn1Time(new Date(now + days * DAY_MS))];
}

/**
 * The signer's own database, which `openssl ca` insists on (an index of what it signed, a serial file) and kubetls keeps
 * none of: each signing gets a fresh private folder (mkdtemp: 0700, a name nobody can guess), removed after it, with
 * the settings of config/openssl.ts (signerConfig). Serial numbers are random (-rand_serial), as kubeadm's are.
 */
async function withSigner<T>(o: RunOptions | undefined, fn: (dir: string) => Promise<T>): Promise<T> {
  if (o?.dryRun) return fn(path.join(tmpdir(), 'kubetls-sign-XXXXXX'));
  const dir = mkdtempSync(path.join(tmpdir(), 'kubetls-sign-'));
  try {
    writeFileSync(path.join(dir, 'index'), '');
    writeFileSync(path.join(dir, 'ca.cnf'), signerConfig(dir));
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `openssl ca` as kubetls signs: the certificate's section of openssl.cnf, backdated, a random serial, the CSR's subject as it is. */
const caArgs = (signer: string, a: { csr: string; out: string; extfile: string; extensions: string; days: number }) => [
  'ca', '-batch', '-config', path.join(signer, 'ca.cnf'), '-in', a.csr, '-out', a.out, ...validity(a.days),
  '-extfile', a.extfile, '-extensions', a.extensions, '-rand_serial', '-preserveDN', '-notext', '-md', 'sha256'];

/**
 * Step 2, the CA: the recipe's `openssl req -x509 -new -nodes -key ca.key -subj "/CN=kubemaster" -days 10000 -out
 * ca.crt` (+ v3_ca), as `openssl req -new` (its request) and `openssl ca -selfsign` (its certificate): OpenSSL 3.0's
 * `req -x509` cannot set notBefore, and every certificate kubetls issues is backdated (BACKDATE_MS).
 */
export async function selfSignCa(a: { key: string; subj: string; days: number; out: string; config: string }, o?: RunOptions) {
  await withSigner(o, async (signer) => {
    const csr = path.join(signer, 'ca.csr');
    await openssl(['req', '-new', '-key', a.key, '-subj', a.subj, '-config', a.config, '-out', csr, DIGEST], o);
    await openssl([...caArgs(signer, { csr, out: a.out, extfile: a.config, extensions: 'v3_ca', days: a.days }), '-selfsign', '-keyfile', a.key], o, [a.out]);
  });
}

/**
 * Under the operator's own root (docs/own-root.md), the CA's request for the root to sign: `openssl req -new -key ca.key
 * -subj "/CN=kubemaster" -addext basicConstraints=critical,CA:TRUE,pathlen:0 -addext keyUsage=critical,keyCertSign,cRLSign
 * -out ca.csr`. It asks for what kubetls's own CAs carry, and pathlen 0: this CA signs leaves only. The signer decides.
 */
export async function reqCa(a: { key: string; subj: string; config: string; out: string }, o?: RunOptions) {
  await openssl(['req', '-new', '-key', a.key, '-subj', a.subj, '-config', a.config, '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', a.out, DIGEST], o, [a.out]);
}

/** Step 4: `openssl req -new -key server.key -subj "/CN=…" -reqexts SAN -config openssl.cnf -out server.csr`. */
export async function reqNew(a: { key: string; subj: string; reqexts: string; config: string; out: string }, o?: RunOptions) {
  await openssl(['req', '-new', '-key', a.key, '-subj', a.subj, '-reqexts', a.reqexts, '-config', a.config, '-out', a.out, DIGEST], o, [a.out]);
}

/** Step 12: `openssl req -newkey rsa:2048 -nodes -keyout M.key -subj "/CN=M" -out M.csr`. */
export async function reqNewkey(a: { type: KeyType; bits: number; keyout: string; subj: string; config: string; out: string }, o?: RunOptions) {
  await openssl(['req', ...keySpec(a.type, a.bits).newkey, '-nodes', '-keyout', a.keyout, '-subj', a.subj, '-config', a.config,
    '-out', a.out, DIGEST], o, [a.out]);
}

/**
 * Steps 5 and 12, signing: the recipe's `openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial
 * -extensions SAN -extfile openssl.cnf -days 10000 -out server.crt`, as `openssl ca -cert ca.crt -keyfile ca.key -in
 * server.csr -extfile openssl.cnf -extensions server …`: the same request, CA, extensions and lifetime, but backdated
 * (OpenSSL 3.0's `x509 -req` cannot set notBefore; its `-not_before` came with 3.4) and with a random serial, so that
 * two signings need no shared serial file and may run at once.
 */
export async function signCsr(a: { csr: string; ca: string; caKey: string; extensions: string; extfile: string; days: number; out: string }, o?: RunOptions) {
  await withSigner(o, (signer) => openssl([...caArgs(signer, a), '-cert', a.ca, '-keyfile', a.caKey], o, [a.out]));
}

/** The modern profile's service-account public key: `openssl pkey -in sa.key -pubout -out sa.pub`. */
export async function pubout(a: { key: string; out: string }, o?: RunOptions) {
  await openssl(['pkey', '-in', a.key, '-pubout', '-out', a.out], o, [a.out]);
}

/**
 * `openssl verify -CAfile ca.crt -purpose sslserver server.crt` → true when openssl says OK. Used by the CA rotation
 * and tests. `untrusted`: an intermediate between the anchor and the certificate (`-untrusted ca.crt`, with the
 * operator's root as -CAfile).
 */
export async function verify(ca: string, cert: string, purpose?: 'sslserver' | 'sslclient', untrusted?: string): Promise<{ ok: boolean; output: string }> {
  const argv = ['verify', '-CAfile', ca, ...(untrusted ? ['-untrusted', untrusted] : []), ...(purpose ? ['-purpose', purpose] : []), cert];
  const r = await execa('openssl', argv, { reject: false, stdin: 'ignore' });
  return { ok: r.exitCode === 0 && /: OK$/m.test(r.stdout), output: `${r.stdout}${r.stderr}`.trim() };
}

/**
 * `-subj` for a subject: `/O=system:nodes/CN=system:node:kubeminion1`. openssl reads `/` as "next field", `+` as
 * "next value of this field" and `=` as "type=value", and takes the character after a backslash literally
 * (apps/lib/apps.c, parse_name). Every value is escaped, so no value can add a field (`/O=system:masters`) whatever
 * the inventory let through: the structure of a subject comes from this function only.
 */
export function subj(cn: string, o?: string): string {
  return `${o ? `/O=${subjValue(o)}` : ''}/CN=${subjValue(cn)}`;
}

/** One value for `-subj`: `\`, `/`, `+` and `=` get a backslash. */
export function subjValue(value: string): string {
  return value.replace(/[\\/+=]/g, (c) => `\\${c}`);
}
