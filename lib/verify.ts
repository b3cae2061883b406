/**
 * docs/recipe.md steps 19–20, without `-k`: the apiserver is verified against ca.crt for the master's name, each credential
 * must be accepted, and must be given the identity it was made for (a 200 from /version alone proves nothing: a real
 * apiserver serves it anonymously). Plus: what is deployed on each host is what the local PKI holds.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { APPROVER_USER, leafSpecs } from '../config/certs.ts';
import { TOKEN_USER, minionIdentity } from '../config/profiles.ts';
import { ETCD_CLIENT_PORT, KUBELET_PORT } from '../config/profiles.ts';
import { getVar } from './envfile.ts';
import { apiTarget, type ApiTarget, type Host, type Inventory, kubeletApi, masterTarget, urlOf } from './inventory.ts';
import { log, shown } from './log.ts';
import { checkLeaf } from './pki/check.ts';
import { readCert } from './pki/read.ts';
import { rotationStatus } from './kubelet-own.ts';
import { readToken } from './pki/token.ts';
import { clientTrust } from './pki/trust.ts';
import { apiRequest, httpsGet, readServed, servedCert, type Credential } from './probe.ts';
import type { Remote } from './remote/remote.ts';
import { envFor, finishHint, isSecret, kubeconfigContent, kubeconfigsFor, modeProblem, pkiFilesFor, restartMarkers } from './rollout/desired.ts';

export interface Result { check: string; target: string; ok: boolean; detail: string }

const REVIEW = '/apis/authentication.k8s.io/v1/selfsubjectreviews';

/** One GET to a kubelet's API (:10250) with a client certificate, its serving certificate verified for the node's name. */
export function kubeletGet(node: { name: string; address: string }, urlPath: string, ca: Buffer, cred: Credential, timeoutMs = 5000):
  Promise<{ status: number; body: string }> {
  return httpsGet({ host: node.address, port: KUBELET_PORT, servername: node.name, path: urlPath, ca, cert: cred.cert, key: cred.key,
    headers: { host: `${node.name}:${KUBELET_PORT}` } }, timeoutMs);
}

/** Who the apiserver says this credential is (what `kubectl auth whoami` asks). */
export async function whoami(inv: Inventory, cred: Credential, t: ApiTarget = apiTarget(inv)): Promise<{ username: string; groups: string[] }> {
  const r = await apiRequest(inv, 'POST', REVIEW, cred, { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }, 5000, t);
  const info = (r.json as { status?: { userInfo?: { username?: string; groups?: string[] } } })?.status?.userInfo;
  if (r.status >= 300 || !info?.username) throw new Error(`self-subject review: HTTP ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`);
  return { username: info.username, groups: info.groups ?? [] };
}

async function attempt(check: string, target: string, fn: () => Promise<string>): Promise<Result> {
  try {
    return { check, target, ok: true, detail: await fn() };
  } catch (e) {
    return { check, target, ok: false, detail: (e as Error).message };
  }
}

/**
 * Steps 19 and 20 from where kubetls runs: the certificate each master serves, then each minion's certificate and the
 * token, through the balancer when there is one (as the kubelets reach the apiserver). With `master` (renew.ts, right
 * after restarting it): everything at that master, so that its own new files are judged, not whichever master the
 * balancer picks (during a token rotation the masters not rolled yet do not know the new token).
 */
export async function apiChecks(inv: Inventory, minions: Host[], master?: Host): Promise<Result[]> {
  const pki = (f: string) => path.join(inv.pki.dir, f);
  const api = master ? masterTarget(inv, master) : apiTarget(inv);
  const url = urlOf(api);
  const resolveFlag = `${api.name}:${api.port}:${api.address}`;
  const results: Result[] = [];
  const targets = master ? [api] : [...inv.masters.map((m) => masterTarget(inv, m)), ...(inv.apiserver.endpoint ? [api] : [])];
  for (const t of targets) {
    results.push(await attempt('served certificate', `${t.name}:${t.port}`, async () => {
      const served = await servedCert(inv, t);
      const local = readCert(pki('server.crt'))!;
      if (served.fingerprint !== local.fingerprint) throw new Error(`serves serial ${served.serial}, local server.crt is ${local.serial}`);
      return `serial ${served.serial} = local server.crt, verified for ${t.name}${t === api && !master ? ' (through the balancer)' : ''}`;
    }));
  }
  // api: kubetls holds no node's certificate (each kubelet has its own: modernChecks asks what it serves)
  const creds: [string, Credential, string, string[]][] = (kubeletApi(inv) ? [] : minions).map((m) => {
    const want = minionIdentity(inv.profile, m.name);
    log.cmd(['curl', '--cacert', pki('ca.crt'), '--cert', pki(`${m.name}.crt`), '--key', pki(`${m.name}.key`), '--resolve', resolveFlag, `${url}/version`]);
    return [`cert ${m.name}`, { cert: readFileSync(pki(`${m.name}.crt`)), key: readFileSync(pki(`${m.name}.key`)) }, want.cn, want.o ? [want.o] : []];
  });
  const token = readToken(inv);
  if (token) {
    log.action(`curl --cacert ${shown(pki('ca.crt'))} -H "Authorization: Bearer \${TOKEN}" --resolve ${resolveFlag} ${url}/version`);
    creds.push(['token', { token }, TOKEN_USER, []]);
  } else {
    results.push({ check: 'token', target: 'tokens.csv', ok: false, detail: 'no valid tokens.csv in the PKI folder' });
  }
  for (const [name, cred, user, groups] of creds) {
    results.push(await attempt('GET /version', name, async () => {
      const r = await apiRequest(inv, 'GET', '/version', cred, undefined, 5000, api);
      const v = (r.json as { gitVersion?: string })?.gitVersion;
      if (r.status !== 200 || !v) throw new Error(`HTTP ${r.status}`);
      return `HTTP 200, ${v}`;
    }));
    results.push(await attempt('whoami', name, async () => {
      const who = await whoami(inv, cred, api);
      if (who.username !== user) throw new Error(`authenticated as ${who.username}, expected ${user}`);
      const missing = groups.filter((g) => !who.groups.includes(g));
      if (missing.length) throw new Error(`groups ${who.groups.join(',')} lack ${missing.join(',')}`);
      return `${who.username} [${who.groups.join(', ')}]`;
    }));
  }
  return results;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** On one host: every deployed certificate equals the local one, chains to the CA, is in date; minions: the kubeconfig too. */
export async function deployedChecks(inv: Inventory, r: Remote): Promise<Result[]> {
  const out: Result[] = [];
  const ca = readCert(path.join(inv.pki.dir, 'ca.crt'));
  const specs = leafSpecs(inv);
  const files = pkiFilesFor(inv, r.host);
  const kcs = kubeconfigsFor(inv, r.host).map((k) => ({ k, remote: k.path.replace('{remote}', inv.pki.remoteDir) }));
  const markers = restartMarkers(inv, r.host);
  const state = await r.inspect([...files.map(([, remote]) => remote), ...kcs.map((x) => x.remote), ...markers.map(([, p]) => p)]);
  const hint = finishHint(inv, r.host);
  for (const [local, remote, bytes, mode] of files) {
    const target = `${r.host.name}:${remote}`;
    const st = state.get(remote);
    const want = sha(bytes()); // a trust bundle during a CA rotation
    if (!st) { out.push({ check: 'deployed', target, ok: false, detail: 'missing' }); continue; }
    if (st.sha256 !== want) { out.push({ check: 'deployed', target, ok: false, detail: 'differs from the local PKI' }); continue; }
    let detail = `= ${shown(local)}, ${st.owner}:${st.group} ${st.mode.toString(8).padStart(4, '0')}`;
    // a key others can read, or with an owner its service cannot read it as, is not deployed as kubetls deploys it
    const perm = modeProblem(st, mode, isSecret(local));
    let ok = !perm;
    if (perm) detail += `: ${perm.insecure ? `insecure mode ${perm.insecure}, expected ${mode.owner}:${mode.group} 0${mode.mode.toString(8)}` : perm.drift} (${hint})`;
    if (local.endsWith('.crt') && !local.endsWith('ca.crt')) {
      const spec = specs.find((s) => local.endsWith(`/${s.name}.crt`));
      const c = spec ? checkLeaf(inv, spec, ca) : undefined;
      if (c) {
        ok &&= c.status === 'ok';
        detail += `, ${c.status === 'ok' ? `chain ok, expires in ${c.daysLeft} d` : c.reasons.join('; ')}`;
        if (spec?.kind === 'server') detail += `, SANs ${c.info?.sans.join(',')}`;
      }
    }
    out.push({ check: 'deployed', target, ok, detail });
  }
  // every variable kubetls sets: a service started with other flags (kube-proxy pointed at the kubelet's identity, an
  // etcd endpoint edited by hand) is configuration drift, whatever the certificates say
  for (const e of envFor(inv, r.host)) {
    const target = `${r.host.name}:${e.path}`;
    const text = await r.read(e.path).catch((err: Error) => err);
    if (text instanceof Error || !text) { out.push({ check: 'configured', target, ok: false, detail: text instanceof Error ? text.message : 'missing' }); continue; }
    const wrong = Object.entries(e.vars).filter(([k, v]) => getVar(text, k) !== v).map(([k]) => k);
    out.push(wrong.length
      ? { check: 'configured', target, ok: false, detail: `${wrong.map((k) => `${k}="${getVar(text, k) ?? ''}"`).join(', ')} differ from what kubetls sets (${hint})` }
      : { check: 'configured', target, ok: true, detail: `${Object.keys(e.vars).join(', ')} as kubetls sets them` });
  }
  for (const { k, remote } of kcs) {
    const target = `${r.host.name}:${remote}`;
    const kc = state.get(remote) ? await r.read(remote) : undefined;
    const want = kubeconfigContent(inv, k, r.host);
    const perm = kc ? modeProblem(state.get(remote)!, k.mode, true) : undefined;
    out.push(!kc ? { check: 'deployed', target, ok: false, detail: 'missing' }
      : !kc.equals(want) ? { check: 'deployed', target, ok: false, detail: `differs from what ${r.host.role === 'master' ? 'master.ts' : 'minions.ts'} writes (${hint})` }
        : perm ? { check: 'deployed', target, ok: false, detail: `${perm.insecure ? `insecure mode ${perm.insecure}` : perm.drift}: it embeds a key (${hint})` }
          : { check: 'deployed', target, ok: true, detail: `embeds ${k.cert}.crt serial ${readCert(path.join(inv.pki.dir, `${k.cert}.crt`))?.serial}` });
  }
  // a restart an interrupted run left owed: the unit still runs on the files it read before they were replaced
  for (const [unit, marker] of markers.filter(([, p]) => state.get(p))) {
    out.push({ check: 'restart owed', target: `${r.host.name}:${unit}`, ok: false,
      detail: `${unit} owes a restart an earlier run did not make (${marker}): it may run on old credentials; ${hint}` });
  }
  return out;
}

// ---- the modern control plane, with real clients where there is one ---------------------------------------

/** The self-subject review identity each component's credential must get, as the default RBAC expects it. */
const COMPONENTS: [cert: string, user: string, groups: string[]][] = [
  ['controller-manager', 'system:kube-controller-manager', []],
  ['scheduler', 'system:kube-scheduler', []],
  ['kube-proxy', 'system:kube-proxy', []],
  ['apiserver-kubelet-client', 'kube-apiserver-kubelet-client', []],
  ['admin', 'kubernetes-admin', ['system:masters']],
  ['approver', APPROVER_USER, []],
];

/**
 * Modern: etcd (real etcdctl, with the apiserver's etcd client certificate; and refused without one), the admin
 * kubeconfig (real kubectl), each component's identity, the apiserver → kubelet path and each kubelet's serving
 * certificate. `minions` are the nodes to check.
 */
export async function modernChecks(inv: Inventory, minions: Host[]): Promise<Result[]> {
  if (inv.profile !== 'modern') return [];
  const pki = (f: string) => path.join(inv.pki.dir, f);
  const results: Result[] = [];
  for (const m of inv.etcd.members) {
    const endpoint = `https://${m.address.includes(':') ? `[${m.address}]` : m.address}:${ETCD_CLIENT_PORT}`;
    const tlsArgs = ['--cacert', pki('etcd-ca.crt'), '--cert', pki('apiserver-etcd-client.crt'), '--key', pki('apiserver-etcd-client.key')];
    results.push(await attempt('etcd health', m.name, async () => {
      const argv = ['--endpoints', endpoint, ...tlsArgs, '--command-timeout=5s', 'endpoint', 'health'];
      log.cmd(['etcdctl', ...argv]);
      const r = await execa('etcdctl', argv, { reject: false, env: { ETCDCTL_API: '3' }, stdin: 'ignore', timeout: 20_000 });
      if (r.failed && (r as { code?: string }).code === 'ENOENT') throw new Error('etcdctl is not installed here (Debian: apt-get install etcd-client)');
      const said = `${r.stdout}${r.stderr}`.trim().split('\n').at(-1) ?? '';
      if (r.exitCode !== 0 || !/is healthy/.test(said)) throw new Error(said || `etcdctl exited ${r.exitCode}`);
      return `${endpoint} is healthy (apiserver-etcd-client.crt, etcd-ca.crt)`;
    }));
    results.push(await attempt('etcd refuses', m.name, async () => {
      const argv = ['--endpoints', endpoint, '--cacert', pki('etcd-ca.crt'), '--command-timeout=3s', 'get', '/registry', '--prefix', '--keys-only', '--limit=1'];
      const r = await execa('etcdctl', argv, { reject: false, env: { ETCDCTL_API: '3' }, stdin: 'ignore', timeout: 20_000 });
      if (r.exitCode === 0) throw new Error(`${endpoint} answers a client without a certificate (client-cert-auth is off)`);
      return 'a client without a certificate is refused';
    }));
  }
  results.push(await attempt('admin', 'admin.kubeconfig', async () => {
    const argv = ['--kubeconfig', pki('admin.kubeconfig'), 'auth', 'whoami', '-o', 'json'];
    log.cmd(['kubectl', ...argv]);
    const r = await execa('kubectl', argv, { reject: false, stdin: 'ignore', timeout: 20_000 });
    if ((r as { code?: string }).code === 'ENOENT') throw new Error('kubectl is not installed here');
    if (r.exitCode !== 0) throw new Error(`kubectl: ${`${r.stderr}`.trim().split('\n').at(-1)}`);
    const info = (JSON.parse(r.stdout) as { status?: { userInfo?: { username?: string; groups?: string[] } } }).status?.userInfo;
    if (info?.username !== 'kubernetes-admin' || !info.groups?.includes('system:masters')) throw new Error(`kubectl auth whoami says ${JSON.stringify(info)}, expected kubernetes-admin in system:masters`);
    return `kubectl auth whoami: kubernetes-admin [${info.groups.join(', ')}]`;
  }));
  const cred = (name: string): Credential => ({ cert: readFileSync(pki(`${name}.crt`)), key: readFileSync(pki(`${name}.key`)) });
  for (const [cert, user, groups] of COMPONENTS) {
    results.push(await attempt('whoami', cert, async () => {
      const who = await whoami(inv, cred(cert));
      if (who.username !== user) throw new Error(`authenticated as ${who.username}, expected ${user}`);
      const missing = groups.filter((g) => !who.groups.includes(g));
      if (missing.length) throw new Error(`groups ${who.groups.join(',')} lack ${missing.join(',')}`);
      return `${who.username} [${who.groups.join(', ')}]`;
    }));
  }
  const ca = clientTrust(inv);
  for (const m of minions) {
    results.push(await attempt('kubelet serves', m.name, async () => {
      const got = await readServed(m.address, KUBELET_PORT, m.name, ca);
      if (!got.authorized) throw new Error(`${m.address}:${KUBELET_PORT} serves a certificate not valid for ${m.name} with ca.crt: ${got.error}`);
      // api: the kubelet's own certificate, approved by approve.ts: trusted with ca.crt for its name is the check
      if (kubeletApi(inv)) {
        const pushed = readCert(pki(`kubelet-${m.name}.crt`));
        if (pushed?.fingerprint === got.info.fingerprint) throw new Error(`serves kubelet-${m.name}.crt, which kubetls pushed, not a certificate of its own: run minions.ts (kubelet.certificates is api)`);
        const late = rotationStatus(got.info.x509, new Date(), 'serving');
        if (late !== 'ok') throw new Error(`serves serial ${got.info.serial}: ${late}`);
        return `serial ${got.info.serial} (its own, issued by ${got.info.issuer}), verified for ${m.name}, not after ${got.info.notAfter.toISOString()}`;
      }
      const local = readCert(pki(`kubelet-${m.name}.crt`));
      if (local && local.fingerprint !== got.info.fingerprint) throw new Error(`serves serial ${got.info.serial}, local kubelet-${m.name}.crt is ${local.serial}`);
      return `serial ${got.info.serial} = local kubelet-${m.name}.crt, verified for ${m.name}`;
    }));
    // the apiserver's own path to the kubelet (kubectl logs/exec), with its credential: apiserver-kubelet-client.crt
    // (its copy on the master is checked above to be this file), the kubelet's serving certificate verified for the
    // node's name. Asked of the kubelet directly, not through nodes/NAME/proxy: the apiserver refuses to proxy to a
    // node whose address is loopback ("address not allowed"), which every lab node is.
    results.push(await attempt('kubelet authorizes', m.name, async () => {
      const r = await kubeletGet(m, '/pods', ca, cred('apiserver-kubelet-client'));
      if (r.status !== 200) throw new Error(`GET https://${m.name}:${KUBELET_PORT}/pods as kube-apiserver-kubelet-client: HTTP ${r.status} ${r.body.slice(0, 200)}`);
      return `GET /pods as kube-apiserver-kubelet-client: HTTP 200 (kubectl logs/exec will work)`;
    }));
    // and the kubelet asks the apiserver about every caller (--authorization-mode=Webhook): an identity of the cluster
    // CA without the right to the kubelets' API (kube-proxy's) is refused. AlwaysAllow would answer 200.
    results.push(await attempt('kubelet refuses', m.name, async () => {
      const r = await kubeletGet(m, '/pods', ca, cred('kube-proxy'));
      if (r.status !== 403) throw new Error(`GET /pods as system:kube-proxy: HTTP ${r.status}, expected 403: the kubelet does not authorize its callers (--authorization-mode=Webhook)`);
      return `GET /pods as system:kube-proxy: HTTP 403 ${r.body.trim().replace(/\s+/g, ' ').slice(0, 200)}`;
    }));
  }
  return results;
}
