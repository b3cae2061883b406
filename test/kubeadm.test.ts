// A peer's judgement of kubetls's PKI: the real kubeadm v1.37.2 (lab/kube/build.sh; .ci/run builds it)
// makes its own certificate set for the same inventory (`kubeadm init phase certs all`, `kubeadm init phase kubeconfig
// all`), and every certificate both make is compared: subject CN and O, key usage, extended key usage, SANs, issuing CA,
// CA or not. Every difference is listed below and explained in the README's "Differences from kubeadm": a new one (a
// change in kubetls, or in kubeadm) fails this test until it is fixed or explained. Nothing here touches the network.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { kubeBinDir } from '../lab/nspawn.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { parseCert } from '../lib/pki/read.ts';
import { tempDir, writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

interface Shape { cn: string; o: string; ku: string; eku: string; sans: string; issuer: string; ca: string }

/** What is compared of one certificate (openssl prints the key usage; node:crypto does not expose it). */
async function shape(pem: Buffer, nodeName?: string): Promise<Shape> {
  const info = parseCert(pem);
  const ku = await execa('openssl', ['x509', '-noout', '-ext', 'keyUsage'], { input: pem, reject: false });
  // a node's name in a subject is the node's (kubetls: the minion; kubeadm: the control-plane node it runs on)
  const generic = (s: string) => (nodeName ? s.replaceAll(nodeName, '<node>') : s);
  return {
    cn: generic(info.subject.cn), o: info.subject.o ?? '-',
    ku: ku.stdout.split('\n').slice(1).map((l) => l.trim()).filter(Boolean).join(' ').replace(/^critical /, '') || '-',
    eku: [...info.eku].sort().join(',') || '-', sans: [...info.sans].sort().join(',') || '-',
    issuer: info.issuer.replace(/^.*CN=/, ''), ca: String(info.isCa),
  };
}

/** The client certificate a kubeconfig embeds (client-certificate-data). */
function kubeconfigCert(file: string): Buffer {
  const m = /client-certificate-data:\s*(\S+)/.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`${file}: no client-certificate-data`);
  return Buffer.from(m[1]!, 'base64');
}

test('kubetls\'s certificates match the ones kubeadm init makes for the same cluster, but for the differences the README explains', async (t) => {
  const kube = kubeBinDir();
  if (!kube.dir) return t.fail(`${kube.why}`);
  // 192.0.2.x (TEST-NET-1) only as certificate fields: nothing here connects anywhere (--pki-only, kubeadm's phases
  // write files). kubeadm refuses a loopback advertise address: "unable to select an IP from lo network interface".
  const file = writeInventory({
    profile: 'modern', pki: { key: 'ecdsa-p256' }, master: { name: 'kubemaster', address: '192.0.2.10' },
    minions: [{ name: 'kubeminion1', address: '192.0.2.11' }],
    apiserver: { cn: 'kubernetes.default.svc', dns: ['kubernetes.default.svc', 'kubemaster'], ip: ['10.24.0.1', '192.0.2.10'] },
  });
  const built = await runScript('master', ['--inventory', file, '--pki-only']);
  t.is(built.code, 0, built.all);
  const inv = loadInventory(file);
  const ours = (f: string) => readFileSync(join(inv.pki.dir, f));

  // kubeadm's own set for the same cluster: the master's name and address, the same SANs, service range and domain
  const dir = tempDir('kubetls-kubeadm-');
  const config = [
    { apiVersion: 'kubeadm.k8s.io/v1beta4', kind: 'InitConfiguration',
      localAPIEndpoint: { advertiseAddress: inv.master.address, bindPort: inv.apiserver.port }, nodeRegistration: { name: inv.master.name } },
    { apiVersion: 'kubeadm.k8s.io/v1beta4', kind: 'ClusterConfiguration', clusterName: inv.cluster, certificatesDir: join(dir, 'pki'),
      networking: { serviceSubnet: inv.serviceCidr, dnsDomain: inv.clusterDomain },
      apiServer: { certSANs: [...inv.apiserver.dns, ...inv.apiserver.ip] } },
  ].map((d) => stringify(d)).join('---\n');
  writeFileSync(join(dir, 'config.yaml'), config);
  mkdirSync(join(dir, 'kc'));
  for (const phase of [['certs', 'all'], ['kubeconfig', 'all', '--kubeconfig-dir', join(dir, 'kc')]]) {
    const r = await execa(join(kube.dir, 'kubeadm'), ['init', 'phase', ...phase, '--config', join(dir, 'config.yaml')], { reject: false });
    t.is(r.exitCode, 0, `kubeadm init phase ${phase.join(' ')}: ${r.stderr}`);
  }
  const theirs = (f: string) => readFileSync(join(dir, 'pki', f));

  // kubetls's file, kubeadm's file, and the node name each puts in a subject
  const pairs: [name: string, ours: Buffer, theirs: Buffer, ourNode?: string, theirNode?: string][] = [
    ['ca', ours('ca.crt'), theirs('ca.crt')],
    ['apiserver', ours('server.crt'), theirs('apiserver.crt')],
    ['apiserver-kubelet-client', ours('apiserver-kubelet-client.crt'), theirs('apiserver-kubelet-client.crt')],
    ['apiserver-etcd-client', ours('apiserver-etcd-client.crt'), theirs('apiserver-etcd-client.crt')],
    ['front-proxy-ca', ours('front-proxy-ca.crt'), theirs('front-proxy-ca.crt')],
    ['front-proxy-client', ours('front-proxy-client.crt'), theirs('front-proxy-client.crt')],
    ['etcd-ca', ours('etcd-ca.crt'), theirs('etcd/ca.crt')],
    ['etcd-server', ours('etcd-server-kubemaster.crt'), theirs('etcd/server.crt')],
    ['etcd-peer', ours('etcd-peer-kubemaster.crt'), theirs('etcd/peer.crt')],
    ['admin.conf', ours('admin.crt'), kubeconfigCert(join(dir, 'kc', 'admin.conf'))],
    ['controller-manager.conf', ours('controller-manager.crt'), kubeconfigCert(join(dir, 'kc', 'controller-manager.conf'))],
    ['scheduler.conf', ours('scheduler.crt'), kubeconfigCert(join(dir, 'kc', 'scheduler.conf'))],
    // a node's client certificate: kubetls's for a minion, kubeadm's kubelet.conf for the node it runs on
    ['kubelet.conf', ours('kubeminion1.crt'), kubeconfigCert(join(dir, 'kc', 'kubelet.conf')), 'kubeminion1', 'kubemaster'],
  ];
  const differences: string[] = [];
  for (const [name, a, b, ourNode, theirNode] of pairs) {
    const x = await shape(a, ourNode);
    const y = await shape(b, theirNode);
    for (const k of Object.keys(x) as (keyof Shape)[]) {
      if (x[k] !== y[k]) differences.push(`${name} ${k}: kubetls ${x[k]} | kubeadm ${y[k]}`);
    }
  }
  // what only one of the two makes
  differences.push('only kubeadm: etcd/healthcheck-client, super-admin.conf');
  differences.push('only kubetls: kube-proxy (client), kubelet-<node> (serving), tokens.csv');
  t.log(differences.join('\n'));
  t.deepEqual(differences, EXPECTED);
});

/** Every difference, each explained in the README ("Differences from kubeadm"). */
const EXPECTED: string[] = [
  // 1. the cluster CA's CN is the master's name (the recipe's step 2), kubeadm's "kubernetes"; every issuer follows
  'ca cn: kubetls kubemaster | kubeadm kubernetes',
  // 2. CAs: kubetls gives a CA only what RFC 5280 asks of one (keyCertSign, cRLSign); kubeadm (Go's certutil) adds
  //    digitalSignature and keyEncipherment, and a SAN repeating the CN
  'ca ku: kubetls Certificate Sign, CRL Sign | kubeadm Digital Signature, Key Encipherment, Certificate Sign',
  'ca sans: kubetls - | kubeadm DNS:kubernetes',
  'ca issuer: kubetls kubemaster | kubeadm kubernetes',
  // 3. the apiserver's CN is apiserver.cn (the recipe's kubernetes.default.svc); kubeadm's SANs add the service's
  //    other DNS names, which kubetls certifies only when apiserver.dns lists them
  'apiserver cn: kubetls kubernetes.default.svc | kubeadm kube-apiserver',
  'apiserver sans: kubetls DNS:kubemaster,DNS:kubernetes.default.svc,IP:10.24.0.1,IP:192.0.2.10 | kubeadm DNS:kubemaster,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.kubic.local,IP:10.24.0.1,IP:192.0.2.10',
  'apiserver issuer: kubetls kubemaster | kubeadm kubernetes',
  'apiserver-kubelet-client issuer: kubetls kubemaster | kubeadm kubernetes',
  'front-proxy-ca ku: kubetls Certificate Sign, CRL Sign | kubeadm Digital Signature, Key Encipherment, Certificate Sign',
  'front-proxy-ca sans: kubetls - | kubeadm DNS:front-proxy-ca',
  'etcd-ca ku: kubetls Certificate Sign, CRL Sign | kubeadm Digital Signature, Key Encipherment, Certificate Sign',
  'etcd-ca sans: kubetls - | kubeadm DNS:etcd-ca',
  // 4. the operator's admin is in system:masters (kept on the operator's machine only); kubeadm >= 1.29 binds its
  //    admin.conf through RBAC (kubeadm:cluster-admins) and keeps a system:masters super-admin.conf apart
  'admin.conf o: kubetls system:masters | kubeadm kubeadm:cluster-admins',
  'admin.conf issuer: kubetls kubemaster | kubeadm kubernetes',
  'controller-manager.conf issuer: kubetls kubemaster | kubeadm kubernetes',
  'scheduler.conf issuer: kubetls kubemaster | kubeadm kubernetes',
  'kubelet.conf issuer: kubetls kubemaster | kubeadm kubernetes',
  // 5. what one of the two makes and the other does not
  'only kubeadm: etcd/healthcheck-client, super-admin.conf',
  'only kubetls: kube-proxy (client), kubelet-<node> (serving), tokens.csv',
];

test('HA: kubetls\'s one server certificate names exactly what kubeadm\'s per-master apiserver certificates name together, but for kubeadm\'s extra service names', async (t) => {
  // kubeadm issues one apiserver certificate per control-plane node (its name and advertise address, the
  // controlPlaneEndpoint, certSANs); kubetls one for all masters (README, "HA"). The union of kubeadm's three must be
  // kubetls's one, less the service names kubeadm always adds (the "apiserver sans" difference above).
  const kube = kubeBinDir();
  if (!kube.dir) return t.fail(`${kube.why}`);
  // 192.0.2.x (TEST-NET-1) only as certificate fields, as above: --pki-only and kubeadm's cert phases connect nowhere
  const masters = [1, 2, 3].map((i) => ({ name: `kubemaster${i}`, address: `192.0.2.${10 + i}` }));
  const file = writeInventory({
    profile: 'modern', pki: { key: 'ecdsa-p256' }, master: undefined, masters, minions: [{ name: 'kubeminion1', address: '192.0.2.21' }],
    apiserver: { cn: 'kubernetes.default.svc', dns: ['kubernetes.default.svc'], ip: ['10.24.0.1'], endpoint: { name: 'api.example', address: '192.0.2.100' } },
  });
  const built = await runScript('master', ['--inventory', file, '--pki-only']);
  t.is(built.code, 0, built.all);
  const inv = loadInventory(file);
  const ours = parseCert(readFileSync(join(inv.pki.dir, 'server.crt'))).sans;
  const dir = tempDir('kubetls-kubeadm-ha-');
  const union = new Set<string>();
  for (const m of inv.masters) {
    const config = [
      { apiVersion: 'kubeadm.k8s.io/v1beta4', kind: 'InitConfiguration',
        localAPIEndpoint: { advertiseAddress: m.address, bindPort: inv.apiserver.port }, nodeRegistration: { name: m.name } },
      { apiVersion: 'kubeadm.k8s.io/v1beta4', kind: 'ClusterConfiguration', clusterName: inv.cluster, certificatesDir: join(dir, m.name),
        controlPlaneEndpoint: `${inv.apiserver.endpoint!.name}:${inv.apiserver.endpoint!.port}`,
        networking: { serviceSubnet: inv.serviceCidr, dnsDomain: inv.clusterDomain },
        // the balancer's address, as an operator lists it for kubeadm (controlPlaneEndpoint takes one name)
        apiServer: { certSANs: [...inv.apiserver.dns, ...inv.apiserver.ip, inv.apiserver.endpoint!.address] } },
    ].map((d) => stringify(d)).join('---\n');
    writeFileSync(join(dir, `${m.name}.yaml`), config);
    for (const phase of ['ca', 'apiserver']) {
      const r = await execa(join(kube.dir, 'kubeadm'), ['init', 'phase', 'certs', phase, '--config', join(dir, `${m.name}.yaml`)], { reject: false });
      t.is(r.exitCode, 0, `kubeadm init phase certs ${phase} (${m.name}): ${r.stderr}`);
    }
    const theirs = parseCert(readFileSync(join(dir, m.name, 'apiserver.crt'))).sans;
    t.true(theirs.includes(`DNS:${m.name}`) && theirs.includes(`IP:${m.address}`) && theirs.includes('DNS:api.example'), theirs.join(','));
    theirs.forEach((s) => union.add(s));
  }
  const kubeadmOnly = ['DNS:kubernetes', 'DNS:kubernetes.default', `DNS:kubernetes.default.svc.${inv.clusterDomain}`];
  t.deepEqual([...ours].sort(), [...union].filter((s) => !kubeadmOnly.includes(s)).sort());
});
