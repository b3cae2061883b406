/**
 * Asking a TLS port, from the operator's machine: which certificate it serves (verified, or whatever it is), one HTTPS
 * GET, one request to the apiserver as its clients make it. The health gates, verify and status all ask through here.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { apiTarget, type ApiTarget, type Inventory, masterTarget } from './inventory.ts';
import { parseCert, type CertInfo } from './pki/read.ts';
import { clientTrust, pemCerts } from './pki/trust.ts';

type CaOption = string | Buffer | (string | Buffer)[] | undefined;
type IdentityCheck = (host: string, cert: tls.PeerCertificate) => Error | undefined;

/**
 * The name check of every connection made here. Under the operator's own root (docs/own-root.md) kubetls's clients
 * trust the root as well as the intermediates (node's TLS wants a self-signed anchor), and the root may have signed
 * anything, for any name, through any of its other CAs. So when `ca` holds a CA that is not self-signed, the server's
 * certificate must also be issued by one of those: anything else the root signed is refused, as the hosts' own
 * binaries refuse it (they trust the intermediates alone). With kubetls's self-signed CAs: node's own name check.
 */
export function pinnedIdentity(ca: CaOption): IdentityCheck {
  // never undefined: tls.connect spreads its options over its defaults, so an undefined check would replace node's own
  if (!ca) return tls.checkServerIdentity;
  let certs;
  try { certs = (Array.isArray(ca) ? ca : [ca]).flatMap((b) => pemCerts(b)); } catch { return tls.checkServerIdentity; } // node reports bad bytes itself
  const below = certs.filter((c) => !(c.checkIssued(c) && c.verify(c.publicKey)));
  if (!below.length) return tls.checkServerIdentity;
  const allowed = new Set(below.map((c) => c.fingerprint256));
  return (host, cert) => {
    const wrongName = tls.checkServerIdentity(host, cert);
    if (wrongName) return wrongName;
    const issuer = (cert as tls.DetailedPeerCertificate).issuerCertificate; // node passes the detailed certificate here
    if (issuer && allowed.has(issuer.fingerprint256)) return undefined;
    // no `code`: node reports a failed check by its code when it has one, and the sentence is what status shows
    return new Error(`the certificate for ${host} was issued by ${issuer?.subject?.CN ?? 'an unknown CA'}, not by kubetls's intermediate`);
  };
}

/** The certificate an apiserver serves (default: the first master's), verified against ca.crt for the target's name. */
export function servedCert(inv: Inventory, t: ApiTarget = masterTarget(inv, inv.master), timeoutMs = 5000): Promise<{ serial: string; fingerprint: string }> {
  const ca = clientTrust(inv);
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: t.address, port: t.port, servername: t.name,
      ca, checkServerIdentity: pinnedIdentity(ca), rejectUnauthorized: true, timeout: timeoutMs,
    }, () => {
      const c = s.getPeerCertificate();
      s.destroy();
      resolve({ serial: c.serialNumber.toUpperCase(), fingerprint: c.fingerprint256 });
    });
    s.on('timeout', () => { s.destroy(); reject(new Error(`${t.address}:${t.port}: no TLS answer in ${timeoutMs} ms`)); });
    s.on('error', reject);
  });
}

export interface Served { info: CertInfo; authorized: boolean; error?: string }

/**
 * The certificate a TLS port serves, read from the handshake whatever it is: expired, from another CA or for another
 * name, because those are exactly what status must report (the trust verdict is returned beside it, the connection
 * is closed before anything is sent). Verified against `ca` for `servername`, as the kubelets do.
 */
export function readServed(host: string, port: number, servername: string, ca: Buffer | undefined, timeoutMs = 5000): Promise<Served> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host, port, servername, ca, checkServerIdentity: pinnedIdentity(ca), rejectUnauthorized: false, timeout: timeoutMs }, () => {
      const raw = s.getPeerCertificate().raw;
      const authorized = s.authorized;
      const error = s.authorizationError ? String(s.authorizationError) : undefined;
      s.destroy();
      try { resolve({ info: parseCert(raw, `${host}:${port} (served)`), authorized, error }); } catch (e) { reject(e); }
    });
    s.on('timeout', () => { s.destroy(); reject(new Error(`${host}:${port}: no TLS answer in ${timeoutMs} ms`)); });
    s.on('error', reject);
  });
}

/** One HTTPS GET, the peer verified (rejectUnauthorized), at most 64 KiB of body kept; also verify.ts's kubeletGet. */
export function httpsGet(o: https.RequestOptions & { path: string }, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ checkServerIdentity: pinnedIdentity(o.ca), ...o, rejectUnauthorized: true, timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { if (body.length < 65536) body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

export interface Credential { cert?: Buffer; key?: Buffer; token?: string }
/** kubetls's admin credential (pki.dir/admin.crt + admin.key, system:masters): the API objects kubetls makes, a join's token. */
export const adminCredential = (inv: Inventory): Credential => ({
  cert: readFileSync(path.join(inv.pki.dir, 'admin.crt')), key: readFileSync(path.join(inv.pki.dir, 'admin.key')),
});

/**
 * One HTTPS request to the apiserver as clients reach it (the balancer, or the one master; or `t`), its certificate
 * verified against ca.crt for the target's name.
 */
export function apiRequest(inv: Inventory, method: 'GET' | 'POST' | 'PUT' | 'DELETE', urlPath: string, cred: Credential, body?: object, timeoutMs = 5000,
  t: ApiTarget = apiTarget(inv)): Promise<{ status: number; json: unknown }> {
  const ca = clientTrust(inv);
  return new Promise((resolve, reject) => {
    const payload = body ? JSON.stringify(body) : undefined;
    const req = https.request({
      host: t.address, port: t.port, servername: t.name, method, path: urlPath,
      ca, checkServerIdentity: pinnedIdentity(ca), cert: cred.cert, key: cred.key, rejectUnauthorized: true, agent: false,
      headers: {
        host: `${t.name}:${t.port}`, accept: 'application/json',
        ...(cred.token ? { authorization: `Bearer ${cred.token}` } : {}),
        ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
      },
      timeout: timeoutMs,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: unknown = text;
        try { json = JSON.parse(text); } catch { /* not JSON: keep the text */ }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}
