/**
 * The modern profile end to end on the modern lab: the real etcd with TLS, a component identity each, the
 * apiserver → kubelet path, the admin kubeconfig, with real clients (etcdctl, kubectl). Then each thing a real
 * cluster would fail on, broken on purpose: the lab fails the way the real binaries would, verify and status say what
 * is wrong, and kubetls repairs it. The tests share one lab and run in order.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { restarts } from './helpers/e2e.ts';
import { useLab } from './helpers/lab.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 2, profile: 'modern' });
type Lab = Awaited<typeof labP>;
const inv = (lab: Lab) => ['--inventory', lab.inventoryPath];
interface Check { check: string; target: string; ok: boolean; detail: string }
async function verify(lab: Lab): Promise<{ code: number; results: Check[]; all: string }> {
  const r = await runScript('verify.ts', [...inv(lab), '--json']);
  return { code: r.code, results: (JSON.parse(r.stdout || '{"results":[]}') as { results: Check[] }).results, all: r.all };
}
const sh = (lab: Lab, host: string, script: string) => lab.exec(host, ['sh', '-c', script]);

test.serial('master.ts, minions.ts and verify.ts give a modern control plane that runs: etcd over TLS, an identity per component, the kubelets reached', async (t) => {
  const lab = await labP;
  for (const s of ['master.ts', 'minions.ts']) {
    const r = await runScript(s, inv(lab));
    t.is(r.code, 0, r.all);
  }
  const v = await verify(lab);
  t.is(v.code, 0, v.all);
  const ok = (check: string, target: string) => t.true(v.results.some((x) => x.check === check && x.target === target && x.ok), `${check} ${target}: ${JSON.stringify(v.results.filter((x) => x.check === check))}`);
  ok('etcd health', 'kubemaster');
  ok('etcd refuses', 'kubemaster');
  ok('admin', 'admin.kubeconfig');
  for (const c of ['controller-manager', 'scheduler', 'kube-proxy', 'apiserver-kubelet-client', 'admin', 'approver']) ok('whoami', c);
  for (const m of ['kubeminion1', 'kubeminion2']) {
    ok('kubelet serves', m);
    ok('kubelet authorizes', m);
    ok('kubelet refuses', m);
  }
  t.regex(v.results.find((x) => x.check === 'whoami' && x.target === 'kube-proxy')!.detail, /^system:kube-proxy /);
  // the real kubectl, with the operator's kubeconfig: the nodes that registered, as the apiserver keeps them in etcd
  const nodes = await execa('kubectl', ['--kubeconfig', path.join(lab.pkiDir, 'admin.kubeconfig'), 'get', 'nodes', '-o', 'name'], { reject: false });
  t.is(nodes.exitCode, 0, nodes.stderr);
  t.deepEqual(nodes.stdout.split('\n').sort(), ['node/kubeminion1', 'node/kubeminion2']);
  // the components work as themselves: the controller-manager holds its leader lease (a write RBAC allows only its
  // identity), and kube-proxy's informers synced with its own (no "forbidden" in its log)
  const lease = await execa('kubectl', ['--kubeconfig', path.join(lab.pkiDir, 'admin.kubeconfig'), '-n', 'kube-system', 'get', 'lease', 'kube-controller-manager',
    '-o', 'jsonpath={.spec.holderIdentity}'], { reject: false });
  t.regex(lease.stdout, /^kubemaster_/, lease.stderr);
  let proxyLog = '';
  for (let i = 0; i < 120 && !/"Caches are synced" controller="endpoint slice config"/.test(proxyLog); i++) {
    await new Promise((res) => setTimeout(res, 250));
    proxyLog = lab.unitLog('kubeminion1', 'kube-proxy');
  }
  t.regex(proxyLog, /"Caches are synced" controller="endpoint slice config"/);
  t.notRegex(proxyLog, /forbidden/);
});

test.serial('a second run writes nothing and restarts nothing', async (t) => {
  const lab = await labP;
  const before = Object.fromEntries(lab.hosts.map((h) => [h.name, restarts(lab, h.name)]));
  for (const s of ['master.ts', 'minions.ts']) {
    const r = await runScript(s, inv(lab));
    t.is(r.code, 0, r.all);
    t.regex(r.stdout, /nothing to do: every host already up to date/);
  }
  t.deepEqual(Object.fromEntries(lab.hosts.map((h) => [h.name, restarts(lab, h.name)])), before);
});

test.serial('status.ts --remote lists every certificate and kubeconfig of the set, the three CAs and what each kubelet serves, all ok', async (t) => {
  const lab = await labP;
  const r = await runScript('status.ts', [...inv(lab), '--remote', '--json']);
  t.is(r.code, 0, r.all);
  const out = JSON.parse(r.stdout) as { apiVersion: string; kind: string; rows: { name: string; where: string; status: string }[] };
  t.like(out, { apiVersion: 'kubetls/v1', kind: 'Status' });
  const rows = out.rows;
  const names = new Set(rows.map((x) => x.name));
  for (const n of ['ca.crt', 'etcd-ca.crt', 'front-proxy-ca.crt', 'apiserver-kubelet-client.crt', 'apiserver-etcd-client.crt', 'front-proxy-client.crt',
    'controller-manager.crt', 'scheduler.crt', 'kube-proxy.crt', 'admin.crt', 'etcd-server-kubemaster.crt', 'etcd-peer-kubemaster.crt',
    'kubelet-kubeminion1.crt', 'controller-manager.conf', 'scheduler.conf', 'kubeconfig', 'admin.kubeconfig']) t.true(names.has(n), n);
  t.true(rows.some((x) => x.where === 'kubeminion2:/var/lib/kube-proxy/kubeconfig' && x.status === 'ok'));
  t.true(rows.some((x) => /:10250 \(served\)$/.test(x.where) && x.name === 'kubelet-kubeminion1.crt' && x.status === 'ok'));
  t.deepEqual(rows.filter((x) => x.status !== 'ok'), []);
  // with --remote, the textfile has a series per deployed copy and per served certificate: still one per label set
  const { promtool, nodeExporterScrape } = await import('./helpers/prometheus.ts');
  const prom = path.join(lab.dir, 'remote.prom');
  t.is((await runScript('status.ts', [...inv(lab), '--remote', '--prometheus', prom])).code, 0);
  const text = readFileSync(prom, 'utf8');
  t.deepEqual(await promtool(text), { code: 0, said: '' });
  t.like(await nodeExporterScrape(text), { scrapeError: 0, gatherErrors: [] });
  t.regex(text, /^kubetls_served_certificate_not_after_seconds\{cert="kubelet",where="127\.\d+\.0\.\d+:10250"\} \d+$/m);
});

test.serial('a wrong etcd client certificate stops the apiserver as on a real cluster; verify and status say which file; master.ts repairs it', async (t) => {
  const lab = await labP;
  // the admin's pair (cluster CA) where the apiserver's etcd client pair (etcd CA) should be
  for (const [from, to] of [['admin.crt', 'apiserver-etcd-client.crt'], ['admin.key', 'apiserver-etcd-client.key']]) {
    lab.writeFile('kubemaster', `/srv/kubernetes/${to}`, readFileSync(path.join(lab.pkiDir, from)), { mode: 0o600, uid: lab.uids.kube, gid: lab.uids.nogroup });
  }
  const restart = await sh(lab, 'kubemaster', 'systemctl restart kube-apiserver');
  t.not(restart.exitCode, 0, 'the apiserver does not start without a working etcd credential');
  t.regex(lab.unitLog('kubemaster', 'kube-apiserver'), /etcd|deadline|certificate/i);
  const v = await verify(lab);
  t.is(v.code, 1);
  t.true(v.results.some((x) => x.target === 'kubemaster:/srv/kubernetes/apiserver-etcd-client.crt' && !x.ok && /differs from the local PKI/.test(x.detail)));
  t.true(v.results.some((x) => x.check === 'GET /version' && !x.ok));
  const s = await runScript('status.ts', [...inv(lab), '--remote', '--json']);
  t.is(s.code, 1);
  t.true((JSON.parse(s.stdout) as { rows: { where: string; status: string }[] }).rows.some((x) => x.where === 'kubemaster:/srv/kubernetes/apiserver-etcd-client.crt' && /^drift/.test(x.status)));
  const m = await runScript('master.ts', inv(lab));
  t.is(m.code, 0, m.all);
  t.regex(m.stdout, /\$ systemctl restart kube-apiserver/);
  t.is((await verify(lab)).code, 0);
});

test.serial('a controller-manager without its kubeconfig does not start; verify names the missing file; master.ts repairs it', async (t) => {
  const lab = await labP;
  await sh(lab, 'kubemaster', 'rm /srv/kubernetes/controller-manager.conf');
  // systemd starts it (Type=simple: `systemctl restart` says 0), the real binary exits at once and systemd keeps
  // restarting it (Restart=on-failure): never active for long, and its journal says which file
  t.is((await sh(lab, 'kubemaster', 'systemctl restart kube-controller-manager')).exitCode, 0);
  let log = '';
  for (let i = 0; i < 60 && !/controller-manager\.conf: no such file or directory/.test(log); i++) {
    await new Promise((res) => setTimeout(res, 250));
    log = lab.unitLog('kubemaster', 'kube-controller-manager');
  }
  t.regex(log, /stat \/srv\/kubernetes\/controller-manager\.conf: no such file or directory/);
  t.regex(log, /kube-controller-manager\.service: Main process exited, code=exited, status=1\/FAILURE/);
  const v = await verify(lab);
  t.true(v.results.some((x) => x.target === 'kubemaster:/srv/kubernetes/controller-manager.conf' && !x.ok && x.detail === 'missing'));
  const m = await runScript('master.ts', inv(lab));
  t.is(m.code, 0, m.all);
  t.regex(m.stdout, /\$ systemctl restart kube-controller-manager/);
  t.is((await sh(lab, 'kubemaster', 'systemctl is-active kube-controller-manager')).stdout.trim(), 'active');
});

test.serial('kube-proxy given the kubelet\'s identity is forbidden to list endpointslices; verify names the flag; minions.ts repairs it', async (t) => {
  const lab = await labP;
  // only what the restarted kube-proxy logs counts: the one before saw "forbidden" too, while the apiserver restarted
  const from = lab.unitLog('kubeminion1', 'kube-proxy').length;
  await sh(lab, 'kubeminion1', 'sed -i "s#^KUBE_PROXY_ARGS=.*#KUBE_PROXY_ARGS=\\"--kubeconfig=/var/lib/kubelet/kubeconfig\\"#" /etc/kubernetes/proxy && systemctl restart kube-proxy');
  // klog quotes the error: its quotes come escaped. Its informers start together and each logs its own "forbidden"
  // (servicecidrs may come first): wait for the endpointslices one itself
  const endpointslices = /User \\"system:node:kubeminion1\\" cannot list resource \\"endpointslices\\" in API group \\"discovery\.k8s\.io\\"/;
  let log = '';
  for (let i = 0; i < 240 && !endpointslices.test(log); i++) {
    await new Promise((res) => setTimeout(res, 250));
    log = lab.unitLog('kubeminion1', 'kube-proxy').slice(from);
  }
  t.regex(log, endpointslices);
  const v = await verify(lab);
  t.true(v.results.some((x) => x.target === 'kubeminion1:/etc/kubernetes/proxy' && !x.ok && /KUBE_PROXY_ARGS="--kubeconfig=\/var\/lib\/kubelet\/kubeconfig" differ/.test(x.detail)));
  const m = await runScript('minions.ts', inv(lab));
  t.is(m.code, 0, m.all);
  t.regex(m.stdout, /\[kubeminion1\] \$ systemctl restart kube-proxy/);
  t.is((await verify(lab)).code, 0);
});

test.serial('a kubelet serving a certificate for another name fails the kubelet checks with the name error; minions.ts repairs it', async (t) => {
  const lab = await labP;
  for (const ext of ['crt', 'key']) {
    lab.writeFile('kubeminion1', `/var/lib/kubelet/pki/kubelet.${ext}`, readFileSync(path.join(lab.pkiDir, `kubelet-kubeminion2.${ext}`)), { mode: 0o600 });
  }
  t.is((await sh(lab, 'kubeminion1', 'systemctl restart kubelet')).exitCode, 0);
  const v = await verify(lab);
  t.is(v.code, 1);
  t.regex(v.results.find((x) => x.check === 'kubelet serves' && x.target === 'kubeminion1')!.detail, /not valid for kubeminion1/);
  t.regex(v.results.find((x) => x.check === 'kubelet authorizes' && x.target === 'kubeminion1')!.detail, /Hostname\/IP does not match certificate's altnames: Host: kubeminion1\. is not in the cert's altnames: DNS:kubeminion2/);
  const m = await runScript('minions.ts', inv(lab));
  t.is(m.code, 0, m.all);
  t.is((await verify(lab)).code, 0);
});

test.serial('renew.ts --cert renews modern certificates and restarts only the units that read them: etcd for its server pair, kube-proxy for its kubeconfig', async (t) => {
  const lab = await labP;
  const before = Object.fromEntries(lab.hosts.map((h) => [h.name, restarts(lab, h.name)]));
  const r = await runScript('renew.ts', [...inv(lab), '--cert', 'etcd-server-kubemaster,kube-proxy', '--force']);
  t.is(r.code, 0, r.all);
  const after = Object.fromEntries(lab.hosts.map((h) => [h.name, restarts(lab, h.name)]));
  const delta = (host: string) => Object.fromEntries(Object.entries(after[host]).map(([u, n]) => [u, n - (before[host][u] ?? 0)]).filter(([, n]) => n));
  t.deepEqual(delta('kubemaster'), { etcd: 1 });
  for (const m of ['kubeminion1', 'kubeminion2']) t.deepEqual(delta(m), { 'kube-proxy': 1 }, m);
  const v = await verify(lab);
  t.is(v.code, 0, v.all);
});
