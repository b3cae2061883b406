// What the modern (1.30) kube-apiserver stand-in adds to the legacy one, so that the lab can tell a working control
// plane from a broken one (issue 9):
//  - etcd: at start, one real TLS request to etcd (v3 JSON gateway) with --etcd-cafile/--etcd-certfile/--etcd-keyfile;
//    no answer ⇒ grpc's warnings + `"command failed" err="context deadline exceeded"`, exit 1. Nodes live in etcd
//    (/registry/minions/NAME, JSON), so a broken etcd credential shows in every node read afterwards too.
//  - --requestheader-client-ca-file / --proxy-client-cert-file/-key-file and --kubelet-client-* must load at start.
//  - authorization: authz.ts (Node, RBAC, AlwaysAllow, AlwaysDeny) and the NodeRestriction admission rule.
//  - resources: nodes (and a few kinds a component lists) in etcd; discovery; self/subject access reviews;
//    nodes/NAME/proxy/PATH to the kubelet with --kubelet-client-certificate, verified against
//    --kubelet-certificate-authority for the name the apiserver dials (the node's Hostname address).
import { X509Certificate, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent } from 'node:https';
import { call, GoError } from './client.ts';
import { Etcd, EtcdFailure } from './etcd.ts';
import { MODES, authorize, forbiddenMessage, nodeOf, requestAttrs, setStoredBindings, type Attrs } from './authz.ts';
import type { ParsedFlags } from './flags.ts';
import { readOrThrow, type makeLog } from './common.ts';
import { loadKeyPair, parseCerts } from './tlsfiles.ts';

type Log = ReturnType<typeof makeLog>;
export interface UserInfo { username: string; uid?: string; groups: string[] }

export interface Modern {
  etcd: Etcd;
  modes: string[];
  nodeRestriction: boolean;
  anonymous: boolean;
  kubelet: { cert?: string; key?: string; ca?: string; agent: Agent };
  requestheader?: { pem: string; cas: X509Certificate[]; allowedNames: string[]; userHeaders: string[]; groupHeaders: string[] };
  address: string;
}

const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Check the modern-only files and flags, reach etcd; exits 1 like the real binary when something is wrong. */
export async function setupModern(flags: ParsedFlags, log: Log, address: string): Promise<Modern> {
  const fail = (err: string): never => {
    log.error(`"command failed" err=${JSON.stringify(err)}`);
    process.exit(1);
  };
  const modes = list(flags.get('authorization-mode') ?? 'AlwaysAllow');
  for (const m of modes) if (!MODES.includes(m)) fail(`authorization-mode ${JSON.stringify(m)} is not a valid mode`);
  let requestheader: Modern['requestheader'];
  const kubelet: Modern['kubelet'] = { agent: new Agent({ keepAlive: true, maxSockets: 8 }) };
  const tls: { ca?: string; cert?: string; key?: string } = {};
  try {
    const rhCa = flags.get('requestheader-client-ca-file');
    if (rhCa) {
      const pem = readOrThrow(rhCa).toString('utf8');
      let cas: X509Certificate[];
      try {
        cas = parseCerts(pem, rhCa);
      } catch (e) {
        throw new Error(`unable to load requestheader client CA file ${rhCa}: ${(e as Error).message}`);
      }
      requestheader = {
        pem, cas, allowedNames: list(flags.get('requestheader-allowed-names')),
        userHeaders: list(flags.get('requestheader-username-headers')).map((h) => h.toLowerCase()),
        groupHeaders: list(flags.get('requestheader-group-headers')).map((h) => h.toLowerCase()),
      };
    }
    const pc = flags.get('proxy-client-cert-file');
    const pk = flags.get('proxy-client-key-file');
    if (!!pc !== !!pk) throw new Error('--proxy-client-cert-file and --proxy-client-key-file must be specified together');
    if (pc && pk) {
      try {
        loadKeyPair(pc, pk);
      } catch (e) {
        throw new Error(`failed to load proxy client cert/key pair: ${(e as Error).message}`);
      }
    }
    const kc = flags.get('kubelet-client-certificate');
    const kk = flags.get('kubelet-client-key');
    if (kc && kk) {
      const pair = loadKeyPair(kc, kk);
      kubelet.cert = pair.cert;
      kubelet.key = pair.key;
    }
    const kca = flags.get('kubelet-certificate-authority');
    if (kca) {
      kubelet.ca = readOrThrow(kca).toString('utf8');
      parseCerts(kubelet.ca, kca);
    }
    const ecf = flags.get('etcd-cafile');
    if (ecf) {
      tls.ca = readOrThrow(ecf).toString('utf8');
      parseCerts(tls.ca, ecf);
    }
    const ec = flags.get('etcd-certfile');
    const ek = flags.get('etcd-keyfile');
    if (ec || ek) {
      if (!ec || !ek) throw new Error('--etcd-certfile and --etcd-keyfile must be given together');
      const pair = loadKeyPair(ec, ek);
      tls.cert = pair.cert;
      tls.key = pair.key;
    }
  } catch (e) {
    fail((e as Error).message);
  }
  const etcd = new Etcd(list(flags.get('etcd-servers')), tls);
  // The real one retries its gRPC connection until the storage health check gives up; the lab tries for ~3 s.
  const deadline = Date.now() + 3000;
  for (let attempt = 0; ; attempt++) {
    try {
      const keys = await etcd.check();
      log.info(`etcd: connected to ${etcd.endpoints.join(',')} (${keys} keys under /registry/)`);
      break;
    } catch (e) {
      if (!(e instanceof EtcdFailure)) fail((e as Error).message);
      if (Date.now() > deadline || attempt >= 4) {
        for (const line of (e as EtcdFailure).lines()) log.warn(line);
        fail('context deadline exceeded');
      }
      await sleep(500);
    }
  }
  const admission = list(flags.get('enable-admission-plugins'));
  return {
    etcd, modes, requestheader, kubelet, address,
    nodeRestriction: admission.includes('NodeRestriction'),
    anonymous: flags.get('anonymous-auth') !== 'false',
  };
}

/** A client certificate signed by the front-proxy CA, with an allowed CN: the user named in the request headers. */
export function requestHeaderUser(m: Modern, req: IncomingMessage, peer: X509Certificate | undefined): UserInfo | 'unauthorized' | undefined {
  const rh = m.requestheader;
  if (!rh || !peer || !rh.cas.some((ca) => peer.checkIssued(ca) && peer.verify(ca.publicKey))) return undefined;
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(peer.subject)?.[1] ?? '';
  if (rh.allowedNames.length && !rh.allowedNames.includes(cn)) return 'unauthorized';
  const name = rh.userHeaders.map((h) => req.headers[h]).find((v) => typeof v === 'string' && v);
  if (!name) return undefined;
  const groups = rh.groupHeaders.flatMap((h) => {
    const v = req.headers[h];
    return Array.isArray(v) ? v : v ? [v] : [];
  });
  return { username: String(name), groups: [...groups, 'system:authenticated'] };
}

// --- resources ------------------------------------------------------------------------------------------------
interface Kind { kind: string; namespaced: boolean; prefix: string }
const RESOURCES: Record<string, Kind> = {
  '/v1/nodes': { kind: 'Node', namespaced: false, prefix: '/registry/minions/' },
  '/v1/namespaces': { kind: 'Namespace', namespaced: false, prefix: '/registry/namespaces/' },
  '/v1/pods': { kind: 'Pod', namespaced: true, prefix: '/registry/pods/' },
  '/v1/services': { kind: 'Service', namespaced: true, prefix: '/registry/services/specs/' },
  '/v1/endpoints': { kind: 'Endpoints', namespaced: true, prefix: '/registry/services/endpoints/' },
  '/v1/configmaps': { kind: 'ConfigMap', namespaced: true, prefix: '/registry/configmaps/' },
  'discovery.k8s.io/v1/endpointslices': { kind: 'EndpointSlice', namespaced: true, prefix: '/registry/endpointslices/' },
  'coordination.k8s.io/v1/leases': { kind: 'Lease', namespaced: true, prefix: '/registry/leases/' },
  // the bindings an operator (kubetls: lib/rbac.ts) adds to the default policy; RBAC reads them (authz.ts)
  'rbac.authorization.k8s.io/v1/clusterrolebindings': { kind: 'ClusterRoleBinding', namespaced: false, prefix: '/registry/clusterrolebindings/' },
};
const GROUPS = ['discovery.k8s.io/v1', 'coordination.k8s.io/v1', 'authentication.k8s.io/v1', 'authorization.k8s.io/v1', 'rbac.authorization.k8s.io/v1'];

/** The stored ClusterRoleBindings, read again from etcd at most once a second (what the real RBAC informer keeps). */
let bindingsReadAt = 0;
async function refreshBindings(m: Modern, force = false): Promise<void> {
  if (!force && Date.now() - bindingsReadAt < 1000) return;
  try {
    setStoredBindings((await m.etcd.list(RESOURCES['rbac.authorization.k8s.io/v1/clusterrolebindings']!.prefix)).map((kv) => JSON.parse(kv.value)));
    bindingsReadAt = Date.now();
  } catch { /* etcd down: keep the last ones, as an informer would */ }
}

function send(res: ServerResponse, code: number, obj: unknown) {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(obj) + '\n');
}

export function status(res: ServerResponse, code: number, reason: string, message: string, details?: Record<string, string>) {
  send(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, ...(reason ? { reason } : {}), ...(details ? { details } : {}), code });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c) => {
      text += c;
      if (text.length > 1 << 20) req.destroy(new Error('request body too large'));
    });
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

function merge(a: any, b: any): any {
  if (!b || typeof b !== 'object' || Array.isArray(b) || !a || typeof a !== 'object' || Array.isArray(a)) return b;
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = v === null ? undefined : merge(a[k], v);
  return out;
}

function discovery(path: string, m: Modern): unknown | undefined {
  if (path === '/api') {
    return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: m.address }] };
  }
  if (path === '/apis') {
    return {
      kind: 'APIGroupList', apiVersion: 'v1', groups: GROUPS.map((gv) => {
        const [name, version] = gv.split('/') as [string, string];
        const v = { groupVersion: gv, version };
        return { name, versions: [v], preferredVersion: v };
      }),
    };
  }
  const gv = path === '/api/v1' ? '' : /^\/apis\/([^/]+\/[^/]+)$/.exec(path)?.[1];
  if (gv === undefined || (gv && !GROUPS.includes(gv))) return undefined;
  const resources = Object.entries(RESOURCES).filter(([k]) => k.startsWith(gv ? `${gv.split('/')[0]}/` : '/')).map(([k, kind]) => ({
    name: k.split('/').pop(), singularName: '', namespaced: kind.namespaced, kind: kind.kind,
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
  }));
  if (gv === 'authentication.k8s.io/v1') resources.push({ name: 'selfsubjectreviews', singularName: '', namespaced: false, kind: 'SelfSubjectReview', verbs: ['create'] });
  if (gv === 'authorization.k8s.io/v1') {
    for (const [name, kind] of [['selfsubjectaccessreviews', 'SelfSubjectAccessReview'], ['subjectaccessreviews', 'SubjectAccessReview']] as const) {
      resources.push({ name, singularName: '', namespaced: false, kind, verbs: ['create'] });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv || 'v1', resources };
}

/** etcd trouble on a request: the real apiserver answers 500 (or times out) with the storage error. */
function storageError(res: ServerResponse, e: unknown) {
  status(res, 500, 'InternalError', `Internal error occurred: ${(e as Error).message}`);
}

/** The SubjectAccessReview spec → attributes. */
function reviewAttrs(spec: any, who: { user: string; groups: string[] }): Attrs {
  const ra = spec?.resourceAttributes;
  if (ra) {
    return {
      ...who, verb: String(ra.verb ?? ''), resourceRequest: true, apiGroup: String(ra.group ?? ''), apiVersion: String(ra.version ?? ''),
      resource: String(ra.resource ?? ''), subresource: String(ra.subresource ?? ''), name: String(ra.name ?? ''),
      namespace: String(ra.namespace ?? ''), path: '',
    };
  }
  const nr = spec?.nonResourceAttributes ?? {};
  return { ...who, verb: String(nr.verb ?? ''), resourceRequest: false, apiGroup: '', apiVersion: '', resource: '', subresource: '', name: '', namespace: '', path: String(nr.path ?? '') };
}

/** Serve one request of the modern apiserver (authentication already done). */
export async function handleModern(m: Modern, req: IncomingMessage, res: ServerResponse, who: UserInfo | 'anonymous', version: unknown): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://x');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const method = (req.method ?? 'GET').toUpperCase();
  if (who === 'anonymous' && !m.anonymous) return status(res, 401, 'Unauthorized', 'Unauthorized');
  const ident = who === 'anonymous' ? { user: 'system:anonymous', groups: ['system:unauthenticated'] } : { user: who.username, groups: who.groups };
  const a = requestAttrs(method, path, url.searchParams, ident);
  await refreshBindings(m);
  // SelfSubjectReview: the lab answers 401 to an anonymous one on both versions (the legacy stand-in always did)
  if (who === 'anonymous' && /^\/apis\/authentication\.k8s\.io\/[^/]+\/selfsubjectreviews$/.test(path)) {
    return status(res, 401, 'Unauthorized', 'Unauthorized');
  }
  if (!authorize(m.modes, a)) {
    const details = a.resourceRequest ? { ...(a.name ? { name: a.name } : {}), group: a.apiGroup, kind: a.resource } : undefined;
    return status(res, 403, 'Forbidden', forbiddenMessage(a), details);
  }
  if (!a.resourceRequest) {
    if (method === 'GET' && path === '/version') return send(res, 200, version);
    if (method === 'GET' && (path === '/healthz' || path === '/readyz' || path === '/livez')) {
      if (path === '/livez') return void res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end('ok');
      try {
        await m.etcd.check();
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
        return void res.end('ok');
      } catch {
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
        return void res.end('[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[+]poststarthook/start-apiextensions-informers ok\n' +
          `${path.slice(1)} check failed\n`);
      }
    }
    const d = method === 'GET' ? discovery(path, m) : undefined;
    if (d) return send(res, 200, d);
    return status(res, 404, 'NotFound', 'the server could not find the requested resource');
  }
  const body = ['POST', 'PUT', 'PATCH'].includes(method) ? await readBody(req) : '';
  const gvr = `${a.apiGroup}/${a.apiVersion}/${a.resource}`;
  // reviews
  if (gvr === 'authentication.k8s.io/v1/selfsubjectreviews' || /^authentication\.k8s\.io\/v1(alpha1|beta1)\/selfsubjectreviews$/.test(gvr)) {
    if (who === 'anonymous') return status(res, 401, 'Unauthorized', 'Unauthorized');
    return send(res, 201, {
      kind: 'SelfSubjectReview', apiVersion: `authentication.k8s.io/${a.apiVersion}`, metadata: { creationTimestamp: null },
      status: { userInfo: { username: who.username, ...(who.uid ? { uid: who.uid } : {}), groups: who.groups } },
    });
  }
  if (method === 'POST' && (gvr === 'authorization.k8s.io/v1/selfsubjectaccessreviews' || gvr === 'authorization.k8s.io/v1/subjectaccessreviews')) {
    let review: any;
    try {
      review = JSON.parse(body || '{}');
    } catch (e) {
      return status(res, 400, 'BadRequest', `error decoding request body: ${(e as Error).message}`);
    }
    const self = a.resource === 'selfsubjectaccessreviews';
    const subject = self ? ident : { user: String(review?.spec?.user ?? ''), groups: Array.isArray(review?.spec?.groups) ? review.spec.groups.map(String) : [] };
    const allowed = authorize(m.modes, reviewAttrs(review?.spec, subject));
    return send(res, 201, { ...review, kind: self ? 'SelfSubjectAccessReview' : 'SubjectAccessReview', apiVersion: 'authorization.k8s.io/v1', status: { allowed } });
  }
  const kind = RESOURCES[gvr];
  if (!kind) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
  if (a.resource === 'nodes' && a.subresource === 'proxy') return proxyToKubelet(m, req, res, a, url, body);
  if (a.subresource && a.subresource !== 'status') return status(res, 404, 'NotFound', 'the server could not find the requested resource');
  const qualified = a.apiGroup ? `${a.resource}.${a.apiGroup}` : a.resource;
  const apiVersion = a.apiGroup ? `${a.apiGroup}/${a.apiVersion}` : a.apiVersion;
  // NodeRestriction (admission, when enabled): a node may only create/modify its own Node object
  const node = nodeOf(a);
  let obj: any;
  if (body) {
    try {
      obj = JSON.parse(body);
    } catch (e) {
      return status(res, 400, 'BadRequest', `error decoding request body: ${(e as Error).message}`);
    }
  }
  const name = a.name || (a.verb === 'create' ? String(obj?.metadata?.name ?? '') : '');
  if (m.nodeRestriction && node && a.resource === 'nodes' && ['create', 'update', 'patch', 'delete'].includes(a.verb) && name !== node) {
    return status(res, 403, 'Forbidden', `${qualified} ${JSON.stringify(name)} is forbidden: node ${JSON.stringify(node)} is not allowed to modify node ${JSON.stringify(name)}`,
      { name, kind: a.resource });
  }
  if (kind.namespaced && !a.namespace && a.verb !== 'list' && a.verb !== 'watch') {
    return status(res, 404, 'NotFound', 'the server could not find the requested resource');
  }
  const key = (n: string) => `${kind.prefix}${kind.namespaced ? `${a.namespace}/` : ''}${n}`;
  const notFound = () => status(res, 404, 'NotFound', `${qualified} ${JSON.stringify(name)} not found`, { name, group: a.apiGroup, kind: a.resource });
  try {
    switch (a.verb) {
      case 'list':
      case 'watch': {
        const items = (await m.etcd.list(kind.namespaced && a.namespace ? `${kind.prefix}${a.namespace}/` : kind.prefix)).map((kv) => JSON.parse(kv.value));
        return send(res, 200, { kind: `${kind.kind}List`, apiVersion, metadata: { resourceVersion: '' }, items });
      }
      case 'get': {
        const v = await m.etcd.get(key(name));
        return v === undefined ? notFound() : send(res, 200, JSON.parse(v));
      }
      case 'create': {
        if (!name) return status(res, 422, 'Invalid', `${kind.kind} "" is invalid: metadata.name: Required value: name or generateName is required`);
        if ((await m.etcd.get(key(name))) !== undefined) {
          return status(res, 409, 'AlreadyExists', `${qualified} ${JSON.stringify(name)} already exists`, { name, group: a.apiGroup, kind: a.resource });
        }
        const created = {
          ...obj, kind: kind.kind, apiVersion,
          metadata: { ...obj.metadata, name, ...(kind.namespaced ? { namespace: a.namespace } : {}), uid: randomUUID(), creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
        };
        await m.etcd.put(key(name), JSON.stringify(created));
        if (a.resource === 'clusterrolebindings') await refreshBindings(m, true);
        return send(res, 201, created);
      }
      case 'update':
      case 'patch': {
        const old = await m.etcd.get(key(name));
        if (old === undefined) return notFound();
        const cur = JSON.parse(old);
        const next = a.verb === 'patch' ? merge(cur, obj)
          : a.subresource === 'status' ? { ...cur, status: obj?.status } : { ...obj, metadata: { ...cur.metadata, ...obj?.metadata } };
        await m.etcd.put(key(name), JSON.stringify(next));
        return send(res, 200, next);
      }
      case 'delete': {
        if ((await m.etcd.delete(key(name))) === 0) return notFound();
        if (a.resource === 'clusterrolebindings') await refreshBindings(m, true);
        return send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, kind: a.resource } });
      }
    }
  } catch (e) {
    return storageError(res, e);
  }
  return status(res, 405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
}

/**
 * nodes/NAME/proxy/PATH: dial the node's Hostname address (kube-apiserver's default --kubelet-preferred-address-types
 * starts with Hostname), port from status.daemonEndpoints, with the kubelet client certificate; verify the kubelet's
 * serving certificate against --kubelet-certificate-authority for that name (without the flag the real one does not
 * verify at all). A transport error is answered as the real one does through its error responder: a Status with
 * code 500 and the Go error as the message.
 */
async function proxyToKubelet(m: Modern, req: IncomingMessage, res: ServerResponse, a: Attrs, url: URL, body: string): Promise<void> {
  const [nodeName] = a.name.split(':');
  let nodeJson: string | undefined;
  try {
    nodeJson = await m.etcd.get(`/registry/minions/${nodeName}`);
  } catch (e) {
    return storageError(res, e);
  }
  if (nodeJson === undefined) return status(res, 404, 'NotFound', `nodes ${JSON.stringify(nodeName)} not found`, { name: nodeName!, kind: 'nodes' });
  const node = JSON.parse(nodeJson);
  const addrs: { type: string; address: string }[] = node.status?.addresses ?? [];
  const host = ['Hostname', 'InternalDNS', 'InternalIP', 'ExternalDNS', 'ExternalIP'].map((t) => addrs.find((x) => x.type === t)?.address).find(Boolean);
  if (!host) return status(res, 503, 'ServiceUnavailable', `no preferred addresses found; known addresses: []`);
  const port = Number(a.name.split(':')[1] ?? node.status?.daemonEndpoints?.kubeletEndpoint?.Port ?? 10250);
  const rest = url.pathname.replace(/^.*?\/proxy(?=\/|$)/, '') || '/';
  const target = `https://${host}:${port}${rest}${url.search}`;
  try {
    const r = await call(target, {
      method: req.method, body: body || undefined, agent: m.kubelet.agent, timeoutMs: 10000,
      tls: { ca: m.kubelet.ca, cert: m.kubelet.cert, key: m.kubelet.key }, insecure: !m.kubelet.ca,
    });
    res.writeHead(r.status, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(r.body);
  } catch (e) {
    const reason = e instanceof GoError ? e.reason : (e as Error).message;
    status(res, 500, '', reason);
  }
}
