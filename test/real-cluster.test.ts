// The modern profile against a REAL control plane: hosts that boot Debian 12's systemd (systemd-nspawn -b),
// the real etcd of the Debian tree, and the real kube-apiserver, kube-controller-manager and kube-scheduler v1.37.2
// built from Go modules (lab/kube/build.sh; .ci/run builds them once per machine). Whatever these binaries refuse
// is a kubetls bug: each test below names the one it found.
import { mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { masterEnv } from '../config/profiles.ts';
import { kubeBinDir } from '../lab/nspawn.ts';
import { setVarsBuffer } from '../lib/envfile.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { readKubeconfig } from '../lib/kubeconfig.ts';
import { parseCert } from '../lib/pki/read.ts';
import { apiRequest } from '../lib/probe.ts';
import { KUBELET_API_BINDING } from '../lib/rbac.ts';
import { flagContext } from '../lib/rollout/desired.ts';
import { addSan, restarts } from './helpers/e2e.ts';
import { tempDir } from './helpers/inventory.ts';
import { useLab } from './helpers/lab.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 1, profile: 'modern' });
const CONTROL = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];

/** kubectl (the machine's real one) as admin, to the master's address, verifying the apiserver for its name. */
const kubectl = async (args: string[]) => {
  const lab = await labP;
  return execa('kubectl', ['--kubeconfig', join(lab.pkiDir, 'admin.kubeconfig'), '--server', `https://${lab.master.address}:6443`,
    '--tls-server-name', 'kubemaster', '--request-timeout', '10s', ...args], { reject: false, timeout: 30000 });
};

/** kubectl as admin with a manifest on its standard input. */
const kubectlIn = async (args: string[], input: string) => {
  const lab = await labP;
  return execa('kubectl', ['--kubeconfig', join(lab.pkiDir, 'admin.kubeconfig'), '--request-timeout', '10s', ...args], { reject: false, timeout: 30000, input });
};

test.serial('master.ts brings up the real etcd and v1.37.2 control plane under real systemd, and kubectl reaches it as admin', async (t) => {
  const lab = await labP;
  const r = await runScript('master', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  // real systemd is PID 1 and runs the units (its own `systemctl status`, the unit file kubetls's env files feed)
  t.is((await lab.exec('kubemaster', ['ps', '-o', 'comm=', '-p', '1'])).stdout.trim(), 'systemd');
  const status = await lab.exec('kubemaster', ['systemctl', 'status', '--no-pager', 'kube-apiserver']);
  t.regex(status.stdout, /Loaded: loaded \(\/etc\/systemd\/system\/kube-apiserver\.service;/);
  t.regex(status.stdout, /Active: active \(running\)/);
  t.is((await lab.exec('kubemaster', ['kube-apiserver', '--version'])).stdout.trim(), 'Kubernetes v1.37.2');
  for (const u of CONTROL) t.is((await lab.exec('kubemaster', ['systemctl', 'is-active', u])).stdout.trim(), 'active', u);
  const version = await kubectl(['version', '-o', 'json']);
  t.is(version.exitCode, 0, version.stderr);
  t.is(JSON.parse(version.stdout).serverVersion.gitVersion, 'v1.37.2');
  const who = await kubectl(['auth', 'whoami', '-o', 'json']);
  t.is(who.exitCode, 0, who.stderr);
  t.like(JSON.parse(who.stdout).status.userInfo, { username: 'kubernetes-admin' });
  t.true(JSON.parse(who.stdout).status.userInfo.groups.includes('system:masters'));
});

test.serial('the real apiserver, controller-manager and scheduler listen on the master\'s address only, never on every interface', async (t) => {
  // defect: kubetls left the binding to the binaries, whose default is 0.0.0.0 (6443, 10257, 10259 on all interfaces)
  const lab = await labP;
  const ss = await execa('ss', ['-Hltnp'], { reject: false });
  const mine = ss.stdout.split('\n').filter((l) => /"kube-(apiserver|controller|scheduler)/.test(l));
  t.true(mine.length >= 3, ss.stdout);
  // other labs' masters may listen too (labs run side by side, an HA lab's other masters after its minions),
  // each on its own loopback address: none on every interface (0.0.0.0, *, [::])
  for (const port of ['6443', '10257', '10259']) {
    const lines = mine.filter((l) => l.split(/\s+/)[3]?.endsWith(`:${port}`));
    t.true(lines.some((l) => l.split(/\s+/)[3] === `${lab.master.address}:${port}`), `nothing listens on ${lab.master.address}:${port}`);
    for (const l of lines) t.regex(l.split(/\s+/)[3]!, /^127\.\d+\.\d+\.\d+:\d+$/, l);
  }
});

/** A rerun of `script` writes and restarts nothing: its own summary says so, and the host's real journal has no job. */
async function noopRerun(t: ExecutionContext, script: 'master' | 'minions', host: string): Promise<void> {
  const lab = await labP;
  const before = lab.journal(host).length;
  const r = await runScript(script, ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /nothing to do: every host already up to date \(0 files written, 0 restarts\)/);
  t.deepEqual(lab.journal(host).slice(before), []);
}

test.serial('a second master.ts writes nothing and restarts nothing: no job in the real journal', (t) => noopRerun(t, 'master', 'kubemaster'));

test.serial('a renewed server certificate is served by the real apiserver after one restart, and the gate waits for /readyz', async (t) => {
  const lab = await labP;
  const before = lab.journal('kubemaster').length;
  addSan(lab);
  const r = await runScript('master', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  const served = await execa('openssl', ['s_client', '-connect', `${lab.master.address}:6443`, '-servername', 'kubemaster',
    '-CAfile', join(lab.pkiDir, 'ca.crt'), '-verify_return_error'], { input: '', reject: false, timeout: 15000 });
  t.regex(served.stdout, /Verify return code: 0 \(ok\)/);
  const local = await execa('openssl', ['x509', '-noout', '-serial', '-in', join(lab.pkiDir, 'server.crt')]);
  const got = await execa('openssl', ['x509', '-noout', '-serial'], { input: served.stdout });
  t.is(got.stdout, local.stdout);
  const jobs = lab.journal('kubemaster').slice(before);
  t.is(jobs.filter((j) => j.unit === 'kube-apiserver' && (j.event === 'start' || j.event === 'restart')).length, 1, JSON.stringify(jobs));
  t.false(jobs.some((j) => j.unit === 'etcd'), 'etcd reads nothing that changed');
  t.is((await kubectl(['get', '--raw', '/readyz'])).stdout.trim(), 'ok');
});

test.serial('a controller-manager that exits right after its restart fails master.ts (exit 1, named), and the next run finishes once it is fixed', async (t) => {
  // defect: `systemctl restart` + `is-active` passed a Type=simple unit that died a moment later (Restart=on-failure
  // then hides it): the real controller-manager did exactly that on the first real run. A 1.4-era line an operator
  // kept in /etc/kubernetes/controller-manager (--logtostderr, removed in 1.26) makes the real binary exit at once.
  const lab = await labP;
  const file = '/etc/kubernetes/controller-manager';
  const good = lab.readFile('kubemaster', file);
  lab.writeFile('kubemaster', file, setVarsBuffer(Buffer.from(good), { KUBE_LOGTOSTDERR: '--logtostderr=true' }).bytes);
  await lab.exec('kubemaster', ['rm', '-f', '/srv/kubernetes/controller-manager.conf']); // kubetls puts it back: a restart
  const r = await runScript('master', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 1, r.all);
  // seen stopping it: "did not stay up" (active, then gone), or, on a loaded machine where every start dies before
  // it is seen active, "activating after 20 s"
  t.regex(r.all, /kube-controller-manager (did not stay up|is activating after 20 s)/);
  t.regex(lab.unitLog('kubemaster', 'kube-controller-manager'), /unknown flag: --logtostderr/);
  lab.writeFile('kubemaster', file, good);
  const again = await runScript('master', ['--inventory', lab.inventoryPath]);
  t.is(again.code, 0, again.all);
  t.regex(again.all, /kube-controller-manager still owes a restart from an earlier run/);
  t.is((await lab.exec('kubemaster', ['systemctl', 'is-active', 'kube-controller-manager'])).stdout.trim(), 'active');
});

test.serial('the real kube-apiserver refuses a flag kubetls writes once renamed to one it does not know, and takes the flags as written', async (t) => {
  const lab = await labP;
  const inv = loadInventory(lab.inventoryPath);
  const env = masterEnv('modern', flagContext(inv)).find((e) => e.path === '/etc/kubernetes/apiserver')!;
  const file = '/etc/kubernetes/apiserver';
  const kept = lab.readFile('kubemaster', file);
  const renamed = env.vars.KUBE_API_ARGS!.replace('--tls-cert-file=', '--tls-certificate-file=');
  t.not(renamed, env.vars.KUBE_API_ARGS);
  lab.writeFile('kubemaster', file, setVarsBuffer(Buffer.from(kept), { KUBE_API_ARGS: renamed }).bytes);
  const bad = await lab.exec('kubemaster', ['systemctl', 'restart', 'kube-apiserver']);
  t.not(bad.exitCode, 0);
  t.regex(lab.unitLog('kubemaster', 'kube-apiserver'), /unknown flag: --tls-certificate-file/);
  lab.writeFile('kubemaster', file, setVarsBuffer(Buffer.from(kept), { KUBE_API_ARGS: env.vars.KUBE_API_ARGS! }).bytes);
  t.is(lab.readFile('kubemaster', file), kept, 'kubetls\'s own flags, as master.ts wrote them');
  const ok = await lab.exec('kubemaster', ['systemctl', 'restart', 'kube-apiserver']);
  t.is(ok.exitCode, 0, ok.stderr);
  t.regex(readFileSync(join(lab.pkiDir, 'ca.crt'), 'utf8'), /BEGIN CERTIFICATE/);
});

// ---- the minions: the real kubelet and kube-proxy (containerd in the host; a network namespace of its own) --------------

/** Poll `fn` (bounded) until it returns something; the last value (or undefined) after `ms`. */
async function waitFor<T>(fn: () => Promise<T | undefined>, ms = 30000): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 500));
  }
}
const pem = async (f: string) => readFileSync(join((await labP).pkiDir, f));
/** verify.ts run until it passes (bounded): a restarted unit takes a moment to serve again. */
const verifyPasses = async () => waitFor(async () => {
  const x = await runScript('verify', ['--inventory', (await labP).inventoryPath]);
  return x.code === 0 ? x : undefined;
});

test.serial('minions.ts starts the real kubelet and kube-proxy: the Node registers with its own certificate, kube-proxy syncs rules in the minion\'s own namespace, a second run does nothing', async (t) => {
  const lab = await labP;
  const r = await runScript('minions', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  for (const u of ['containerd', 'kubelet', 'kube-proxy']) t.is((await lab.exec('kubeminion1', ['systemctl', 'is-active', u])).stdout.trim(), 'active', u);
  t.is((await lab.exec('kubeminion1', ['kubelet', '--version'])).stdout.trim(), 'Kubernetes v1.37.2');
  const node = await waitFor(async () => {
    const g = await kubectl(['get', 'node', 'kubeminion1', '-o', 'json']);
    return g.exitCode === 0 ? JSON.parse(g.stdout) : undefined;
  });
  t.truthy(node, 'the Node never registered');
  t.is(node.status.nodeInfo.kubeletVersion, 'v1.37.2');
  t.true(node.status.addresses.some((a: { type: string; address: string }) => a.type === 'Hostname' && a.address === 'kubeminion1'));
  t.regex((await kubectl(['get', 'nodes'])).stdout, /^kubeminion1\s+\S+\s+<none>\s+\S+\s+v1\.37\.2$/m);
  // the Node authorizer and NodeRestriction of the real apiserver: the minion's certificate may not touch another node
  const inv = loadInventory(lab.inventoryPath);
  const other = await apiRequest(inv, 'POST', '/api/v1/nodes', { cert: await pem('kubeminion1.crt'), key: await pem('kubeminion1.key') },
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'kubeminion9' } });
  t.is(other.status, 403);
  t.regex(JSON.stringify(other.json), /node \\"kubeminion1\\" is not allowed to modify node \\"kubeminion9\\"/);
  // kube-proxy listed services and endpointslices (system:node-proxier) and wrote the kubernetes service's rules, in
  // the minion's network namespace, not this machine's
  const rules = await waitFor(async () => {
    const s = await lab.exec('kubeminion1', ['iptables', '-t', 'nat', '-S', 'KUBE-SERVICES']);
    return /default\/kubernetes:https cluster IP/.test(s.stdout) ? s.stdout : undefined;
  });
  t.truthy(rules, 'kube-proxy never synced the kubernetes service');
  t.regex(rules ?? '', /-d 10\.24\.0\.1\/32 /, 'the kubernetes service lives at the first address of service_cidr, which server.crt names');
  t.not((await lab.exec('kubeminion1', ['readlink', '/proc/self/ns/net'])).stdout.trim(), readlinkSync('/proc/self/ns/net'));
  t.notRegex(lab.unitLog('kubeminion1', 'kube-proxy'), /forbidden/i);
  await noopRerun(t, 'minions', 'kubeminion1');
});

test.serial('verify.ts and status.ts --remote pass against the real cluster: every identity, etcd, each kubelet serving, authorizing the apiserver and refusing others', async (t) => {
  const lab = await labP;
  const v = await runScript('verify', ['--inventory', lab.inventoryPath, '--json']);
  t.is(v.code, 0, v.all);
  const results = JSON.parse(v.stdout).results as { check: string; target: string; ok: boolean; detail: string }[];
  for (const [check, target] of [['kubelet serves', 'kubeminion1'], ['kubelet authorizes', 'kubeminion1'], ['kubelet refuses', 'kubeminion1'],
    ['etcd health', 'kubemaster'], ['admin', 'admin.kubeconfig'], ['whoami', 'controller-manager'], ['whoami', 'scheduler'], ['whoami', 'kube-proxy']]) {
    t.true(results.some((x) => x.check === check && x.target === target && x.ok), `${check} ${target}`);
  }
  t.regex(results.find((x) => x.check === 'kubelet refuses')!.detail, /HTTP 403 Forbidden \(user=system:kube-proxy, verb=get, resource=nodes, subresource\(s\)=\[pods proxy\]\)/);
  const s = await runScript('status', ['--inventory', lab.inventoryPath, '--remote']);
  t.is(s.code, 0, s.all);
  t.regex(s.stdout, /kubelet-kubeminion1\.crt\s+127\.\d+\.0\.2:10250 \(served\)\s.*\bok$/m);
  t.regex(s.stdout, /server\.crt\s+127\.\d+\.0\.1:6443 \(served\)\s.*\bok$/m);
});

test.serial('the apiserver reaches a kubelet (kubectl exec) only through the binding master.ts makes, and master.ts refuses a binding of that name that grants something else', async (t) => {
  const lab = await labP;
  const pod = 'apiVersion: v1\nkind: Pod\nmetadata: { name: probe, namespace: default }\nspec:\n  nodeName: kubeminion1\n  containers: [{ name: c, image: registry.invalid/none:1 }]\n';
  t.is((await kubectlIn(['apply', '-f', '-'], pod)).exitCode, 0);
  // without the binding the real kubelet's webhook refuses the apiserver (its own message, passed on by the apiserver)
  t.is((await kubectl(['delete', 'clusterrolebinding', KUBELET_API_BINDING])).exitCode, 0);
  const denied = await kubectl(['exec', 'probe', '--', 'true']);
  t.regex(denied.stderr, /Forbidden \(user=kube-apiserver-kubelet-client, verb=create, resource=nodes, subresource\(s\)=\[proxy\]\)/);
  // a binding of kubetls's name to another role: refused, not overwritten
  t.is((await kubectl(['create', 'clusterrolebinding', KUBELET_API_BINDING, '--clusterrole=view', '--user=kube-apiserver-kubelet-client'])).exitCode, 0);
  const wrong = await runScript('master', ['--inventory', lab.inventoryPath]);
  t.is(wrong.code, 1, wrong.all);
  t.regex(wrong.all, /clusterrolebinding kubetls:apiserver-kubelet-client exists but does not bind system:kubelet-api-admin to user kube-apiserver-kubelet-client alone/);
  t.is(JSON.parse((await kubectl(['get', 'clusterrolebinding', KUBELET_API_BINDING, '-o', 'json'])).stdout).roleRef.name, 'view');
  t.is((await kubectl(['delete', 'clusterrolebinding', KUBELET_API_BINDING])).exitCode, 0);
  const fixed = await runScript('master', ['--inventory', lab.inventoryPath]);
  t.is(fixed.code, 0, fixed.all);
  t.regex(fixed.all, /\$ kubectl create clusterrolebinding kubetls:apiserver-kubelet-client --clusterrole=system:kubelet-api-admin --user=kube-apiserver-kubelet-client/);
  // the kubelet keeps a refusal for 30 s (its webhook cache): then the kubelet itself answers, as for any exec
  const reached = await waitFor(async () => {
    const e = await kubectl(['exec', 'probe', '--', 'true']);
    return /container not found \("c"\)/.test(e.stderr) ? e : undefined;
  }, 60000);
  t.truthy(reached, 'the apiserver never got through to the kubelet');
  const rerun = await runScript('master', ['--inventory', lab.inventoryPath]);
  t.regex(rerun.stdout, /nothing to do: every host already up to date/);
  await kubectl(['delete', 'pod', 'probe', '--grace-period=0', '--force']);
});

test.serial('a kubelet that lets any client certificate in fails verify\'s refusal check, and minions.ts puts the Webhook authorization back', async (t) => {
  const lab = await labP;
  const file = '/etc/kubernetes/kubelet';
  const good = lab.readFile('kubeminion1', file);
  t.true(good.includes('--authorization-mode=Webhook'));
  lab.writeFile('kubeminion1', file, good.replace('--authorization-mode=Webhook', '--authorization-mode=AlwaysAllow'));
  t.is((await lab.exec('kubeminion1', ['systemctl', 'restart', 'kubelet'])).exitCode, 0);
  const v = await waitFor(async () => {
    const r = await runScript('verify', ['--inventory', lab.inventoryPath, '--json', '--only', 'kubeminion1']);
    const x = (JSON.parse(r.stdout).results as { check: string; ok: boolean; detail: string }[]).find((y) => y.check === 'kubelet refuses');
    return x && !x.ok ? { r, x } : undefined;
  });
  t.truthy(v, 'verify never saw the kubelet let kube-proxy in');
  t.is(v?.r.code, 1);
  t.regex(v?.x.detail ?? '', /GET \/pods as system:kube-proxy: HTTP 200, expected 403/);
  const m = await runScript('minions', ['--inventory', lab.inventoryPath]);
  t.is(m.code, 0, m.all);
  t.is(lab.readFile('kubeminion1', file), good);
  t.truthy(await verifyPasses(), 'verify did not pass again');
});

test.serial('kubeadm certs check-expiration reads every certificate and kubeconfig kubetls deployed, with the CA and the expiry kubetls gave it', async (t) => {
  // kubeadm's layout (/etc/kubernetes/pki, etcd/, *.conf) made of the files on the hosts, in a folder kubeadm chroots
  // into (--rootfs); the etcd and front-proxy CA keys, which kubetls keeps on the operator's machine, come from there
  // (without them kubeadm treats those CAs as external and wants its own etcd/healthcheck-client).
  const lab = await labP;
  const kube = kubeBinDir();
  if (!kube.dir) return t.fail(kube.why);
  const root = tempDir('kubetls-kubeadm-root-');
  const etc = join(root, 'etc', 'kubernetes');
  mkdirSync(join(etc, 'pki', 'etcd'), { recursive: true });
  const put = (to: string, data: string | Buffer) => writeFileSync(join(etc, to), data, { mode: 0o600 });
  const from = (f: string) => lab.readFile('kubemaster', `/srv/kubernetes/${f}`);
  for (const f of ['ca.crt', 'ca.key', 'apiserver-kubelet-client.crt', 'apiserver-kubelet-client.key', 'apiserver-etcd-client.crt',
    'apiserver-etcd-client.key', 'front-proxy-ca.crt', 'front-proxy-client.crt', 'front-proxy-client.key', 'sa.key', 'sa.pub']) put(`pki/${f}`, from(f));
  put('pki/apiserver.crt', from('server.crt'));
  put('pki/apiserver.key', from('server.key'));
  put('pki/etcd/ca.crt', from('etcd-ca.crt'));
  for (const x of ['server', 'peer']) for (const ext of ['crt', 'key']) put(`pki/etcd/${x}.${ext}`, from(`etcd-${x}.${ext}`));
  put('pki/etcd/ca.key', await pem('etcd-ca.key'));
  put('pki/front-proxy-ca.key', await pem('front-proxy-ca.key'));
  for (const f of ['controller-manager.conf', 'scheduler.conf']) put(f, from(f));
  put('admin.conf', await pem('admin.kubeconfig'));
  const r = await execa(join(kube.dir, 'kubeadm'), ['certs', 'check-expiration', '--rootfs', root, '-o', 'json'], { reject: false, timeout: 60000 });
  t.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { certificates: { name: string; expirationDate: string; caName: string; missing: boolean }[];
    certificateAuthorities: { name: string; expirationDate: string; missing: boolean }[] };
  // what kubetls does not make (README, Differences from kubeadm): the rest is read, from the CA kubetls named
  t.deepEqual(out.certificates.filter((c) => c.missing).map((c) => c.name).sort(), ['etcd-healthcheck-client', 'super-admin.conf']);
  const ours: Record<string, [file: string, ca: string]> = {
    'admin.conf': ['admin.crt', 'ca'], apiserver: ['server.crt', 'ca'], 'apiserver-etcd-client': ['apiserver-etcd-client.crt', 'etcd-ca'],
    'apiserver-kubelet-client': ['apiserver-kubelet-client.crt', 'ca'], 'controller-manager.conf': ['controller-manager.crt', 'ca'],
    'etcd-peer': ['etcd-peer-kubemaster.crt', 'etcd-ca'], 'etcd-server': ['etcd-server-kubemaster.crt', 'etcd-ca'],
    'front-proxy-client': ['front-proxy-client.crt', 'front-proxy-ca'], 'scheduler.conf': ['scheduler.crt', 'ca'],
  };
  t.deepEqual(out.certificates.filter((c) => !c.missing).map((c) => c.name).sort(), Object.keys(ours).sort());
  for (const c of out.certificates.filter((x) => !x.missing)) {
    const [file, ca] = ours[c.name]!;
    t.is(c.caName, ca, c.name);
    t.is(new Date(c.expirationDate).getTime(), parseCert(await pem(file)).notAfter.getTime(), c.name);
  }
  t.deepEqual(out.certificateAuthorities.map((c) => [c.name, c.missing]), [['ca', false], ['etcd-ca', false], ['front-proxy-ca', false]]);
});

// ---- renew on the real cluster: each class, its readers restarted once, nothing else ------------------------------------

const servedSerialOf = async (address: string, port: number, name: string) => {
  const s = await execa('openssl', ['s_client', '-connect', `${address}:${port}`, '-servername', name], { input: '', reject: false, timeout: 15000 });
  return (await execa('openssl', ['x509', '-noout', '-serial'], { input: s.stdout, reject: false })).stdout.replace('serial=', '').trim();
};

// what each certificate's renewal must restart, and where (config/profiles.ts unitsFor says it in code; this is the
// claim), and where its new serial must be served
const RENEW_CLASSES: [cert: string, restarts: Record<string, Record<string, number>>, served?: ['master' | 'minion', number]][] = [
  ['server', { kubemaster: { 'kube-apiserver': 1 } }, ['master', 6443]],
  ['etcd-server-kubemaster', { kubemaster: { etcd: 1 } }, ['master', 2379]],
  ['etcd-peer-kubemaster', { kubemaster: { etcd: 1 } }, ['master', 2380]],
  // three of the apiserver's inputs at once: still one restart (each restart of the real apiserver costs about a minute:
  // it waits for its open watches to end before it exits)
  ['apiserver-etcd-client,front-proxy-client,apiserver-kubelet-client', { kubemaster: { 'kube-apiserver': 1 } }],
  ['kubelet-kubeminion1', { kubeminion1: { kubelet: 1 } }, ['minion', 10250]],
  ['controller-manager', { kubemaster: { 'kube-controller-manager': 1 } }],
  ['scheduler', { kubemaster: { 'kube-scheduler': 1 } }],
  ['kube-proxy', { kubeminion1: { 'kube-proxy': 1 } }],
  ['kubeminion1', { kubeminion1: { kubelet: 1 } }],
  ['admin', {}],
];
for (const [cert, want, served] of RENEW_CLASSES) {
  test.serial(`renew --cert ${cert} --force on the real cluster restarts ${JSON.stringify(want)} once and nothing else${served ? `, ${served[1]} serves the new serial` : ''}, verify passes`, async (t) => {
    const lab = await labP;
    const from = Object.fromEntries(lab.hosts.map((h) => [h.name, lab.journal(h.name).length]));
    const serials = async () => Promise.all(cert.split(',').map(async (c) => parseCert(await pem(`${c}.crt`)).serial));
    const before = await serials();
    const r = await runScript('renew', ['--inventory', lab.inventoryPath, '--cert', cert, '--force']);
    t.is(r.code, 0, r.all);
    const afterAll = await serials();
    afterAll.forEach((s, i) => t.not(s, before[i], `${cert.split(',')[i]} not reissued`));
    const after = afterAll[0];
    if (served) {
      const host = served[0] === 'master' ? lab.master : lab.minions[0]!;
      t.is(await servedSerialOf(host.address, served[1], host.name), after, `${host.address}:${served[1]} does not serve the new serial`);
    }
    for (const h of lab.hosts) t.deepEqual(restarts(lab, h.name, from[h.name]!), want[h.name] ?? {}, `restarts on ${h.name}`);
    t.truthy(await verifyPasses(), 'verify does not pass after the renewal');
  });
}

// ---- a token rotation on the real apiserver, in two runs (each restarts the real apiserver once, about a minute) ----------

/** A token-only client that rereads the minion's kubelet kubeconfig before every request (bounded: one every 100 ms). */
function tokenPoller(lab: Awaited<typeof labP>) {
  const codes: string[] = [];
  let running = true;
  const done = (async () => {
    for (let i = 0; running && i < 3000; i++) {
      const token = readKubeconfig(lab.readFile('kubeminion1', '/var/lib/kubelet/kubeconfig')).token!;
      codes.push(await askWithToken(lab, token));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return { codes, stop: async () => { running = false; await done; } };
}
const askWithToken = async (lab: Awaited<typeof labP>, token: string) => (await execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3',
  '--cacert', join(lab.pkiDir, 'ca.crt'), '-H', `Authorization: Bearer ${token}`, `https://${lab.master.address}:6443/version`], { reject: false })).stdout;
/** The tokens of the local tokens.csv, the current one first. */
const localTokens = (lab: Awaited<typeof labP>) => readFileSync(join(lab.pkiDir, 'tokens.csv'), 'utf8').trim().split('\n').map((l) => l.split(',')[0]!);
let oldToken = '';

test.serial('renew --cert tokens --only the master: the real apiserver accepts the new token beside the old after one restart, and no request is refused', async (t) => {
  const lab = await labP;
  oldToken = readKubeconfig(lab.readFile('kubeminion1', '/var/lib/kubelet/kubeconfig')).token!;
  t.is(await askWithToken(lab, oldToken), '200');
  const from = Object.fromEntries(lab.hosts.map((h) => [h.name, lab.journal(h.name).length]));
  const poll = tokenPoller(lab);
  const r = await runScript('renew', ['--inventory', lab.inventoryPath, '--cert', 'tokens', '--force', '--only', lab.master.name]);
  await poll.stop();
  // while the real apiserver restarts a request fails to connect (000), never with 401
  t.false(poll.codes.includes('401'), `refused: ${poll.codes.filter((c) => c === '401').length} of ${poll.codes.length}`);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /the old token stays valid until kubeminion1 has the new one/);
  const [now] = localTokens(lab);
  t.not(now, oldToken);
  t.is(await askWithToken(lab, now!), '200', 'the new token is accepted');
  t.is(await askWithToken(lab, oldToken), '200', 'the old one too, until every kubeconfig has the new one');
  t.deepEqual(restarts(lab, 'kubemaster', from.kubemaster!), { 'kube-apiserver': 1 });
  t.deepEqual(restarts(lab, 'kubeminion1', from.kubeminion1!), {});
});

test.serial('the next renew run gives the minion the new token and retires the old: the real apiserver then refuses it (401), and no request of the client was', async (t) => {
  const lab = await labP;
  const from = Object.fromEntries(lab.hosts.map((h) => [h.name, lab.journal(h.name).length]));
  const poll = tokenPoller(lab);
  const r = await runScript('renew', ['--inventory', lab.inventoryPath]);
  await poll.stop();
  t.false(poll.codes.includes('401'), `refused: ${poll.codes.filter((c) => c === '401').length} of ${poll.codes.length}`);
  t.true(poll.codes.includes('200'));
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /== retire the old token/);
  const [now] = localTokens(lab);
  t.is(readKubeconfig(lab.readFile('kubeminion1', '/var/lib/kubelet/kubeconfig')).token, now);
  t.is(await askWithToken(lab, oldToken), '401', 'the old token is refused once retired');
  t.is(await askWithToken(lab, now!), '200');
  t.deepEqual(restarts(lab, 'kubemaster', from.kubemaster!), { 'kube-apiserver': 1 });
  t.deepEqual(restarts(lab, 'kubeminion1', from.kubeminion1!), { kubelet: 1 });
  t.truthy(await verifyPasses(), 'verify does not pass after the rotation');
});

test.serial('after the renewals a renew run has nothing to do and the real journals show no job', async (t) => {
  const lab = await labP;
  const from = Object.fromEntries(lab.hosts.map((h) => [h.name, lab.journal(h.name).length]));
  const again = await runScript('renew', ['--inventory', lab.inventoryPath]);
  t.is(again.code, 0, again.all);
  t.regex(again.stdout, /nothing to renew; next due: /);
  for (const h of lab.hosts) t.deepEqual(lab.journal(h.name).slice(from[h.name]!), [], h.name);
});
