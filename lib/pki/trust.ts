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
 * This module reads files only (no openssl, no network), so that the PKI and the rollout can use it without a circle;
 * the rotation's record (`.rotate-ca.json`) is lib/state.ts's.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Inventory } from '../inventory.ts';
import { ROTATE_NAMES, runningRotation, type Rotation, type RotTarget } from '../state.ts';

/** The public file of a target in pki.dir: ca.crt, etcd-ca.crt, front-proxy-ca.crt, sa.pub. */
export const publicFile = (t: RotTarget) => (t === 'sa' ? 'sa.pub' : `${t}.crt`);
/** <name>.next.<ext> / <name>.prev.<ext> beside <name>.<ext>. */
export const sideFile = (file: string, side: 'next' | 'prev') => file.replace(/\.([a-z]+)$/, `.${side}.$1`);
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
  return Buffer.concat([own, own.at(-1) === 0x0a ? Buffer.alloc(0) : Buffer.from('\n'), other]);
}

/**
 * The bytes a host receives for the local PKI file `file` (a base name): during a rotation a trust point is the
 * bundle of its phase, anything else is the file as it is.
 */
export function deployedBytes(inv: Inventory, file: string): Buffer {
  const t = targetOf(file);
  return bundle(inv, file, t ? otherSide(runningRotation(inv), t, false) : undefined);
}

/**
 * What kubetls's own TLS clients (health gates, verify, status) trust for a CA: the bundle while servers may present a
 * certificate of either CA (phases 2 and 3), the current CA alone otherwise.
 */
export function clientTrust(inv: Inventory, ca: 'ca' | 'etcd-ca' | 'front-proxy-ca' = 'ca'): Buffer {
  return bundle(inv, publicFile(ca), otherSide(runningRotation(inv), ca, true));
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
