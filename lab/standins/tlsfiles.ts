// Loading PEM material the way Go's crypto/tls does, with Go's error wording.
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readOrThrow } from './common.ts';

const CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function parseCerts(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(CERT_RE) ?? [];
  if (blocks.length === 0) throw new Error(`${what}: tls: failed to find any PEM data in certificate input`);
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new Error(`${what}: x509: malformed certificate (${(e as Error).message})`);
    }
  });
}

export function parsePrivateKey(pem: string, what: string): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new Error(`${what}: tls: failed to find any PEM data in key input`);
  }
  try {
    return createPrivateKey(pem);
  } catch (e) {
    throw new Error(`${what}: tls: failed to parse private key (${(e as Error).message})`);
  }
}

/** Like tls.LoadX509KeyPair: both files readable, PEM, and the key matches the (first) certificate. */
export function loadKeyPair(certFile: string, keyFile: string): { cert: string; key: string; leaf: X509Certificate } {
  const cert = readOrThrow(certFile).toString('utf8');
  const key = readOrThrow(keyFile).toString('utf8');
  const leaf = parseCerts(cert, certFile)[0]!;
  const priv = parsePrivateKey(key, keyFile);
  if (!leaf.checkPrivateKey(priv)) throw new Error('tls: private key does not match public key');
  return { cert, key, leaf };
}

/** A service-account key file: a public or a private key (PEM). */
export function loadAnyKey(file: string): KeyObject {
  const pem = readOrThrow(file).toString('utf8');
  try {
    return /PRIVATE KEY/.test(pem) ? createPrivateKey(pem) : createPublicKey(pem);
  } catch (e) {
    throw new Error(`failed to parse key file ${file}: ${(e as Error).message}`);
  }
}

/** The same check on data already in memory (embedded kubeconfig data). */
export function loadKeyPairPem(cert: string, key: string, certWhat: string, keyWhat: string): void {
  const leaf = parseCerts(cert, certWhat)[0]!;
  if (!leaf.checkPrivateKey(parsePrivateKey(key, keyWhat))) throw new Error('tls: private key does not match public key');
}
