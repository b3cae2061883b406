// Stand-in for the 1.4 kube-apiserver of the legacy profile (a 1.4 binary cannot be built here; the modern profile runs
// the real v1.37.2). It consumes the same flags and files and fails the same way: unknown flag, unreadable file (it
// runs as User=kube), key/cert mismatch.
// It serves HTTPS with the given cert: GET /version, GET /healthz, POST .../selfsubjectreviews (who am I).
//
// Lab differences, on purpose:
//  - --bind-address unset or 0.0.0.0/:: means THIS host's own lab address (from /etc/hosts), never all interfaces:
//    the lab may only listen on its loopback block. 127.0.0.1 is refused (all labs share it).
//  - --insecure-port/--insecure-bind-address (legacy) are accepted but nothing is served on them.
//  - etcd is not contacted; --etcd-servers is only required, as the real binary requires it.
//  - SelfSubjectReview did not exist in 1.4; the stand-in answers it so that verify's identity check works on both profiles.
import { spawnSync } from 'node:child_process';
import { mkdirSync, existsSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { versionInfo } from '../versions.ts';
import { makeLog, onSignals, ownAddress, parseOrDie, readOrThrow } from './common.ts';
import { loadAnyKey, loadKeyPair, parseCerts, parsePrivateKey } from './tlsfiles.ts';

const log = makeLog('kube-apiserver');
const { flags, version } = parseOrDie('kube-apiserver');

// --- required flags ------------------------------------------------------------------------------------------
const missing: string[] = [];
if (!flags.get('etcd-servers')) missing.push('--etcd-servers must be specified');
if (missing.length) {
  console.log(`Error: [${missing.join(', ')}]`);
  process.exit(1);
}

// --- files (read as the user we run as) -----------------------------------------------------------------------
interface TokenUser { user: string; uid: string; groups: string[] }
let serving: { cert: string; key: string };
let clientCA: string | undefined;
const tokens = new Map<string, TokenUser>();

function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (q) {
      if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; }
      else if (c === '"') q = false;
      else cur += c;
    } else if (c === '"') q = true;
    else if (c === ',') { out.push(cur); cur = ''; }
    else cur += c;
  }
  out.push(cur);
  return out;
}

try {
  const certFile = flags.get('tls-cert-file');
  const keyFile = flags.get('tls-private-key-file');
  if (certFile || keyFile) {
    if (!certFile || !keyFile) throw new Error('--tls-cert-file and --tls-private-key-file must be given together');
    try {
      serving = loadKeyPair(certFile, keyFile);
    } catch (e) {
      throw new Error(`unable to load server certificate: ${(e as Error).message}`);
    }
  } else {
    serving = selfSigned(flags.get('cert-dir') ?? '/var/run/kubernetes');
  }
  const ca = flags.get('client-ca-file');
  if (ca) {
    clientCA = readOrThrow(ca).toString('utf8');
    try {
      parseCerts(clientCA, ca);
    } catch (e) {
      throw new Error(`unable to load client CA file: ${(e as Error).message}`);
    }
  }
  const tokenFile = flags.get('token-auth-file');
  if (tokenFile) {
    const text = readOrThrow(tokenFile).toString('utf8');
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const rec = parseCsvLine(line.trim());
      if (rec.length < 3) {
        throw new Error(`token file '${tokenFile}' must have at least 3 columns (token, user name, user uid), found ${rec.length}`);
      }
      const [token, user, uid, groups] = rec as [string, string, string, string?];
      tokens.set(token, { user, uid, groups: groups ? groups.split(',').filter(Boolean) : [] });
    }
  }
  for (const f of ['service-account-key-file']) {
    const path = flags.get(f);
    if (path) loadAnyKey(path);
  }
  const signing = flags.get('service-account-signing-key-file');
  if (signing) parsePrivateKey(readOrThrow(signing).toString('utf8'), signing);
} catch (e) {
  log.fatal((e as Error).message);
}

function selfSigned(certDir: string): { cert: string; key: string } {
  // The real apiserver writes a self-signed pair into --cert-dir when no --tls-* flags are given.
  const crt = `${certDir}/apiserver.crt`;
  const key = `${certDir}/apiserver.key`;
  if (!existsSync(crt) || !existsSync(key)) {
    try {
      mkdirSync(certDir, { recursive: true });
    } catch (e) {
      throw new Error(`mkdir ${certDir}: ${(e as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
    }
    const addr = ownAddress() ?? '127.0.0.1';
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', crt, '-days', '365', '-subj', `/CN=${addr}@${Math.floor(Date.now() / 1000)}`,
      '-addext', `subjectAltName=IP:${addr},DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc`],
    { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`unable to generate self signed cert: ${r.stderr}`);
    log.info(`Generated self-signed cert (${crt}, ${key})`);
  }
  return loadKeyPair(crt, key);
}

// --- where to listen -----------------------------------------------------------------------------------------
const own = ownAddress();
const port = Number(flags.get('secure-port') ?? '6443');
let bind = flags.get('bind-address') ?? '0.0.0.0';
if (bind === '0.0.0.0' || bind === '::' || bind === '') {
  if (!own) log.fatal('lab: cannot find this host\'s own address in /etc/hosts');
  bind = own!; // the lab never listens on all interfaces
}
if (bind === '127.0.0.1' || bind === 'localhost') {
  log.fatal(`lab: --bind-address=${bind} is shared by every lab on this machine; the lab serves on this host's own address ${own}`);
}
if (own && bind !== own) log.fatal(`listen tcp ${bind}:${port}: bind: cannot assign requested address`);
if (flags.get('insecure-port') || flags.get('insecure-bind-address')) {
  log.info('lab: the insecure port is accepted but not served');
}

// --- authentication --------------------------------------------------------------------------------------------
interface UserInfo { username: string; uid?: string; groups: string[] }

function authenticate(req: IncomingMessage): UserInfo | 'unauthorized' | 'anonymous' {
  const sock = req.socket as TLSSocket;
  const peer = sock.getPeerCertificate();
  const hasCert = !!clientCA && !!peer && Object.keys(peer).length > 0;
  // x509 first, then tokens: the real union authenticator's order.
  if (hasCert && sock.authorized) {
    const o = peer.subject.O;
    const orgs = o === undefined ? [] : Array.isArray(o) ? o : [o];
    const cn = Array.isArray(peer.subject.CN) ? peer.subject.CN[0]! : peer.subject.CN;
    return { username: cn ?? '', groups: [...orgs, 'system:authenticated'] };
  }
  const auth = req.headers.authorization;
  const m = auth ? /^Bearer\s+(\S+)\s*$/i.exec(auth) : null;
  if (m) {
    const t = tokens.get(m[1]!);
    if (t) return { username: t.user, uid: t.uid, groups: [...t.groups, 'system:authenticated'] };
    return 'unauthorized';
  }
  if (hasCert) return 'unauthorized'; // a certificate that does not verify against --client-ca-file
  return 'anonymous';
}

function status(res: ServerResponse, code: number, reason: string, message: string) {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }) + '\n');
}

const REVIEW = /^\/apis\/authentication\.k8s\.io\/(v1|v1beta1|v1alpha1)\/selfsubjectreviews\/?$/;

const server = createServer({
  cert: serving!.cert,
  key: serving!.key,
  ...(clientCA ? { ca: clientCA } : {}),
  requestCert: !!clientCA,
  rejectUnauthorized: false,
}, (req, res) => {
  const who = authenticate(req);
  const path = (req.url ?? '/').split('?')[0]!;
  const ident = who === 'unauthorized' ? 'unauthorized' : who === 'anonymous' ? 'system:anonymous'
    : `${who.username} groups=[${who.groups.join(',')}]`;
  res.on('finish', () => {
    log.info(`${req.method} ${path} ${res.statusCode} user=${ident} remote=${req.socket.remoteAddress}:${req.socket.remotePort}`);
  });
  if (who === 'unauthorized') return status(res, 401, 'Unauthorized', 'Unauthorized');
  if (req.method === 'GET' && path === '/version') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify(versionInfo(version), null, 2) + '\n');
  }
  if (req.method === 'GET' && (path === '/healthz' || path === '/livez' || path === '/readyz')) {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    return res.end('ok');
  }
  const review = REVIEW.exec(path);
  if (review && req.method === 'POST') {
    if (who === 'anonymous') return status(res, 401, 'Unauthorized', 'Unauthorized');
    req.resume();
    res.writeHead(201, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({
      kind: 'SelfSubjectReview',
      apiVersion: `authentication.k8s.io/${review[1]}`,
      metadata: { creationTimestamp: null },
      status: { userInfo: { username: who.username, ...(who.uid ? { uid: who.uid } : {}), groups: who.groups } },
    }) + '\n');
  }
  if (who === 'anonymous') return status(res, 403, 'Forbidden', `forbidden: User "system:anonymous" cannot ${req.method?.toLowerCase()} path "${path}"`);
  return status(res, 404, 'NotFound', 'the server could not find the requested resource');
});

server.on('error', (e: NodeJS.ErrnoException) => {
  const why = e.code === 'EADDRINUSE' ? 'address already in use' : e.code === 'EADDRNOTAVAIL' ? 'cannot assign requested address' : e.message;
  log.fatal(`listen tcp ${bind}:${port}: bind: ${why}`);
});
server.on('tlsClientError', () => {}); // handshake failures are the client's problem

onSignals(() => server.close());
server.listen(port, bind, () => {
  log.info(`Serving securely on ${bind}:${port} (emulating ${version})`);
  log.ready();
});
