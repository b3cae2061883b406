// HA without hosts: what an inventory of three masters behind apiserver.endpoint makes of the server
// certificate (real openssl), the flags and the kubeconfigs. The lab half is test/ha.test.ts.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { leafSpecs } from '../config/certs.ts';
import { ETCD_ENV, minionKubeconfigs, masterKubeconfigs } from '../config/layout.ts';
import { opensslConfig } from '../config/openssl.ts';
import { masterEnv, minionEnv } from '../config/profiles.ts';
import { apiTarget, masterTarget, urlOf } from '../lib/inventory.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { readKubeconfig } from '../lib/kubeconfig.ts';
import { configureLog } from '../lib/log.ts';
import { applyPki } from '../lib/pki/apply.ts';
import { planPki } from '../lib/pki/plan.ts';
import { parseCert } from '../lib/pki/read.ts';
import { envFor, flagContext, kubeconfigContent } from '../lib/rollout/desired.ts';
import { writeInventory } from './helpers/inventory.ts';

configureLog({ sink: () => undefined, tty: false });

const HA = {
  profile: 'modern', pki: { key: 'ecdsa-p256' }, master: undefined,
  masters: [{ name: 'm1', address: '10.0.0.1' }, { name: 'm2', address: '10.0.0.2' }, { name: 'm3', address: 'm3.example' }],
  minions: [{ name: 'n1', address: '10.0.0.21' }],
  apiserver: { dns: ['kubernetes.default.svc'], ip: ['10.24.0.1'], endpoint: { name: 'api.example', address: '10.0.0.100', port: 8443, drain_seconds: 7 } },
};
const built = (async () => {
  const inv = loadInventory(writeInventory(HA));
  await applyPki(inv, planPki(inv));
  return inv;
})();

test('the one server certificate names every master and the endpoint, by name and address, beside apiserver.dns and ip (real openssl)', async (t) => {
  const inv = await built;
  const want = ['DNS:kubernetes.default.svc', 'DNS:m1', 'DNS:m2', 'DNS:m3', 'DNS:m3.example', 'DNS:api.example', 'IP:10.0.0.1', 'IP:10.0.0.100', 'IP:10.0.0.2', 'IP:10.24.0.1'];
  t.deepEqual(leafSpecs(inv).find((l) => l.kind === 'server')!.sans.slice().sort(), want.slice().sort());
  const cert = parseCert(readFileSync(path.join(inv.pki.dir, 'server.crt')));
  t.deepEqual(cert.sans.slice().sort(), want.slice().sort());
  // what openssl itself says: `openssl x509 -ext subjectAltName`
  const r = await execa('openssl', ['x509', '-noout', '-ext', 'subjectAltName', '-in', path.join(inv.pki.dir, 'server.crt')]);
  t.regex(r.stdout, /DNS:api\.example/);
  t.regex(r.stdout, /IP Address:10\.0\.0\.100/);
  t.regex(opensslConfig(inv), /^DNS\.6 = api\.example$/m);
  t.regex(opensslConfig(inv), /^IP\.4 = 10\.0\.0\.100$/m);
});

test('without a balancer the server certificate has exactly apiserver.dns and ip, as before HA (no master name added)', (t) => {
  const inv = loadInventory(writeInventory({ profile: 'modern', apiserver: { dns: ['kubernetes.default.svc'], ip: ['10.24.0.1'] } }));
  t.deepEqual(leafSpecs(inv).find((l) => l.kind === 'server')!.sans, ['DNS:kubernetes.default.svc', 'IP:10.24.0.1']);
});

test('each master binds its own address; behind a balancer the apiserver drains for drain_seconds; without one it gets no such flag', (t) => {
  const inv = loadInventory(writeInventory(HA));
  for (const m of inv.masters) {
    const api = envFor(inv, m).find((e) => e.path === '/etc/kubernetes/apiserver')!.vars;
    t.regex(api.KUBE_API_ADDRESS!, new RegExp(`^--bind-address=${m.address.replaceAll('.', '\\.')}\\b`), m.name);
    t.regex(api.KUBE_API_ARGS!, / --shutdown-delay-duration=7s\b/);
    t.regex(envFor(inv, m).find((e) => e.path === '/etc/kubernetes/scheduler')!.vars.KUBE_SCHEDULER_ARGS!, new RegExp(`--bind-address=${m.address.replaceAll('.', '\\.')}$`));
    // stacked etcd: every master is a member, and its etcd names all three
    const etcd = envFor(inv, m).find((e) => e.path === ETCD_ENV)!.vars;
    t.is(etcd.ETCD_NAME, m.name);
    t.is(etcd.ETCD_INITIAL_CLUSTER, 'm1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://m3.example:2380');
  }
  t.regex(masterEnv('modern', flagContext(inv, inv.masters[1]!)).find((e) => e.path === '/etc/kubernetes/apiserver')!.vars.KUBE_ETCD_SERVERS!,
    /^--etcd-servers=https:\/\/10\.0\.0\.1:2379,https:\/\/10\.0\.0\.2:2379,https:\/\/m3\.example:2379$/);
  const single = loadInventory(writeInventory({ profile: 'modern' }));
  t.notRegex(masterEnv('modern', flagContext(single)).find((e) => e.path === '/etc/kubernetes/apiserver')!.vars.KUBE_API_ARGS!, /shutdown-delay/);
});

test('a modern apiserver, with a balancer or without, answers 429 while it drains and exits then, instead of closing its port and waiting out its request timeout; legacy 1.4 has no such flag', (t) => {
  const args = (inv: ReturnType<typeof loadInventory>) => masterEnv(inv.profile, flagContext(inv)).find((e) => e.path === '/etc/kubernetes/apiserver')!.vars.KUBE_API_ARGS!;
  t.regex(args(loadInventory(writeInventory(HA))), / --shutdown-send-retry-after=true\b/);
  t.regex(args(loadInventory(writeInventory({ profile: 'modern' }))), / --shutdown-send-retry-after=true\b/);
  t.notRegex(args(loadInventory(writeInventory({ profile: 'legacy' }))), /shutdown-send-retry-after/);
});

test('kubelets, kube-proxy and the admin kubeconfig name the endpoint; each master\'s controller-manager and scheduler name that master', async (t) => {
  const inv = await built;
  t.deepEqual(apiTarget(inv), { name: 'api.example', address: '10.0.0.100', port: 8443, drainSeconds: 7 });
  t.is(urlOf(apiTarget(inv)), 'https://api.example:8443');
  t.is(minionEnv('modern', flagContext(inv, inv.minions[0]!), inv.minions[0]!).find((e) => e.path === '/etc/kubernetes/config')!.vars.KUBE_MASTER, '--master=https://api.example:8443');
  for (const k of minionKubeconfigs('modern', 'n1')) t.is(readKubeconfig(kubeconfigContent(inv, k, inv.minions[0]).toString()).server, 'https://api.example:8443', k.path);
  for (const m of inv.masters) {
    for (const k of masterKubeconfigs('modern')) t.is(readKubeconfig(kubeconfigContent(inv, k, m).toString()).server, `https://${m.name}:6443`, `${m.name} ${k.path}`);
    t.is(urlOf(masterTarget(inv, m)), `https://${m.name}:6443`);
  }
  const admin = readKubeconfig(readFileSync(path.join(inv.pki.dir, 'admin.kubeconfig'), 'utf8'));
  t.is(admin.server, 'https://10.0.0.100:8443');
});
