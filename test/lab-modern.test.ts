// The modern lab can tell (issue 9): the real etcd with client and peer TLS, an apiserver stand-in that needs etcd,
// components that authenticate as themselves under a copy of the default RBAC, kubelets that serve their API with a
// serving certificate. The PKI and the files are made here (real openssl, test/helpers/modern-pki.ts) — not by
// kubetls's scripts — and each break on purpose must fail the way a real cluster does.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { parse } from 'yaml';
import type { Lab } from '../lib/lab/index.ts';
import { parseInventory } from '../lib/inventory.ts';
import { labNameFor, useLab } from './helpers/lab.ts';
import { R, editEnv, installEtcd, installMaster, installMinion, makeModernPki, type ModernPki } from './helpers/modern-pki.ts';

const labP = useLab(test, { name: labNameFor(test.meta.file), minions: 2, profile: 'modern' });
const etcd3P = useLab(test, { name: labNameFor(test.meta.file, 'etcd3'), minions: 1, profile: 'modern', etcdMembers: 3 });
const root = join(tmpdir(), `kubetls-lab-modern-${process.pid}`);
test.after.always(() => rmSync(root, { recursive: true, force: true }));

let lab: Lab;
let pki: ModernPki;
const members = (l: Lab) => l.etcdMembers.map((h) => ({ name: h.name, address: h.address }));

test.before(async () => {
  lab = await labP;
  pki = await makeModernPki(join(root, 'one'), lab.master, lab.minions, members(lab));
  installEtcd(lab, pki);
  installMaster(lab, pki);
  installMinion(lab, pki, lab.minions[0]!);
  // the second kubelet refuses anonymous callers (the real kubelet's default, --anonymous-auth=true, accepts them)
  installMinion(lab, pki, lab.minions[1]!, ['--anonymous-auth=false']);
});

const systemctl = (host: string, ...args: string[]) => lab.exec(host, ['systemctl', ...args]);
const etcdctl = (l: Lab, p: ModernPki, args: string[], client: 'apiserver-etcd-client' | 'none' = 'apiserver-etcd-client') =>
  execa('etcdctl', ['--endpoints', l.etcdMembers.map((m) => `https://${m.address}:2379`).join(','), '--cacert', p.crt('etcd-ca'),
    '--dial-timeout', '2s', '--command-timeout', '3s',
    ...(client === 'none' ? [] : ['--cert', p.crt(client), '--key', p.key(client)]), ...args], { reject: false, timeout: 20000 });
/** curl to the apiserver as NAME (a pair of the PKI), verifying it against the cluster CA for the name kubemaster. */
const api = (name: string | undefined, path: string, extra: string[] = []) =>
  execa('curl', ['-sS', '--cacert', pki.crt('ca'), '--resolve', `kubemaster:6443:${lab.master.address}`,
    ...(name ? ['--cert', pki.crt(name), '--key', pki.key(name)] : []), '-w', '\n%{http_code}', ...extra, `https://kubemaster:6443${path}`],
  { reject: false, timeout: 15000 }).then((r) => {
    const lines = r.stdout.split('\n');
    return { code: Number(lines.pop()), body: lines.join('\n'), stderr: r.stderr };
  });
const json = (s: string) => JSON.parse(s);

test.serial('the real etcd runs as unit etcd, user etcd, healthy for etcdctl with the apiserver\'s etcd client cert and refusing one without', async (t) => {
  const r = await systemctl('kubemaster', 'start', 'etcd');
  t.is(r.exitCode, 0, r.stderr);
  const pid = lab.services('kubemaster').etcd;
  t.truthy(pid);
  t.is((await lab.exec('kubemaster', ['ps', '-o', 'user=,args=', '-p', String(pid)])).stdout.trim(), 'etcd     /usr/bin/etcd');
  const health = await etcdctl(lab, pki, ['endpoint', 'health']);
  t.is(health.exitCode, 0, health.stderr);
  t.regex(health.stdout + health.stderr, new RegExp(`https://${lab.master.address.replace(/\./g, '\\.')}:2379 is healthy`));
  const anon = await etcdctl(lab, pki, ['endpoint', 'health'], 'none');
  t.not(anon.exitCode, 0);
  t.regex(anon.stdout + anon.stderr, /is unhealthy|context deadline exceeded/);
  // the shipped /etc/default/etcd is Debian's; the test added one VAR at a time; data in the host's own /var/lib
  t.regex(lab.readFile('kubemaster', '/etc/default/etcd'), /^## etcd\(1\) daemon options\n[\s\S]*\nETCD_NAME="kubemaster"\n/);
  t.is((await lab.exec('kubemaster', ['stat', '-c', '%U %a', '/var/lib/etcd/default'])).stdout.trim(), 'etcd 700');
  t.not((await lab.exec('kubeminion1', ['test', '-e', '/var/lib/etcd/default'])).exitCode, 0);
});

test.serial('a bad etcd server key fails `systemctl restart etcd` (Type=notify), and the right one brings it back', async (t) => {
  const etcdOwner = { uid: lab.uids.etcd, gid: lab.uids.etcdGid, mode: 0o600 };
  lab.writeFile('kubemaster', `${R}/etcd-server.key`, readFileSync(pki.key('etcd-peer-kubemaster')), etcdOwner);
  const r = await systemctl('kubemaster', 'restart', 'etcd');
  t.is(r.exitCode, 1);
  t.regex(r.stderr, /Job for etcd\.service failed because the control process exited with error code/);
  t.regex(r.stderr, /etcdmain: tls: private key does not match public key/);
  t.is((await systemctl('kubemaster', 'is-active', 'etcd')).stdout.trim(), 'failed');
  lab.writeFile('kubemaster', `${R}/etcd-server.key`, readFileSync(pki.key('etcd-server-kubemaster')), etcdOwner);
  const back = await systemctl('kubemaster', 'restart', 'etcd');
  t.is(back.exitCode, 0, back.stderr);
  t.is((await etcdctl(lab, pki, ['endpoint', 'health'])).exitCode, 0);
});

test.serial('the control plane comes up and each component authenticates as itself', async (t) => {
  for (const u of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler']) {
    const r = await systemctl('kubemaster', 'restart', u);
    t.is(r.exitCode, 0, `${u}: ${r.stderr}`);
  }
  t.regex(lab.unitLog('kubemaster', 'kube-apiserver'), /etcd: connected to https:\/\/127\.\d+\.0\.1:2379/);
  for (const m of lab.minions) {
    for (const u of ['kubelet', 'kube-proxy']) {
      const r = await systemctl(m.name, 'restart', u);
      t.is(r.exitCode, 0, `${m.name} ${u}: ${r.stderr}`);
    }
  }
  t.regex(lab.unitLog('kubemaster', 'kube-controller-manager'), /authenticated as system:kube-controller-manager groups=\[system:authenticated\]\n.*listed \d+ nodes/);
  t.regex(lab.unitLog('kubemaster', 'kube-scheduler'), /authenticated as system:kube-scheduler groups=\[system:authenticated\]\n.*listed 0 pods/);
  t.regex(lab.unitLog('kubeminion1', 'kube-proxy'), /authenticated as system:kube-proxy groups=\[system:authenticated\]\n.*listed 0 endpointslices/);
  t.regex(lab.unitLog('kubeminion1', 'kubelet'), /authenticated as system:node:kubeminion1 groups=\[system:nodes,system:authenticated\]\n.*"Successfully registered node" node="kubeminion1"/);
  for (const [name, user] of [['admin', 'kubernetes-admin'], ['controller-manager', 'system:kube-controller-manager'],
    ['scheduler', 'system:kube-scheduler'], ['kube-proxy', 'system:kube-proxy'], ['kubeminion2', 'system:node:kubeminion2']]) {
    const r = await api(name, '/apis/authentication.k8s.io/v1/selfsubjectreviews', ['-X', 'POST', '-H', 'Content-Type: application/json', '-d', '{}']);
    t.is(r.code, 201, r.body + r.stderr);
    t.is(json(r.body).status.userInfo.username, user);
  }
  // the etcd client certificate is from another CA: the apiserver does not take it (kubeadm keeps the CAs apart)
  t.is((await api('apiserver-etcd-client', '/api/v1/nodes')).code, 401);
  // a front-proxy client may name a user in X-Remote-User; its certificate alone is no user
  const fp = await api('front-proxy-client', '/apis/authentication.k8s.io/v1/selfsubjectreviews',
    ['-X', 'POST', '-H', 'X-Remote-User: alice', '-H', 'X-Remote-Group: devs', '-d', '{}']);
  t.deepEqual(json(fp.body).status.userInfo, { username: 'alice', groups: ['devs', 'system:authenticated'] });
});

test.serial('a node that registered is stored in etcd and served from it, to the nodes and roles that may read it', async (t) => {
  const got = await etcdctl(lab, pki, ['get', '/registry/minions/kubeminion1', '--print-value-only']);
  t.is(got.exitCode, 0, got.stderr);
  const node = json(got.stdout);
  t.is(node.metadata.name, 'kubeminion1');
  t.deepEqual(node.status.addresses, [{ type: 'InternalIP', address: lab.minions[0]!.address }, { type: 'Hostname', address: 'kubeminion1' }]);
  const list = await api('admin', '/api/v1/nodes');
  t.deepEqual(json(list.body).items.map((n: { metadata: { name: string } }) => n.metadata.name), ['kubeminion1', 'kubeminion2']);
  t.is((await api('kubeminion1', '/api/v1/nodes/kubeminion1')).code, 200);
  t.is((await api('kube-proxy', '/api/v1/nodes/kubeminion2')).code, 200);
  // real kubectl against the stand-in, as the operator's admin
  const kc = join(root, 'admin.kubeconfig');
  writeFileSync(kc, pki.kubeconfig('admin'), { mode: 0o600 });
  const k = await execa('kubectl', ['--kubeconfig', kc, '--server', `https://${lab.master.address}:6443`, '--tls-server-name', 'kubemaster',
    'get', 'nodes', '-o', 'name'], { reject: false, timeout: 20000 });
  t.is(k.exitCode, 0, k.stderr);
  t.deepEqual(k.stdout.trim().split('\n'), ['node/kubeminion1', 'node/kubeminion2']);
});

test.serial('RBAC and the Node authorizer: endpointslices for kube-proxy and the roles, Forbidden for a node', async (t) => {
  for (const who of ['kube-proxy', 'controller-manager', 'admin']) {
    t.is((await api(who, '/apis/discovery.k8s.io/v1/endpointslices')).code, 200, who);
  }
  const node = await api('kubeminion1', '/apis/discovery.k8s.io/v1/endpointslices');
  t.is(node.code, 403);
  t.like(json(node.body), {
    kind: 'Status', status: 'Failure', reason: 'Forbidden', code: 403,
    message: 'endpointslices.discovery.k8s.io is forbidden: User "system:node:kubeminion1" cannot list resource "endpointslices" in API group "discovery.k8s.io" at the cluster scope',
  });
  t.is((await api('scheduler', '/apis/discovery.k8s.io/v1/endpointslices')).code, 403);
  t.regex(json((await api('kube-proxy', '/api/v1/pods')).body).message, /pods is forbidden: User "system:kube-proxy" cannot list resource "pods"/);
  const proxy = await api('kubeminion1', '/api/v1/nodes/kubeminion2/proxy/healthz');
  t.is(proxy.code, 403);
  t.regex(json(proxy.body).message, /nodes "kubeminion2" is forbidden: User "system:node:kubeminion1" cannot get resource "nodes\/proxy" in API group "" at the cluster scope/);
  // what `kubectl auth can-i` asks: a SelfSubjectAccessReview answers with the same rules
  const canI = async (who: string) => json((await api(who, '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', ['-X', 'POST', '-d',
    JSON.stringify({ apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { verb: 'list', group: 'discovery.k8s.io', resource: 'endpointslices' } } })])).body).status.allowed;
  t.true(await canI('kube-proxy'));
  t.false(await canI('kubeminion1'));
  t.is((await api(undefined, '/api/v1/nodes')).code, 403, 'anonymous');
  t.is((await api(undefined, '/healthz')).body, 'ok');
});

test.serial('the apiserver reaches each kubelet with its kubelet client cert; the kubelet verifies callers against its client CA', async (t) => {
  for (const m of lab.minions) {
    const r = await api('admin', `/api/v1/nodes/${m.name}/proxy/healthz`);
    t.is(r.code, 200, r.body);
    t.is(r.body.trim(), 'ok');
  }
  t.regex((await api('admin', '/api/v1/nodes/kubeminion1/proxy/logs/')).body, /kubetls-lab\//);
  const direct = (m: { address: string }, pair?: string) => execa('curl', ['-sS', '--cacert', pki.crt('ca'), '--resolve', `kubeminion:10250:${m.address}`,
    ...(pair ? ['--cert', pki.crt(pair), '--key', pki.key(pair)] : []), '-w', '\n%{http_code}', `https://${m.address}:10250/healthz`], { reject: false, timeout: 10000 });
  const [m1, m2] = lab.minions as [Lab['master'], Lab['master']];
  t.regex((await direct(m2)).stdout, /Unauthorized\n+401$/, '--anonymous-auth=false: no client certificate, no entry');
  t.regex((await direct(m2, 'apiserver-etcd-client')).stdout, /Unauthorized\n+401$/, 'a client certificate of another CA');
  t.regex((await direct(m2, 'apiserver-kubelet-client')).stdout, /^ok\n+200$/);
  t.regex((await direct(m1)).stdout, /^ok\n+200$/, 'the real kubelet\'s default --anonymous-auth=true lets an anonymous caller in');
  // the kubelet's serving certificate verifies against the cluster CA for its name (what verify checks)
  const sc = await execa('openssl', ['s_client', '-verify_return_error', '-CAfile', pki.crt('ca'), '-verify_hostname', 'kubeminion1',
    '-connect', `${m1.address}:10250`], { input: '', reject: false, timeout: 10000 });
  t.regex(sc.stdout, /Verify return code: 0 \(ok\)/);
});

test.serial('a wrong etcd client cert: the apiserver does not start (context deadline exceeded, the TLS reason), the nodes come back with the right one', async (t) => {
  const kube = { uid: lab.uids.kube, gid: lab.uids.nogroup, mode: 0o600 };
  lab.writeFile('kubemaster', `${R}/apiserver-etcd-client.crt`, readFileSync(pki.crt('etcd-client-wrong-ca')), kube);
  lab.writeFile('kubemaster', `${R}/apiserver-etcd-client.key`, readFileSync(pki.key('etcd-client-wrong-ca')), kube);
  const r = await systemctl('kubemaster', 'restart', 'kube-apiserver');
  t.is(r.exitCode, 1);
  t.regex(r.stderr, /Job for kube-apiserver\.service failed/);
  t.regex(r.stderr, /"command failed" err="context deadline exceeded"/);
  t.regex(r.stderr, /grpc: addrConn\.createTransport failed to connect to \{Addr: "127\.\d+\.0\.1:2379".*remote error: tls: (bad certificate|unknown certificate authority)/);
  t.is((await api('admin', '/api/v1/nodes')).code, 0, 'nothing serves the API');
  lab.writeFile('kubemaster', `${R}/apiserver-etcd-client.crt`, readFileSync(pki.crt('apiserver-etcd-client')), kube);
  lab.writeFile('kubemaster', `${R}/apiserver-etcd-client.key`, readFileSync(pki.key('apiserver-etcd-client')), kube);
  // an etcd CA file that is not the etcd CA: the apiserver cannot verify etcd's certificate
  lab.writeFile('kubemaster', `${R}/etcd-ca.crt`, readFileSync(pki.crt('ca')), { mode: 0o644 });
  const ca = await systemctl('kubemaster', 'restart', 'kube-apiserver');
  t.is(ca.exitCode, 1);
  t.regex(ca.stderr, /transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority/);
  lab.writeFile('kubemaster', `${R}/etcd-ca.crt`, readFileSync(pki.crt('etcd-ca')), { mode: 0o644 });
  t.is((await systemctl('kubemaster', 'restart', 'kube-apiserver')).exitCode, 0);
  t.is(json((await api('admin', '/api/v1/nodes')).body).items.length, 2, 'the nodes were kept in etcd');
});

test.serial('the shipped --etcd-servers=http://127.0.0.1:2379 (the machine\'s own, shared by every lab) is never reached: the apiserver does not start', async (t) => {
  const before = lab.readFile('kubemaster', '/etc/kubernetes/apiserver');
  editEnv(lab, 'kubemaster', '/etc/kubernetes/apiserver', { KUBE_ETCD_SERVERS: '--etcd-servers=http://127.0.0.1:2379' });
  const r = await systemctl('kubemaster', 'restart', 'kube-apiserver');
  t.is(r.exitCode, 1);
  t.regex(r.stderr, /dial tcp 127\.0\.0\.1:2379: connect: connection refused/);
  t.regex(r.stderr, /"command failed" err="context deadline exceeded"/);
  lab.writeFile('kubemaster', '/etc/kubernetes/apiserver', before);
  t.is((await systemctl('kubemaster', 'restart', 'kube-apiserver')).exitCode, 0);
});

test.serial('controller-manager and scheduler without a kubeconfig, or with one the apiserver does not know, do not start', async (t) => {
  const before = lab.readFile('kubemaster', '/etc/kubernetes/controller-manager');
  editEnv(lab, 'kubemaster', '/etc/kubernetes/controller-manager', { KUBE_CONTROLLER_MANAGER_ARGS: `--root-ca-file=${R}/ca.crt --service-account-private-key-file=${R}/sa.key` });
  const r = await systemctl('kubemaster', 'restart', 'kube-controller-manager');
  t.is(r.exitCode, 1);
  t.regex(r.stderr, /Error: invalid configuration: no configuration has been provided/);
  t.is((await systemctl('kubemaster', 'is-active', 'kube-controller-manager')).stdout.trim(), 'failed');
  lab.writeFile('kubemaster', '/etc/kubernetes/controller-manager', before);
  // a kubeconfig whose client certificate is from the etcd CA: 401 from the apiserver
  const kube = { uid: lab.uids.kube, gid: lab.uids.nogroup, mode: 0o600 };
  lab.writeFile('kubemaster', `${R}/scheduler.conf`, pki.kubeconfig('apiserver-etcd-client'), kube);
  const s = await systemctl('kubemaster', 'restart', 'kube-scheduler');
  t.is(s.exitCode, 1);
  t.regex(s.stderr, /failed to wait for apiserver being healthy: Unauthorized/);
  lab.writeFile('kubemaster', `${R}/scheduler.conf`, pki.kubeconfig('scheduler'), kube);
  // signing pair that does not match
  lab.writeFile('kubemaster', `${R}/ca.key`, readFileSync(pki.key('etcd-ca')), kube);
  const sign = await systemctl('kubemaster', 'restart', 'kube-controller-manager');
  t.is(sign.exitCode, 1);
  t.regex(sign.stderr, /certificatesigningrequest-signing-controller: error reading CA cert file .*tls: private key does not match public key/);
  lab.writeFile('kubemaster', `${R}/ca.key`, readFileSync(pki.key('ca')), kube);
  for (const u of ['kube-controller-manager', 'kube-scheduler']) t.is((await systemctl('kubemaster', 'restart', u)).exitCode, 0, u);
});

test.serial('kube-proxy with the kubelet\'s identity runs but is forbidden to list endpointslices, as on a real cluster', async (t) => {
  lab.writeFile('kubeminion1', '/var/lib/kube-proxy/kubeconfig', pki.kubeconfig('kubeminion1'), { mode: 0o600 });
  const r = await systemctl('kubeminion1', 'restart', 'kube-proxy');
  t.is(r.exitCode, 0, r.stderr);
  t.is((await systemctl('kubeminion1', 'is-active', 'kube-proxy')).stdout.trim(), 'active');
  t.regex(lab.unitLog('kubeminion1', 'kube-proxy'),
    /Failed to watch \*v1\.EndpointSlice: failed to list \*v1\.EndpointSlice: endpointslices\.discovery\.k8s\.io is forbidden: User "system:node:kubeminion1" cannot list resource "endpointslices" in API group "discovery\.k8s\.io" at the cluster scope/);
  lab.writeFile('kubeminion1', '/var/lib/kube-proxy/kubeconfig', pki.kubeconfig('kube-proxy'), { mode: 0o600 });
  t.is((await systemctl('kubeminion1', 'restart', 'kube-proxy')).exitCode, 0);
});

test.serial('a kubelet serving cert for another name: the apiserver\'s proxy fails with the x509 error', async (t) => {
  lab.writeFile('kubeminion1', '/var/lib/kubelet/pki/kubelet.crt', readFileSync(pki.crt('kubelet-wrong-name')), { mode: 0o600 });
  lab.writeFile('kubeminion1', '/var/lib/kubelet/pki/kubelet.key', readFileSync(pki.key('kubelet-wrong-name')), { mode: 0o600 });
  t.is((await systemctl('kubeminion1', 'restart', 'kubelet')).exitCode, 0);
  const r = await api('admin', '/api/v1/nodes/kubeminion1/proxy/healthz');
  t.is(r.code, 500);
  t.is(json(r.body).message, 'tls: failed to verify certificate: x509: certificate is valid for kubeminion2, not kubeminion1');
  t.is((await api('admin', '/api/v1/nodes/kubeminion2/proxy/healthz')).code, 200, 'the other kubelet is fine');
  lab.writeFile('kubeminion1', '/var/lib/kubelet/pki/kubelet.crt', readFileSync(pki.crt('kubelet-kubeminion1')), { mode: 0o600 });
  lab.writeFile('kubeminion1', '/var/lib/kubelet/pki/kubelet.key', readFileSync(pki.key('kubelet-kubeminion1')), { mode: 0o600 });
  t.is((await systemctl('kubeminion1', 'restart', 'kubelet')).exitCode, 0);
  t.is((await api('admin', '/api/v1/nodes/kubeminion1/proxy/healthz')).code, 200);
});

test('with --etcd-members 3 the members are hosts of their own, listed in cluster.yaml, and form one cluster over peer TLS', async (t) => {
  const l = await etcd3P;
  t.deepEqual(l.etcdMembers.map((h) => h.name), ['kubemaster', 'kubeetcd2', 'kubeetcd3']);
  const inv = parse(readFileSync(l.inventoryPath, 'utf8'));
  t.deepEqual(inv.etcd.members, l.etcdMembers.map((h) => ({ name: h.name, address: h.address })));
  t.deepEqual(parseInventory(readFileSync(l.inventoryPath, 'utf8'), l.inventoryPath).etcd.members.map((m) => m.role), ['master', 'etcd', 'etcd'],
    'lib/inventory.ts takes it: the master, then members of their own');
  t.is((await execa('ssh', ['-F', l.sshConfigPath, 'kubeetcd3', 'hostname'], { reject: false, timeout: 15000 })).stdout.trim(), 'kubeetcd3');
  const p = await makeModernPki(join(root, 'three'), l.master, l.minions, members(l));
  installEtcd(l, p);
  // a first member of a new cluster is ready only once a quorum joined: start them together, as with systemd
  const starts = await Promise.all(l.etcdMembers.map((m) => l.exec(m.name, ['systemctl', 'start', 'etcd'], { timeoutMs: 40000 })));
  t.deepEqual(starts.map((r) => r.exitCode), [0, 0, 0], starts.map((r) => r.stderr).join('\n'));
  const list = await etcdctl(l, p, ['member', 'list']);
  t.is(list.exitCode, 0, list.stderr);
  t.is(list.stdout.trim().split('\n').length, 3);
  for (const m of l.etcdMembers) t.regex(list.stdout, new RegExp(`started, ${m.name}, https://${m.address.replace(/\./g, '\\.')}:2380, https://${m.address.replace(/\./g, '\\.')}:2379`));
  const health = await etcdctl(l, p, ['endpoint', 'health']);
  t.is(health.exitCode, 0, health.stderr);
  t.is((health.stdout + health.stderr).match(/is healthy/g)?.length, 3);
  // the member peer certificates are what holds the cluster together: one from the wrong CA cannot rejoin
  const etcdOwner = { uid: l.uids.etcd, gid: l.uids.etcdGid, mode: 0o600 };
  l.writeFile('kubeetcd3', `${R}/etcd-peer.crt`, readFileSync(p.crt('admin')), etcdOwner);
  l.writeFile('kubeetcd3', `${R}/etcd-peer.key`, readFileSync(p.key('admin')), etcdOwner);
  const bad = await l.exec('kubeetcd3', ['systemctl', 'restart', 'etcd'], { timeoutMs: 60000, env: { KUBETLS_LAB_ETCD_START_TIMEOUT_MS: '6000' } });
  t.is(bad.exitCode, 1, 'a member whose peer certificate the others refuse never becomes ready');
  t.regex(bad.stderr, /Job for etcd\.service failed because a timeout was exceeded/);
});
