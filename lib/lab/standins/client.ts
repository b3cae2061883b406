// An HTTPS client for the stand-ins (apiserver → etcd, apiserver → kubelet, components → apiserver) that fails with
// the words a Go client (crypto/tls, net/http, grpc) uses, so a log line reads like the real binary's.
import type { PeerCertificate } from 'node:tls';
import { Agent, request } from 'node:https';
import { request as httpRequest } from 'node:http';

export interface TlsMaterial { ca?: string; cert?: string; key?: string }
export interface Response { status: number; body: string; json(): any }

/** Where the failure happened: the handshake (client-side verification), the server's TLS alert, or the network. */
export type FailureKind = 'handshake' | 'remote' | 'dial' | 'other';

export class GoError extends Error {
  constructor(message: string, public kind: FailureKind, public reason: string) {
    super(message);
  }
}

/** "x509: certificate is valid for a, b, not c", from the served certificate's SANs (names for a name, IPs for an IP). */
function validFor(cert: PeerCertificate | undefined, host: string): string {
  const sans = (cert?.subjectaltname ?? '').split(/,\s*/).filter(Boolean);
  const isIp = /^[0-9.]+$|:/.test(host);
  const list = sans.filter((s) => s.startsWith(isIp ? 'IP Address:' : 'DNS:')).map((s) => s.replace(/^(IP Address|DNS):/, ''));
  if (list.length === 0) {
    return isIp ? `x509: cannot validate certificate for ${host} because it doesn't contain any IP SANs`
      : 'x509: certificate relies on legacy Common Name field, use SANs instead';
  }
  return `x509: certificate is valid for ${list.join(', ')}, not ${host}`;
}

/** Node's TLS/socket error → Go's wording, and whether it happened in our handshake, as the server's alert, or dialing. */
export function goReason(e: NodeJS.ErrnoException & { cert?: PeerCertificate }, host: string, port: number): { kind: FailureKind; reason: string } {
  const code = e.code ?? '';
  const verify = (why: string) => ({ kind: 'handshake' as const, reason: `tls: failed to verify certificate: ${why}` });
  switch (code) {
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE': case 'SELF_SIGNED_CERT_IN_CHAIN': case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY': case 'UNABLE_TO_GET_ISSUER_CERT': case 'CERT_SIGNATURE_FAILURE':
      return verify('x509: certificate signed by unknown authority');
    case 'CERT_HAS_EXPIRED': case 'CERT_NOT_YET_VALID':
      return verify(`x509: certificate has expired or is not yet valid: current time ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} is outside the validity period`);
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return verify(validFor(e.cert, host));
    case 'ECONNREFUSED':
      return { kind: 'dial', reason: `dial tcp ${host}:${port}: connect: connection refused` };
    case 'ETIMEDOUT': case 'ESOCKETTIMEDOUT':
      return { kind: 'dial', reason: `dial tcp ${host}:${port}: i/o timeout` };
    case 'ECONNRESET':
      return { kind: 'remote', reason: `read tcp ${host}:${port}: read: connection reset by peer` };
    case 'EPROTO':
      break;
  }
  const alert = /alert ([a-z ]+)|ALERT_([A-Z_]+)/i.exec(`${code} ${e.message}`);
  if (alert) {
    const what = (alert[1] ?? alert[2]!).toLowerCase().replace(/_/g, ' ').replace(/^(sslv3|tlsv13|tlsv1) alert /, '').trim();
    const go = what === 'unknown ca' ? 'unknown certificate authority' : what;
    return { kind: 'remote', reason: `remote error: tls: ${go}` };
  }
  return { kind: 'other', reason: e.message };
}

export interface RequestOptions {
  method?: string;
  body?: string;
  headers?: Record<string, string>;
  tls?: TlsMaterial;
  token?: string;
  timeoutMs?: number;
  agent?: Agent;
  /** the name to verify the server's certificate for (default: the URL's host) */
  servername?: string;
  /** do not verify the server's certificate (Go's InsecureSkipVerify) */
  insecure?: boolean;
}

/** One request. Rejects with a GoError: `Get "https://…": tls: failed to verify certificate: x509: …`. */
export function call(url: string, opts: RequestOptions = {}): Promise<Response> {
  const u = new URL(url);
  const method = opts.method ?? 'GET';
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const verb = method[0] + method.slice(1).toLowerCase();
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { Accept: 'application/json', ...opts.headers };
    if (opts.body !== undefined) {
      headers['Content-Type'] ??= 'application/json';
      headers['Content-Length'] = Buffer.byteLength(opts.body);
    }
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    const fail = (e: NodeJS.ErrnoException & { cert?: PeerCertificate }) => {
      const { kind, reason } = goReason(e, opts.servername ?? host, port);
      reject(new GoError(`${verb} "${url}": ${reason}`, kind, reason));
    };
    const onResponse = (res: import('node:http').IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) }));
      res.on('error', fail);
    };
    const req = u.protocol === 'https:'
      ? request(u, {
        method, headers, timeout: timeoutMs, agent: opts.agent,
        ...(opts.tls?.ca ? { ca: opts.tls.ca } : {}),
        ...(opts.tls?.cert ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
        ...(opts.servername ? { servername: opts.servername } : {}),
        ...(opts.insecure ? { rejectUnauthorized: false } : {}),
      }, onResponse)
      : httpRequest(u, { method, headers, timeout: timeoutMs }, onResponse);
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', fail);
    req.end(opts.body);
  });
}

/** The message of a Kubernetes Status body, or the text. */
export function statusMessage(r: Response): string {
  try {
    const s = r.json();
    if (s && typeof s.message === 'string') return s.message;
  } catch { /* not JSON */ }
  return r.body.trim() || `HTTP ${r.status}`;
}
