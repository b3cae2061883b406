/**
 * Asking a TLS port, from the operator's machine: which certificate it serves (verified, or whatever it is), one HTTPS
 * GET, one request to the apiserver as its clients make it. The health gates, verify and status all ask through here.
 */
import https from 'node:https';
import tls from 'node:tls';
import { apiTarget, type ApiTarget, type Inventory, masterTarget } from './inventory.ts';
import { parseCert, type CertInfo } from './pki/read.ts';
import { clientTrust } from './pki/trust.ts';

/** The certificate an apiserver serves (default: the first master's), verified against ca.crt for the target's name. */
export function servedCert(inv: Inventory, t: ApiTarget = masterTarget(inv, inv.master), timeoutMs = 5000): Promise<{ serial: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: t.address, port: t.port, servername: t.name,
      ca: clientTrust(inv), rejectUnauthorized: true, timeout: timeoutMs,
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
    const s = tls.connect({ host, port, servername, ca, rejectUnauthorized: false, timeout: timeoutMs }, () => {
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
    const req = https.get({ ...o, rejectUnauthorized: true, timeout: timeoutMs, agent: false }, (res) => {
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

/**
 * One HTTPS request to the apiserver as clients reach it (the balancer, or the one master; or `t`), its certificate
 * verified against ca.crt for the target's name.
 */
export function apiRequest(inv: Inventory, method: 'GET' | 'POST', urlPath: string, cred: Credential, body?: object, timeoutMs = 5000,
  t: ApiTarget = apiTarget(inv)): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body ? JSON.stringify(body) : undefined;
    const req = https.request({
      host: t.address, port: t.port, servername: t.name, method, path: urlPath,
      ca: clientTrust(inv), cert: cred.cert, key: cred.key, rejectUnauthorized: true, agent: false,
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
