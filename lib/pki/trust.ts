/**
 * What a CA rotation (lib/rotate.ts) changes in the bytes kubetls deploys and in what its own clients trust. Outside a
 * rotation every function here is the identity: a host gets the local file as it is, and the local clients trust the
 * local CA.
 *
 * The local files of a rotation, beside the current ones in pki.dir:
 *   <ca>.next.crt, <ca>.next.key, sa.next.key, sa.next.pub   phase 1 to 2: the new CA, made, not yet signing
 *   <ca>.prev.crt, <ca>.prev.key, sa.prev.key, sa.prev.pub   phase 3 to 5: the old one, trusted, no longer signing
 * and `.rotate-ca.json`, the phase. What a host receives for a trust point (ca.crt, etcd-ca.crt, front-proxy-ca.crt,
 * sa.pub, and every kubeconfig's certificate-authority-data) is the current file followed by the other one: the
 * signer first. The controller-manager's signer is not a trust point: it gets ca.crt alone as ca-signer.crt
 * (config/layout.ts), since the real binary refuses a bundle there.
 *
 * Under the operator's own root (docs/own-root.md) a CA of kubetls is an intermediate, and pki.dir holds the root's
 * certificate beside it as `<ca>.root.crt`. Then every leaf a host receives carries the intermediate that signed it
 * (leaf first, then the intermediate), so that a client trusting only the root verifies what a server presents; the
 * root itself goes to no host. The trust points stay the intermediate(s) alone: the real binaries (Go's crypto/x509)
 * take an intermediate as a trust anchor, and a `--client-ca-file` holding the root would let every certificate the
 * root ever signed, for anything, log in to the cluster. kubetls's own clients (node's TLS, which wants a self-signed
 * anchor) trust the intermediate and the root (clientTrust).
 *
 * This module reads files only (no openssl, no network), so that the PKI and the rollout can use it without a circle;
 * the rotation's record (`.rotate-ca.json`) is lib/state.ts's.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { CaName } from '../../config/certs.ts';
import type { Inventory } from '../inventory.ts';
import { ROTATE_NAMES, runningRotation, type Rotation, type RotTarget } from '../state.ts';

/** The public file of a target in pki.dir: ca.crt, etcd-ca.crt, front-proxy-ca.crt, sa.pub. */
export const publicFile = (t: RotTarget) => (t === 'sa' ? 'sa.pub' : `${t}.crt`);
/** <name>.next.<ext> / <name>.prev.<ext> beside <name>.<ext>. */
export const sideFile = (file: string, side: 'next' | 'prev') => file.replace(/\.([a-z]+)$/, `.${side}.$1`);
/** The operator's root above a CA of kubetls, when that CA is an intermediate (`ca.ts import`): `<ca>.root.crt`. */
export const rootFile = (ca: CaName) => `${ca}.root.crt`;
const CA_NAMES: CaName[] = ['ca', 'etcd-ca', 'front-proxy-ca'];
/**
 * The root's bytes above a CA, or undefined when that CA is its own root (made by kubetls, self-signed). A root file
 * that did not issue `<ca>.crt` (left behind when the CA was replaced) is no root of it: status shows that as drift.
 */
export function rootBytes(inv: Inventory, ca: CaName): Buffer | undefined {
  const f = path.join(inv.pki.dir, rootFile(ca));
  if (!existsSync(f)) return undefined;
  const root = readFileSync(f);
  try {
    const r = new X509Certificate(root);
    const c = new X509Certificate(readFileSync(path.join(inv.pki.dir, `${ca}.crt`)));
    return c.checkIssued(r) && c.verify(r.publicKey) ? root : undefined;
  } catch {
    return undefined; // no ca.crt yet, or bytes that are no certificate (status names the file)
  }
}
const targetOf = (file: string): RotTarget | undefined => (Object.values(ROTATE_NAMES).flat() as RotTarget[]).find((t) => publicFile(t) === file);

/**
 * Which other file a trust point carries beside the current one in this phase: the new CA while the old one still
 * signs (2), the old one while the new one signs (3–4), none before the hosts may know the new one (1) and after the
 * old one is dropped (5).
 */
function otherSide(r: Rotation | undefined, t: RotTarget, forClients: boolean): 'next' | 'prev' | undefined {
  if (!r || !r.targets.includes(t)) return undefined;
  if (r.phase === 'bundle') return 'next';
  if (r.phase === 'swap' || r.phase === 'leaves') return 'prev';
  // verify: the hosts still hold both, but kubetls's own checks trust the new CA only (that is the phase's point)
  if (r.phase === 'verify') return forClients ? undefined : 'prev';
  return undefined;
}

function bundle(inv: Inventory, file: string, side: 'next' | 'prev' | undefined): Buffer {
  const own = readFileSync(path.join(inv.pki.dir, file));
  if (!side) return own;
  const other = readFileSync(path.join(inv.pki.dir, sideFile(file, side)));
  return concat(own, other);
}

/** Two PEM texts as one, with exactly the newline between them that the first may lack. */
const concat = (a: Buffer, b: Buffer) => Buffer.concat([a, a.at(-1) === 0x0a ? Buffer.alloc(0) : Buffer.from('\n'), b]);

/**
 * A leaf certificate as a host receives it: under an intermediate, followed by the intermediate that signed it (the
 * current CA, or during a rotation the other side); otherwise the file as it is.
 */
function withChain(inv: Inventory, file: string, leaf: Buffer): Buffer {
  const roots = CA_NAMES.filter((c) => rootBytes(inv, c));
  if (!roots.length || !file.endsWith('.crt') || file.endsWith('.root.crt')) return leaf;
  let x: X509Certificate;
  try { x = new X509Certificate(leaf); } catch { return leaf; } // not a certificate: status and verify say so
  for (const c of roots) {
    for (const f of [`${c}.crt`, `${c}.next.crt`, `${c}.prev.crt`]) {
      const p = path.join(inv.pki.dir, f);
      if (!existsSync(p)) continue;
      const ca = readFileSync(p);
      const issuer = new X509Certificate(ca);
      if (x.checkIssued(issuer) && x.verify(issuer.publicKey)) return concat(leaf, ca);
    }
  }
  return leaf;
}

/**
 * The bytes a host receives for the local PKI file `file` (a base name): during a rotation a trust point is the
 * bundle of its phase, anything else is the file as it is.
 */
export function deployedBytes(inv: Inventory, file: string): Buffer {
  const t = targetOf(file);
  if (t) return bundle(inv, file, otherSide(runningRotation(inv), t, false));
  return withChain(inv, file, readFileSync(path.join(inv.pki.dir, file)));
}

/**
 * What kubetls's own TLS clients (health gates, verify, status) trust for a CA: the bundle while servers may present a
 * certificate of either CA (phases 2 and 3), the current CA alone otherwise.
 */
export function clientTrust(inv: Inventory, ca: CaName = 'ca'): Buffer {
  const own = bundle(inv, publicFile(ca), otherSide(runningRotation(inv), ca, true));
  const root = rootBytes(inv, ca); // node's TLS verifies up to a self-signed certificate: the root, under an intermediate
  return root ? concat(own, root) : own;
}

/** The certificates of a PEM bundle (a file of several CERTIFICATE blocks). */
export function pemCerts(b: Buffer | string): X509Certificate[] {
  const text = b.toString();
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]));
}

/**
 * The CA certificates a host may hold for `caFile` without having been built from another PKI: the local one, and
 * during a rotation of it the other side too (next or prev), whichever phase the host was last brought to.
 */
export function knownCas(inv: Inventory, caFile: string): string[] {
  const dir = inv.pki.dir;
  const sides = runningRotation(inv) ? [sideFile(caFile, 'next'), sideFile(caFile, 'prev')].filter((f) => existsSync(path.join(dir, f))) : [];
  const out = [caFile, ...sides];
  return out.flatMap((f) => { try { return pemCerts(readFileSync(path.join(dir, f))).map((c) => c.fingerprint256); } catch { return []; } });
}

/**
 * Whether what a host holds for `caFile` (its bytes) is the local PKI's: at least one certificate, and every one of
 * them known (knownCas). One stranger in a bundle, or bytes that are no certificate, is another PKI.
 */
export function holdsOnlyKnownCas(inv: Inventory, caFile: string, held: Buffer): boolean {
  let fps: string[];
  try { fps = pemCerts(held).map((c) => c.fingerprint256); } catch { return false; }
  const known = knownCas(inv, caFile);
  return fps.length > 0 && fps.every((f) => known.includes(f));
}
