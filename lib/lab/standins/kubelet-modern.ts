// The modern (1.30) kubelet stand-in:
//  - serves HTTPS on --address:--port (10250) with --tls-cert-file/--tls-private-key-file (without them, a self-signed
//    pair in --cert-dir, /var/lib/kubelet/pki, as the real one makes);
//  - authenticates callers like the real one: a client certificate must verify against --client-ca-file (one that does
//    not ⇒ 401); no certificate ⇒ anonymous, refused with 401 when --anonymous-auth=false (the real default is true!);
//    authorizes with --authorization-mode: AlwaysAllow (the flag's default) or Webhook (a SubjectAccessReview to the
//    apiserver with the kubelet's own kubeconfig, 403 "Forbidden (user=…, verb=…, resource=nodes, subresource=…)");
//  - serves /healthz, /pods, /logs/ (this host's /var/log) and /containerLogs/NS/POD/C (no pods run: 404);
//  - registers its Node (POST /api/v1/nodes, name = --hostname-override, addresses Hostname + InternalIP, port) with
//    its kubeconfig identity, retried every period until it is in; and logs who it is like the legacy one.
// Lab difference: --address unset/0.0.0.0 means this host's own address; 127.0.0.1 (the distro file's default) is
// shared by every lab, so the API is then not served (logged), everything else runs.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:https';
import { hostname } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { statusMessage } from './client.ts';
import { makeLog, onSignals, ownAddress, readOrThrow, stayUp } from './common.ts';
import { PERIOD_MS, apiCall, clientConfig } from './component.ts';
import type { ParsedFlags } from './flags.ts';
import { loadKeyPair, parseCerts } from './tlsfiles.ts';

export async function runModernKubelet(flags: ParsedFlags, version: string): Promise<void> {
  const log = makeLog('kubelet');
  if (!flags.get('kubeconfig')) log.fatal('lab: kubelet needs --kubeconfig to reach the apiserver (none given)');
  const { cfg, server } = clientConfig(log, flags);
  const nodeName = (flags.get('hostname-override') || hostname()).toLowerCase();
  const own = ownAddress();
  let address = flags.get('address') ?? '0.0.0.0';
  if (address === '0.0.0.0' || address === '::' || address === '') address = own ?? '';
  const port = Number(flags.get('port') ?? '10250');
  let serving: { cert: string; key: string };
  let clientCAs: X509Certificate[] = [];
  let clientCA: string | undefined;
  try {
    const crt = flags.get('tls-cert-file');
    const key = flags.get('tls-private-key-file');
    if (crt || key) {
      if (!crt || !key) throw new Error('--tls-cert-file and --tls-private-key-file must be given together');
      serving = loadKeyPair(crt, key);
    } else {
      serving = selfSigned(flags.get('cert-dir') ?? '/var/lib/kubelet/pki', nodeName, own);
    }
    const ca = flags.get('client-ca-file');
    if (ca) {
      clientCA = readOrThrow(ca).toString('utf8');
      try {
        clientCAs = parseCerts(clientCA, ca);
      } catch (e) {
        throw new Error(`unable to load client CA file ${ca}: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    log.fatal(`"command failed" err=${JSON.stringify(`failed to run Kubelet: ${(e as Error).message}`)}`);
  }
  const anonymous = flags.get('anonymous-auth') !== 'false';
  const authzMode = flags.get('authorization-mode') ?? 'AlwaysAllow';
  if (authzMode !== 'AlwaysAllow' && authzMode !== 'Webhook') log.fatal(`"command failed" err="unknown authorization mode ${authzMode}"`);

  // --- the kubelet API ---------------------------------------------------------------------------------------------
  const srv = createServer({ cert: serving!.cert, key: serving!.key, requestCert: true, rejectUnauthorized: false,
    ...(clientCA ? { ca: clientCA } : {}) }, (req, res) => {
    void (async () => {
      const sock = req.socket as TLSSocket;
      const peer = sock.getPeerCertificate();
      const path = (req.url ?? '/').split('?')[0]!;
      let user: { name: string; groups: string[] } | undefined;
      if (peer && Object.keys(peer).length > 0) {
        const leaf = new X509Certificate(peer.raw);
        if (!clientCAs.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey))) {
          return reply(401, 'Unauthorized');
        }
        const o = peer.subject.O;
        user = { name: String(peer.subject.CN ?? ''), groups: [...(o === undefined ? [] : Array.isArray(o) ? o : [o]), 'system:authenticated'] };
      } else if (anonymous) {
        user = { name: 'system:anonymous', groups: ['system:unauthenticated'] };
      } else {
        return reply(401, 'Unauthorized');
      }
      const sub = /^\/stats(\/|$)/.test(path) ? 'stats' : /^\/metrics(\/|$)/.test(path) ? 'metrics'
        : /^\/logs(\/|$)/.test(path) ? 'log' : /^\/spec(\/|$)/.test(path) ? 'spec' : 'proxy';
      const verb = ({ GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' } as Record<string, string>)[req.method ?? 'GET'] ?? 'get';
      if (authzMode === 'Webhook') {
        let allowed = false;
        try {
          const r = await apiCall(cfg, server, 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
            apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
            spec: { user: user.name, groups: user.groups, resourceAttributes: { verb, resource: 'nodes', subresource: sub, name: nodeName } },
          });
          allowed = r.status === 201 && r.json().status?.allowed === true;
          if (r.status !== 201) log.error(`"Authorization error" user=${JSON.stringify(user.name)} err=${JSON.stringify(statusMessage(r))}`);
        } catch (e) {
          log.error(`"Authorization error" user=${JSON.stringify(user.name)} err=${JSON.stringify((e as Error).message)}`);
        }
        if (!allowed) return reply(403, `Forbidden (user=${user.name}, verb=${verb}, resource=nodes, subresource=${sub})`);
      }
      log.info(`${req.method} ${path} user=${user.name}`);
      if (path === '/healthz') return reply(200, 'ok');
      if (path === '/pods' || path === '/pods/') {
        return reply(200, JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: {}, items: [] }), 'application/json');
      }
      if (path === '/logs' || path === '/logs/') {
        const names = readdirSync('/var/log', { withFileTypes: true }).map((d) => d.name + (d.isDirectory() ? '/' : ''));
        return reply(200, `<pre>\n${names.map((n) => `<a href="${n}">${n}</a>`).join('\n')}\n</pre>\n`, 'text/html; charset=utf-8');
      }
      const logFile = /^\/logs\/([A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*)$/.exec(path)?.[1];
      if (logFile && !logFile.split('/').includes('..') && existsSync(`/var/log/${logFile}`)) {
        try {
          return reply(200, readFileSync(`/var/log/${logFile}`, 'utf8'));
        } catch { /* a folder, unreadable: not found */ }
      }
      const cl = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(path);
      if (cl) return reply(404, `pod ${cl[1]}/${cl[2]} not found`);
      return reply(404, '404 page not found');
    })().catch((e) => reply(500, (e as Error).message));
    function reply(code: number, body: string, type = 'text/plain; charset=utf-8') {
      if (code >= 400) log.info(`${req.method} ${(req.url ?? '/').split('?')[0]} ${code}`);
      res.writeHead(code, { 'Content-Type': type });
      res.end(body.endsWith('\n') || type !== 'text/plain; charset=utf-8' ? body : `${body}\n`);
    }
  });
  srv.on('tlsClientError', () => {}); // the caller's problem
  const servable = !!address && address !== '127.0.0.1' && address !== 'localhost';
  if (!servable) {
    log.warn(`lab: --address=${address || '(none)'} is shared by every lab on this machine; the kubelet API is not served`);
  } else {
    await new Promise<void>((resolve) => {
      srv.once('error', (e: NodeJS.ErrnoException) => {
        const why = e.code === 'EADDRINUSE' ? 'address already in use' : e.code === 'EADDRNOTAVAIL' ? 'cannot assign requested address' : e.message;
        log.fatal(`"Failed to listen and serve" err="listen tcp ${address}:${port}: bind: ${why}"`);
      });
      srv.listen(port, address, () => resolve());
    });
    log.info(`Starting to listen on ${address}:${port} (emulating ${version})`);
  }

  // --- who am I, and the Node object ------------------------------------------------------------------------------
  log.info(`Started kubelet (emulating ${version}), apiserver ${server}, node ${nodeName}`);
  let stopped = false;
  onSignals(() => {
    stopped = true;
    srv.close();
  });
  const nodeIp = flags.get('node-ip') || (servable ? address : own) || '';
  const nodeObject = {
    apiVersion: 'v1', kind: 'Node',
    metadata: { name: nodeName, labels: { 'kubernetes.io/hostname': nodeName, 'kubernetes.io/os': 'linux' } },
    status: {
      addresses: [{ type: 'InternalIP', address: nodeIp }, { type: 'Hostname', address: nodeName }],
      daemonEndpoints: { kubeletEndpoint: { Port: port } },
      nodeInfo: { kubeletVersion: version },
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }],
    },
  };
  let registered = false;
  let last = '';
  const round = async () => {
    const out: ['info' | 'error', string][] = [];
    try {
      const who = await apiCall(cfg, server, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews',
        { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
      if (who.status === 201) {
        const info = who.json().status.userInfo;
        out.push(['info', `authenticated as ${info.username} groups=[${(info.groups ?? []).join(',')}]`]);
      } else {
        out.push(['error', `authentication failed: ${who.status === 401 ? 'Unauthorized' : statusMessage(who)}`]);
      }
      if (!registered && flags.get('register-node') !== 'false') {
        const r = await apiCall(cfg, server, 'POST', '/api/v1/nodes', nodeObject);
        if (r.status === 201 || r.status === 409) {
          registered = true;
          out.push(['info', r.status === 201 ? `"Successfully registered node" node=${JSON.stringify(nodeName)}` : `"Node was previously registered" node=${JSON.stringify(nodeName)}`]);
        } else {
          out.push(['error', `"Unable to register node with API server" err=${JSON.stringify(r.status === 401 ? 'Unauthorized' : statusMessage(r))} node=${JSON.stringify(nodeName)}`]);
        }
      }
    } catch (e) {
      out.push(['error', `authentication failed: ${(e as Error).message}`]);
    }
    const key = out.map((x) => x.join(' ')).join('\n');
    if (key !== last || out.some(([level]) => level === 'error')) for (const [level, msg] of out) log[level](msg);
    last = key;
  };
  await round();
  log.ready();
  const again = async () => {
    if (stopped) return;
    await round();
    setTimeout(again, PERIOD_MS);
  };
  setTimeout(again, PERIOD_MS);
  stayUp();
}

/** The real kubelet's fallback: a self-signed serving pair in --cert-dir (kubelet.crt/kubelet.key). */
function selfSigned(certDir: string, name: string, addr: string | undefined): { cert: string; key: string } {
  const crt = `${certDir}/kubelet.crt`;
  const key = `${certDir}/kubelet.key`;
  if (!existsSync(crt) || !existsSync(key)) {
    mkdirSync(certDir, { recursive: true });
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', crt, '-days', '365', '-subj', `/CN=${name}@${Math.floor(Date.now() / 1000)}`,
      '-addext', `subjectAltName=DNS:${name}${addr ? `,IP:${addr}` : ''}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`unable to generate self signed cert: ${r.stderr}`);
  }
  return loadKeyPair(crt, key);
}
