/**
 * The operator's own root (docs/own-root.md): a CA of kubetls made as an intermediate under a root whose key kubetls
 * never holds, in two steps around the operator's own signing.
 *
 *   await requestCa(inv, 'ca')          // pki/ca.key (0600 from the first byte) and pki/ca.csr
 *   …the operator signs ca.csr with the root, wherever it lives…
 *   await importCa(inv, 'ca', { cert, root })   // checks (lib/pki/import-check.ts), then pki/ca.crt and pki/ca.root.crt
 *
 * After the import master.ts and the rest use the CA as they use one kubetls made; what changes on the hosts is
 * lib/pki/trust.ts's (every leaf carries its intermediate). A rotation of the CA (renew.ts --rotate-ca) asks the same
 * root for the next intermediate the same way: requestNext, then `ca.ts import` writes `<ca>.next.crt`.
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { caSpecs, leafSpecs, type CaName } from '../../config/certs.ts';
import { local as localModes } from '../../config/files.ts';
import { opensslConfig } from '../../config/openssl.ts';
import { writeAtomic } from '../atomic.ts';
import { ExitError } from '../cli.ts';
import type { Inventory } from '../inventory.ts';
import { log, shown } from '../log.ts';
import { runningRotation } from '../state.ts';
import { ensureDir } from './dir.ts';
import { importProblems, parseExtensions, type CaExtensions } from './import-check.ts';
import * as openssl from './openssl.ts';
import { readKey, readPkiFile } from './read.ts';
import { pemCerts, rootBytes, rootFile } from './trust.ts';

/** The request a CA's key signs, for the operator's root to sign: `<ca>.csr` in pki.dir. */
export const csrFile = (ca: CaName) => `${ca}.csr`;

/** A CA name of this inventory's profile (ca; modern: etcd-ca, front-proxy-ca too), or exit 2 naming the ones there are. */
export function caNamed(inv: Inventory, name: string): CaName {
  const names = caSpecs(inv).map((c) => c.name);
  const found = names.find((n) => n === name);
  if (!found) throw new ExitError(`no CA named '${name}' in the ${inv.profile} profile: one of ${names.join(', ')}`, 2);
  return found;
}

/**
 * Refused while the CA is in use (a CA that signs is replaced only by a rotation, and kubetls does not rotate a CA it
 * made into an intermediate), and while any rotation runs: then `import` takes only the next intermediate of a
 * rotation in its phase 1.
 */
function refuseInUse(inv: Inventory, ca: CaName, what: string): void {
  const crt = path.join(inv.pki.dir, `${ca}.crt`);
  if (runningRotation(inv)) throw new ExitError(`a CA rotation is running: ${what} is refused until it ends (npx zx scripts/renew.ts --rotate-ca …)`, 2);
  if (existsSync(crt)) {
    throw new ExitError(`${shown(crt)} is the CA in use: ${what} would replace it, which only a CA rotation may do, and kubetls does not yet rotate a CA into an intermediate. `
      + 'Start from a pki.dir without it (a new cluster), or keep the CA you have.', 2);
  }
}

/**
 * `ca.ts request NAME`: the CA's key (kept when an earlier request made it) and its request, `openssl req -new -key
 * ca.key -subj "/CN=…" -addext basicConstraints=critical,CA:TRUE,pathlen:0 -addext keyUsage=critical,keyCertSign,cRLSign
 * -out ca.csr`. A second request with the same key changes nothing. Returns the CSR's path.
 */
export async function requestCa(inv: Inventory, ca: CaName, o: { dryRun?: boolean } = {}): Promise<string> {
  refuseInUse(inv, ca, `ca.ts request ${ca}`);
  const dir = inv.pki.dir;
  ensureDir(dir, o.dryRun);
  const p = (f: string) => path.join(dir, f);
  const cnf = p('openssl.cnf');
  const text = opensslConfig(inv);
  if (!existsSync(cnf) || readFileSync(cnf, 'utf8') !== text) {
    log.action(`cat > ${shown(cnf)}  # generated from ${shown(inv.file)} and config/openssl.ts`);
    if (!o.dryRun) writeAtomic(cnf, text, localModes.public);
  }
  const key = p(`${ca}.key`);
  const csr = p(csrFile(ca));
  if (!existsSync(key)) {
    await openssl.genkey(`${key}.new`, inv.pki.key, inv.pki.caBits, o);
    log.cmd(['mv', `${key}.new`, key]);
    if (!o.dryRun) renameSync(`${key}.new`, key);
  } else if (existsSync(csr) && await csrMatches(csr, key, caSpecs(inv).find((c) => c.name === ca)!.cn)) {
    log.info(`${shown(csr)} is already the request of ${shown(key)}: nothing to do`);
    return csr;
  }
  const subj = openssl.subj(caSpecs(inv).find((c) => c.name === ca)!.cn);
  await openssl.reqCa({ key, subj, config: cnf, out: `${csr}.new` }, o);
  log.cmd(['mv', `${csr}.new`, csr]);
  if (!o.dryRun) renameSync(`${csr}.new`, csr);
  return csr;
}

/**
 * Phase 1 of a CA rotation (lib/rotate.ts) when the CA is an intermediate: `<ca>.next.key` (kept when an earlier run
 * made it) and its request `<ca>.next.csr`, for the same root to sign; `ca.ts import` then writes `<ca>.next.crt`.
 * Returns true once that certificate is there, false while the rotation waits for it.
 */
export async function requestNext(inv: Inventory, ca: CaName, cn: string): Promise<boolean> {
  const p = (f: string) => path.join(inv.pki.dir, f);
  const key = p(`${ca}.next.key`);
  const csr = p(`${ca}.next.csr`);
  if (existsSync(p(`${ca}.next.crt`)) && existsSync(key)) { // imported, and checked then against this key
    removeRequest(csr); // an import killed before it removed the request
    return true;
  }
  if (!existsSync(key)) {
    rmSync(csr, { force: true }); // the request of a key that is gone
    await openssl.genkey(`${key}.new`, inv.pki.key, inv.pki.caBits);
    log.cmd(['mv', `${key}.new`, key]);
    renameSync(`${key}.new`, key);
  }
  if (existsSync(csr) && await csrMatches(csr, key, cn)) return false;
  const cnf = p('openssl.cnf');
  if (!existsSync(cnf)) writeAtomic(cnf, opensslConfig(inv), localModes.public);
  await openssl.reqCa({ key, subj: openssl.subj(cn), config: cnf, out: `${csr}.new` });
  log.cmd(['mv', `${csr}.new`, csr]);
  renameSync(`${csr}.new`, csr);
  return false;
}

/** Whether a request is the one `key` would make now: the same public key and subject CN. */
async function csrMatches(csr: string, key: string, cn: string): Promise<boolean> {
  const r = await execa('openssl', ['req', '-in', csr, '-noout', '-pubkey', '-subject', '-nameopt', 'RFC2253'], { reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0) return false;
  const pub = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/.exec(r.stdout)?.[0];
  const mine = createPublicKey(readKey(key)).export({ type: 'spki', format: 'pem' }).toString().trim();
  return pub?.trim() === mine && r.stdout.split('\n').includes(`subject=CN=${cn}`);
}

/** A certificate's extensions, as the real openssl reads them (node:crypto has no pathlen, key usage bits or name constraints). */
export async function caExtensions(pem: string): Promise<CaExtensions> {
  const r = await execa('openssl', ['x509', '-noout', '-ext', 'basicConstraints,keyUsage,nameConstraints', '-text', '-certopt',
    'no_header,no_version,no_serial,no_issuer,no_validity,no_subject,no_pubkey,no_extensions,no_sigdump,no_aux'], { input: pem, reject: false });
  // a v1 certificate has no extensions ("No extensions in certificate"), and is no CA
  return parseExtensions(r.exitCode === 0 ? r.stdout : '');
}

/**
 * The certificates in a file the operator gives, refusing a file that holds a private key (kubetls never takes a key it
 * did not make, and never prints one).
 */
function certsIn(file: string, what: string): X509Certificate[] {
  const bytes = readPkiFile(file);
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(bytes.toString('latin1'))) {
    throw new ExitError(`${shown(file)} holds a private key: kubetls never takes ${what === 'root' ? 'the root\'s key' : 'a key it did not make'}. Give the certificate alone; nothing was read from it.`, 2);
  }
  let certs: X509Certificate[];
  try { certs = pemCerts(bytes); } catch { throw new ExitError(`${shown(file)}: not a PEM certificate`, 2); }
  if (!certs.length) throw new ExitError(`${shown(file)}: no PEM certificate in it`, 2);
  return certs;
}

export interface ImportFiles { cert: string; root: string }

/**
 * `ca.ts import NAME --cert FILE --root FILE`: the certificate the root signed for the request, checked against the
 * root, the key and the names the leaves under it will carry; then `<ca>.root.crt` and `<ca>.crt` in pki.dir (the root
 * first: the CA is in use from the moment its certificate is there). The cert file may hold the root after the
 * certificate (as many signers write a chain); anything else is refused with every reason, exit 2. Importing the same
 * pair again changes nothing. Returns whether anything was written.
 */
export async function importCa(inv: Inventory, ca: CaName, files: ImportFiles, o: { dryRun?: boolean; now?: Date } = {}): Promise<boolean> {
  const dir = inv.pki.dir;
  const p = (f: string) => path.join(dir, f);
  const roots = certsIn(files.root, 'root');
  const [cert, ...rest] = certsIn(files.cert, 'cert');
  if (roots.length !== 1) throw new ExitError(`${shown(files.root)} holds ${roots.length} certificates: give the root alone (kubetls's CA must be signed by the root itself)`, 2);
  const root = roots[0]!;
  if (rest.some((c) => c.fingerprint256 !== root.fingerprint256)) {
    throw new ExitError(`${shown(files.cert)} holds more than the certificate and the root: kubetls's CA must be signed by the root itself, with no CA between`, 2);
  }
  // during phase 1 of a rotation of this CA, the certificate is the next intermediate, under the same root
  const rot = runningRotation(inv);
  const rootAt = p(rootFile(ca));
  const next = rot?.phase === 'new' && rot.targets.includes(ca) && rootBytes(inv, ca) !== undefined;
  const crt = p(next ? `${ca}.next.crt` : `${ca}.crt`);
  if (existsSync(crt) && existsSync(rootAt)) {
    const same = new X509Certificate(readFileSync(crt)).fingerprint256 === cert!.fingerprint256
      && new X509Certificate(readFileSync(rootAt)).fingerprint256 === root.fingerprint256;
    if (same) {
      log.info(`${shown(crt)} is already this certificate, under this root: nothing to do`);
      removeRequest(p(next ? `${ca}.next.csr` : csrFile(ca)), o.dryRun); // a run killed after the import left it
      return false;
    }
  }
  if (next && new X509Certificate(readFileSync(rootAt)).fingerprint256 !== root.fingerprint256) {
    throw new ExitError(`${shown(files.root)} is not the root above ${ca} (${shown(rootAt)}): a rotation keeps the root, and only the intermediate changes`, 2);
  }
  if (!next) refuseInUse(inv, ca, `ca.ts import ${ca}`);
  const keyFile = p(next ? `${ca}.next.key` : `${ca}.key`);
  if (!existsSync(keyFile)) {
    throw new ExitError(`${shown(keyFile)} is missing: ${next ? `run npx zx scripts/renew.ts --rotate-ca ${rot!.what} first (its phase 1 makes the key and ${ca}.next.csr)` : `run npx zx scripts/ca.ts request ${ca} first`}, and have that request signed`, 2);
  }
  const sans = [...new Set(leafSpecs(inv).filter((l) => l.ca === ca).flatMap((l) => l.sans))];
  const certExt = await caExtensions(cert!.toString());
  const rootExt = await caExtensions(root.toString());
  const problems = importProblems({
    cert: { x509: cert!, ext: certExt }, root: { x509: root, ext: rootExt },
    key: readKey(keyFile), sans, now: o.now ?? new Date(), renewBeforeDays: inv.pki.renewBeforeDays,
  });
  if (problems.length) throw new ExitError(`refusing ${shown(files.cert)} as ${ca}:\n${problems.map((x) => `  - ${x}`).join('\n')}`, 2);
  for (const [to, c] of [...(next ? [] : [[rootAt, root]] as const), [crt, cert!]] as const) {
    log.action(`cp ${to === crt ? files.cert : files.root} ${shown(to)}  # ${to === crt ? `kubetls's ${next ? 'next ' : ''}${ca}, signed by the root` : 'the root, certificate only'}`);
    if (!o.dryRun) writeAtomic(to, c.toString(), localModes.public);
  }
  removeRequest(p(next ? `${ca}.next.csr` : csrFile(ca)), o.dryRun);
  for (const w of importWarnings(cert!, certExt, rootExt, inv)) log.warn(w);
  return true;
}

/** A request that was answered: `rm ca.csr`. */
export function removeRequest(csr: string, dryRun?: boolean): void {
  if (!existsSync(csr)) return;
  log.cmd(['rm', csr]);
  if (!dryRun) rmSync(csr);
}

/**
 * What an import accepts but an operator should know (docs/own-root.md): ca.key is on every master and is the
 * controller-manager's signing key, so whatever it signs chains to the root. Without name constraints, or with room
 * for CAs below it, that reaches further than the cluster.
 */
function importWarnings(cert: X509Certificate, certExt: CaExtensions, rootExt: CaExtensions, inv: Inventory): string[] {
  const out: string[] = [];
  if (!certExt.permitted.length && !certExt.excluded.length && !rootExt.permitted.length && !rootExt.excluded.length) {
    out.push('neither the certificate nor the root carries name constraints: a certificate this CA signs (the controller-manager signs CSRs with its key on every master) is trusted for any name by every client of your root. A root of this cluster\'s own, or name constraints, keep it inside the cluster (docs/own-root.md)');
  }
  if (certExt.pathlen === undefined || certExt.pathlen > 0) out.push(`the certificate allows ${certExt.pathlen === undefined ? 'any number of' : certExt.pathlen} CA${certExt.pathlen === 1 ? '' : 's'} below it: kubetls's request asked for pathlen:0`);
  const left = (new Date(cert.validTo).getTime() - Date.now()) / 86_400_000;
  if (left < inv.pki.days) out.push(`the certificate ends in ${Math.floor(left)} d, before leaves signed for pki.days (${inv.pki.days} d) would: they stop verifying when it does`);
  return out;
}
