/**
 * kubelet.certificates (cluster.yaml): what each mode writes, decided locally. The lab proves it on the real kubelet
 * (test/kubelet-api.test.ts); here, the inventory's refusals, the flags, who reads what, the files a switch retires.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { leafSpecs } from '../config/certs.ts';
import { masterEnv, minionEnv, unitsFor } from '../config/profiles.ts';
import { InventoryError } from '../lib/inventory/errors.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { kubeconfig } from '../lib/kubeconfig.ts';
import { issuedByCluster, rotationStatus } from '../lib/kubelet-own.ts';
import { configureLog } from '../lib/log.ts';
import { applyPki } from '../lib/pki/apply.ts';
import { planPki } from '../lib/pki/plan.ts';
import { flagContext, kubeconfigsFor, placementsFor } from '../lib/rollout/desired.ts';
import { ownKubeconfig } from '../lib/join.ts';
import { apiTarget, urlOf } from '../lib/inventory.ts';
import { stringify } from 'yaml';
import { retiredOnMinion } from '../lib/rollout/steps.ts';
import { writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

configureLog({ sink: () => {}, tty: false });
const load = (patch: Record<string, unknown>) => loadInventory(writeInventory({ profile: 'modern', ...patch }));
function problem(patch: Record<string, unknown>): string {
  try { load(patch); return ''; } catch (e) {
    if (!(e instanceof InventoryError)) throw e;
    return e.message;
  }
}

test('kubelet.certificates is push by default, and api signs for pki.days unless certificate_minutes says otherwise', (t) => {
  t.deepEqual(load({}).kubelet, { certificates: 'push', certificateMinutes: 365 * 1440 });
  t.deepEqual(load({ kubelet: { certificates: 'api' } }).kubelet, { certificates: 'api', certificateMinutes: 365 * 1440 });
  t.deepEqual(load({ kubelet: { certificates: 'api', certificate_minutes: 5 } }).kubelet, { certificates: 'api', certificateMinutes: 5 });
});

test('the inventory refuses an unknown kubelet mode, a signing time under 5 minutes, an unknown key, and kubelet settings in the legacy profile', (t) => {
  t.regex(problem({ kubelet: { certificates: 'csr' } }), /kubelet\.certificates: expected push or api, found 'csr'/);
  t.regex(problem({ kubelet: { certificates: 'api', certificate_minutes: 4 } }), /kubelet\.certificate_minutes: expected a number of minutes from 5, found 4/);
  t.regex(problem({ kubelet: { rotate: true } }), /kubelet\.rotate: expected a known key/);
  t.regex(problem({ kubelet: { certificates: 'api', certificate_minutes: 100000 * 1440 + 1 } }), /kubelet\.certificate_minutes: expected a number of minutes from 5/);
  t.regex(problem({ profile: 'legacy', kubelet: { certificates: 'push' } }), /kubelet: expected no kubelet settings in the legacy profile/);
});

test('api: the kubelet bootstraps and rotates its own certificates, with no pushed serving pair; the controller-manager signs for the configured time', (t) => {
  const api = load({ kubelet: { certificates: 'api', certificate_minutes: 60 } });
  const push = load({});
  const kubeletArgs = (inv: typeof api) => minionEnv('modern', flagContext(inv), inv.minions[0]!).find((e) => e.path === '/etc/kubernetes/kubelet')!.vars.KUBELET_ARGS!;
  t.regex(kubeletArgs(api), /--bootstrap-kubeconfig=\/var\/lib\/kubelet\/bootstrap-kubeconfig --cert-dir=\/var\/lib\/kubelet\/pki --rotate-certificates=true --rotate-server-certificates=true/);
  t.notRegex(kubeletArgs(api), /--tls-cert-file|--tls-private-key-file/);
  t.regex(kubeletArgs(api), /--client-ca-file=\S+\/ca\.crt --anonymous-auth=false /, 'who may call the kubelet does not change');
  t.regex(kubeletArgs(api), / --authorization-mode=Webhook /);
  t.regex(kubeletArgs(push), /--tls-cert-file=\/var\/lib\/kubelet\/pki\/kubelet\.crt/);
  t.notRegex(kubeletArgs(push), /rotate|bootstrap/);
  const cm = (inv: typeof api) => masterEnv('modern', flagContext(inv)).find((e) => e.path === '/etc/kubernetes/controller-manager')!.vars.KUBE_CONTROLLER_MANAGER_ARGS!;
  t.regex(cm(api), / --cluster-signing-duration=60m /);
  t.notRegex(cm(push), /cluster-signing-duration/, 'a push cluster keeps its flags: nothing restarts');
  // what a minion receives: kube-proxy's kubeconfig and the CA, no kubelet kubeconfig and no key of the node
  const m = api.minions[0]!;
  t.deepEqual(kubeconfigsFor(api, m).map((k) => k.path), ['/var/lib/kube-proxy/kubeconfig']);
  t.deepEqual(placementsFor(api, m).map((p) => p.path), ['{remote}/ca.crt']);
  t.true(placementsFor(push, m).some((p) => p.path === '/var/lib/kubelet/pki/kubelet.key'));
  // no pair of the node in pki.dir for api (client or serving): nothing to renew or push over the kubelet's own
  t.false(leafSpecs(api).some((l) => l.name === `kubelet-${m.name}` || l.name === m.name));
  t.true(leafSpecs(push).some((l) => l.name === `kubelet-${m.name}`));
  t.true(leafSpecs(push).some((l) => l.name === m.name));
  // a new bootstrap kubeconfig restarts nothing; the kubelet's own files are not kubetls's to watch
  const reads = unitsFor('modern', 'minion', 'api').find((u) => u.unit === 'kubelet')!.reads;
  t.false(reads.some((p) => p.startsWith('/var/lib/kubelet/')));
  t.true(unitsFor('modern', 'minion', 'push').find((u) => u.unit === 'kubelet')!.reads.includes('/var/lib/kubelet/kubeconfig'));
});

test('a switch retires what the other mode wrote: to api the pushed kubeconfig and pairs, back to push the bootstrap kubeconfig', (t) => {
  const api = retiredOnMinion(load({ kubelet: { certificates: 'api' } }), 'n1');
  t.deepEqual(api.map((x) => x.path), ['/var/lib/kubelet/kubeconfig', '/var/lib/kubelet/pki/kubelet.crt', '/var/lib/kubelet/pki/kubelet.key',
    '/srv/kubernetes/n1.crt', '/srv/kubernetes/n1.key', '/var/lib/kubelet/bootstrap-kubeconfig']);
  t.false(retiredOnMinion(load({ kubelet: { certificates: 'api' } }), 'n1', true).some((x) => x.path.endsWith('bootstrap-kubeconfig')), 'not while it joins');
  t.deepEqual(retiredOnMinion(load({}), 'n1').map((x) => x.path), ['/var/lib/kubelet/bootstrap-kubeconfig']);
  t.deepEqual(retiredOnMinion(loadInventory(writeInventory({})), 'n1'), [], 'legacy: nothing');
});

test('the kubelet\'s own kubeconfig is kept only when it is this cluster\'s today: its server, its CA, kubelet-client-current.pem', async (t) => {
  const inv = load({ kubelet: { certificates: 'api' } });
  await applyPki(inv, planPki(inv));
  const ca = readFileSync(path.join(inv.pki.dir, 'ca.crt'));
  const pem = '/var/lib/kubelet/pki/kubelet-client-current.pem';
  // as the kubelet writes it after its bootstrap (k8s.io/kubernetes pkg/kubelet/certificate/bootstrap)
  const own = (o: { server?: string; ca?: Buffer; cert?: string; users?: number } = {}) => Buffer.from(stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'default-context',
    clusters: [{ name: 'default-cluster', cluster: { 'certificate-authority-data': (o.ca ?? ca).toString('base64'), server: o.server ?? urlOf(apiTarget(inv)) } }],
    contexts: [{ name: 'default-context', context: { cluster: 'default-cluster', namespace: 'default', user: 'default-auth' } }],
    users: Array.from({ length: o.users ?? 1 }, (_, i) => ({ name: `default-auth${i || ''}`, user: { 'client-certificate': o.cert ?? pem, 'client-key': pem } })),
  }));
  t.true(ownKubeconfig(inv, own()));
  t.false(ownKubeconfig(inv, own({ server: 'https://old-master:6443' })), 'another apiserver (an endpoint added since)');
  t.false(ownKubeconfig(inv, own({ ca: Buffer.from('another CA') })), 'another CA (replaced since)');
  t.false(ownKubeconfig(inv, own({ cert: '/tmp/kubelet-client-current.pem' })), 'another certificate file');
  t.false(ownKubeconfig(inv, own({ users: 2 })), 'a second user');
  t.false(ownKubeconfig(inv, Buffer.from('::: not yaml')), 'not YAML');
  const pushed = Buffer.from(kubeconfig({ cluster: inv.cluster, server: urlOf(apiTarget(inv)), ca, cert: Buffer.from('CERT'), key: Buffer.from('KEY'), token: 't' }));
  t.false(ownKubeconfig(inv, pushed), 'kubetls\'s pushed kubeconfig, with an embedded certificate');
});

test('a rotation of the cluster CA is refused with kubelet.certificates: api (the kubelets\' own certificates would outlive the old CA), and the others are not', async (t) => {
  const file = writeInventory({ profile: 'modern', kubelet: { certificates: 'api' } });
  const r = await runScript('renew', ['--inventory', file, '--rotate-ca', 'cluster', '--dry-run']);
  t.is(r.code, 2, r.all);
  t.regex(r.all, /--rotate-ca cluster with kubelet\.certificates: api: .*Set kubelet\.certificates: push, run master\.ts and minions\.ts, rotate, then switch back/);
  const all = await runScript('renew', ['--inventory', file, '--rotate-ca', 'all', '--dry-run']);
  t.is(all.code, 2);
  const etcd = await runScript('renew', ['--inventory', file, '--rotate-ca', 'etcd', '--dry-run']);
  t.notRegex(etcd.all, /kubelet\.certificates/, 'etcd\'s CA is not the kubelets\'');
});

test('status judges a certificate a kubelet carries itself by its issuer and its rotation: late past 90 % of its life, expired after it, another CA\'s refused', async (t) => {
  const inv = load({ kubelet: { certificates: 'api' } });
  await applyPki(inv, planPki(inv));
  const other = load({ kubelet: { certificates: 'api' } });
  await applyPki(other, planPki(other));
  const mine = new X509Certificate(readFileSync(path.join(inv.pki.dir, 'kube-proxy.crt')));
  const foreign = new X509Certificate(readFileSync(path.join(other.pki.dir, 'kube-proxy.crt')));
  t.true(issuedByCluster(inv, mine));
  t.false(issuedByCluster(inv, foreign), 'the same subject from another CA');
  const from = Date.parse(mine.validFrom);
  const life = Date.parse(mine.validTo) - from;
  t.is(rotationStatus(mine, new Date(from + 0.5 * life), 'client'), 'ok');
  t.is(rotationStatus(mine, new Date(from + 0.89 * life), 'client'), 'ok');
  t.regex(rotationStatus(mine, new Date(from + 0.91 * life), 'client'), /^renew due: the kubelet has not rotated its client certificate at 90 % of its life/);
  t.is(rotationStatus(mine, new Date(from + life + 1000), 'client'), 'expired');
});

test('join refuses a node that is not a minion of cluster.yaml, a cluster whose kubelets are pushed, and no node at all', async (t) => {
  const api = writeInventory({ profile: 'modern', kubelet: { certificates: 'api' } });
  const stranger = await runScript('join', ['--inventory', api, 'kubeminion9', '--dry-run']);
  t.is(stranger.code, 2, stranger.all);
  t.regex(stranger.all, /'kubeminion9' is not a minion of .*: add it under minions: first/);
  const master = await runScript('join', ['--inventory', api, 'kubemaster', '--dry-run']);
  t.is(master.code, 2, 'a master is no minion');
  const push = await runScript('join', ['--inventory', writeInventory({ profile: 'modern' }), 'kubeminion1', '--dry-run']);
  t.is(push.code, 2);
  t.regex(push.all, /join needs kubelet\.certificates: api/);
  t.is((await runScript('join', ['--inventory', api, '--dry-run'])).code, 2);
  const two = await runScript('join', ['--inventory', api, 'kubeminion1', 'kubeminion2', '--dry-run']);
  t.is(two.code, 2);
  t.regex(two.all, /join takes one node name/);
  const dry = await runScript('join', ['--inventory', api, 'kubeminion1', '--dry-run']);
  t.is(dry.code, 0, dry.all);
  t.regex(dry.all, /if its kubelet has no valid client certificate of its own: a bootstrap token/);
});

test('node_ip belongs to a modern minion: refused on a master, an etcd member and in the legacy profile; the serving CSR may name it', (t) => {
  t.regex(problem({ masters: [{ name: 'm1', address: '10.0.0.1', node_ip: '10.1.0.1' }, 'm2', 'm3'], apiserver: { cn: 'x', ip: ['10.0.0.1'], endpoint: 'lb' } }),
    /masters\[0\]\.node_ip: expected no node_ip on a master/);
  t.regex(problem({ etcd: { members: [{ name: 'e1', address: '10.0.0.5', node_ip: '10.1.0.5' }] } }), /etcd\.members\[0\]\.node_ip: expected no node_ip on an etcd member/);
  t.regex(problem({ profile: 'legacy', minions: [{ name: 'n1', address: '10.0.0.9', node_ip: '10.1.0.9' }] }), /minions\[0\]\.node_ip: expected no node_ip in the legacy profile/);
  t.regex(problem({ minions: [{ name: 'n1', address: '10.0.0.9', node_ip: 'nope' }] }), /minions\[0\]\.node_ip: expected an IPv4 or IPv6 address/);
  // one node's alone: not another host's address or node_ip, not the balancer's; not loopback or unspecified
  t.regex(problem({ minions: [{ name: 'n1', address: '10.0.0.9', node_ip: '10.0.0.8' }, { name: 'n2', address: '10.0.0.8' }] }), /minions\[0\]\.node_ip: expected an address of this node alone, found 10\.0\.0\.8, the address of minions\[1\]/);
  t.regex(problem({ minions: [{ name: 'n1', address: '10.0.0.9', node_ip: '10.1.0.1' }, { name: 'n2', address: '10.0.0.8', node_ip: '10.1.0.1' }] }), /minions\[1\]\.node_ip: expected an address of this node alone, found 10\.1\.0\.1, the address of minions\[0\]/);
  t.regex(problem({ minions: [{ name: 'n1', address: '10.0.0.9', node_ip: '::ffff:127.0.0.5' }] }), /minions\[0\]\.node_ip: expected an address the kubelet reports \(not loopback, not unspecified\)/);
  t.regex(problem({ minions: [{ name: 'n1', address: '10.0.0.9', node_ip: '0.0.0.0' }] }), /not loopback, not unspecified/);
  t.is(problem({ minions: [{ name: 'n1', address: '10.0.0.9', node_ip: '10.0.0.9' }] }), '', 'its own address again is no clash');
  const inv = load({ kubelet: { certificates: 'api' }, minions: [{ name: 'n1', address: '127.0.0.9', node_ip: '198.51.100.9' }, { name: 'n2', address: '10.0.0.8' }, { name: 'n3', address: '127.0.0.7' }] });
  const args = (i: number) => minionEnv('modern', flagContext(inv), inv.minions[i]!).find((e) => e.path === '/etc/kubernetes/kubelet')!.vars.KUBELET_ARGS!;
  t.regex(args(0), / --node-ip=198\.51\.100\.9( |$)/);
  t.regex(args(1), / --node-ip=10\.0\.0\.8( |$)/, 'the address, when it is an IP the kubelet takes');
  t.notRegex(args(2), /--node-ip/, 'a loopback address the kubelet refuses: none');
});
