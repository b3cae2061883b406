/**
 * The operator's own root on the real modern lab: a root made here, its key kept outside pki.dir and deleted before
 * master.ts runs; the three CAs of kubetls as intermediates under it; master.ts, minions.ts and verify.ts; then clients
 * kubetls did not write, each trusting the root alone (curl, openssl s_client, kubectl, etcdctl) against the real
 * apiserver, etcd and kubelet; then renew --force of every leaf, and the same clients again. Shares one lab, in order.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { kubeBinDir } from '../lab/nspawn.ts';
import { leafSpecs } from '../config/certs.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { kubeconfig } from '../lib/kubeconfig.ts';
import { pemCerts } from '../lib/pki/trust.ts';
import { tempDir } from './helpers/inventory.ts';
import { useLab } from './helpers/lab.ts';
import { makeRoot, signWithRoot } from './helpers/own-root.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 1, profile: 'modern' });
type Lab = Awaited<typeof labP>;
const inv = (lab: Lab) => ['--inventory', lab.inventoryPath];
const rootP = makeRoot();
let rootKeyBody = '';

async function must(t: any, script: string, args: string[]) {
  const r = await runScript(script, args);
  t.is(r.code, 0, `${script} ${args.join(' ')}: ${r.all.slice(-3000)}`);
  t.false(rootKeyBody !== '' && r.all.replace(/\s/g, '').includes(rootKeyBody), `${script} printed the root's key`);
  return r;
}

/** Every check a client that trusts only the root makes, with the real clients; [] when all of them succeed. */
async function rootOnlyClients(lab: Lab, rootCrt: string): Promise<string[]> {
  const p = (f: string) => path.join(lab.pkiDir, f);
  const failed: string[] = [];
  const api = lab.master.address;
  const curl = await execa('curl', ['-sS', '--fail-with-body', '--cacert', rootCrt, '--cert', p('admin.crt'), '--key', p('admin.key'),
    '--resolve', `kubemaster:6443:${api}`, 'https://kubemaster:6443/version'], { reject: false, timeout: 15_000 });
  if (curl.exitCode !== 0 || JSON.parse(curl.stdout || '{}').gitVersion !== 'v1.37.2') failed.push(`curl apiserver: ${curl.stderr}${curl.stdout}`);
  // etcd asks every client for a certificate (client-cert-auth): the apiserver's etcd client identity
  const served = async (address: string, port: number, name: string) => execa('openssl', ['s_client', '-connect', `${address}:${port}`, '-servername', name,
    '-verify_return_error', '-CAfile', rootCrt, '-verify_hostname', name, '-showcerts',
    ...(port === 2379 ? ['-cert', p('apiserver-etcd-client.crt'), '-key', p('apiserver-etcd-client.key')] : [])], { input: '', reject: false, timeout: 15_000 });
  for (const [what, address, port, name] of [['apiserver', api, 6443, 'kubemaster'], ['kubelet', lab.host('kubeminion1').address, 10250, 'kubeminion1'],
    ['etcd', api, 2379, 'kubemaster']] as const) {
    const s = await served(address, port, name);
    if (s.exitCode !== 0 || !/Verify return code: 0 \(ok\)/.test(s.stdout)) failed.push(`openssl s_client ${what}: ${s.stdout.split('\n').filter((l) => /verify/i.test(l)).join(' ')} ${s.stderr}`);
    // what it presented: the leaf and the intermediate that signed it, never the root
    const chain = pemCerts(s.stdout);
    if (chain.length !== 2) failed.push(`${what} presented ${chain.length} certificates, expected the leaf and its intermediate`);
  }
  // kubectl with a kubeconfig whose certificate-authority-data is the root alone
  const kc = path.join(tempDir(), 'root-only.kubeconfig');
  writeFileSync(kc, kubeconfig({ cluster: 'root-only', server: `https://${api}:6443`, tlsServerName: 'kubemaster', ca: readFileSync(rootCrt),
    cert: readFileSync(p('admin.crt')), key: readFileSync(p('admin.key')), user: 'admin', context: 'admin@root-only' }), { mode: 0o600 });
  const nodes = await execa('kubectl', ['--kubeconfig', kc, 'get', 'nodes', '-o', 'name'], { reject: false, timeout: 30_000 });
  if (nodes.exitCode !== 0 || nodes.stdout.trim() !== 'node/kubeminion1') failed.push(`kubectl: ${nodes.stderr}${nodes.stdout}`);
  const etcd = await execa('etcdctl', ['--endpoints', `https://${api}:2379`, '--cacert', rootCrt, '--cert', p('apiserver-etcd-client.crt'),
    '--key', p('apiserver-etcd-client.key'), '--command-timeout=5s', 'endpoint', 'health'], { reject: false, env: { ETCDCTL_API: '3' }, timeout: 20_000 });
  if (etcd.exitCode !== 0) failed.push(`etcdctl: ${etcd.stderr}${etcd.stdout}`);
  return failed;
}

test.serial('the three CAs as intermediates under a root whose key is gone: master.ts, minions.ts and verify.ts give a cluster that runs', async (t) => {
  const lab = await labP;
  const root = await rootP;
  rootKeyBody = readFileSync(root.key, 'utf8').replace(/-----[^-]+-----|\s/g, '');
  for (const ca of ['ca', 'etcd-ca', 'front-proxy-ca']) {
    await must(t, 'ca', ['request', ca, ...inv(lab)]);
    const signed = await signWithRoot(root, path.join(lab.pkiDir, `${ca}.csr`));
    await must(t, 'ca', ['import', ca, '--cert', signed, '--root', root.crt, ...inv(lab)]);
  }
  rmSync(root.key); // the root's key is gone before kubetls builds anything
  for (const s of ['master', 'minions', 'verify']) await must(t, s, inv(lab));
  // what the hosts hold as trust points is the intermediate alone: the root is no trust anchor on any host
  for (const [host, file, ca] of [['kubemaster', '/srv/kubernetes/ca.crt', 'ca'], ['kubemaster', '/srv/kubernetes/etcd-ca.crt', 'etcd-ca'],
    ['kubemaster', '/srv/kubernetes/front-proxy-ca.crt', 'front-proxy-ca'], ['kubeminion1', '/srv/kubernetes/ca.crt', 'ca']] as const) {
    const held = pemCerts(lab.readFile(host, file));
    t.deepEqual(held.map((c) => c.fingerprint256), pemCerts(readFileSync(path.join(lab.pkiDir, `${ca}.crt`))).map((c) => c.fingerprint256), `${host}:${file}`);
  }
  // and the served ones carry it: the apiserver's certificate file is the leaf, then the intermediate
  const server = pemCerts(lab.readFile('kubemaster', '/srv/kubernetes/server.crt'));
  t.is(server.length, 2);
  t.true(server[0]!.checkIssued(server[1]!));
});

test.serial('clients that trust only the root reach the apiserver, etcd and the kubelet: curl, openssl s_client, kubectl, etcdctl', async (t) => {
  const lab = await labP;
  const root = await rootP;
  t.deepEqual(await rootOnlyClients(lab, root.crt), []);
});

test.serial('renew --force of every leaf keeps them under the intermediates: verify and the root-only clients still pass, and no root key is anywhere', async (t) => {
  const lab = await labP;
  const root = await rootP;
  const names = leafSpecs(loadInventory(lab.inventoryPath)).map((l) => l.name);
  const before = readFileSync(path.join(lab.pkiDir, 'server.crt'));
  await must(t, 'renew', [...inv(lab), '--cert', names.join(','), '--force']);
  t.notDeepEqual(readFileSync(path.join(lab.pkiDir, 'server.crt')), before, 'server.crt was reissued');
  await must(t, 'verify', inv(lab));
  t.deepEqual(await rootOnlyClients(lab, root.crt), []);
  // grep -r for the root's key: not in pki.dir, not on any host's PKI folders
  const local = await execa('grep', ['-rlF', rootKeyBody.slice(0, 40), lab.pkiDir], { reject: false });
  t.is(local.exitCode, 1, `found in ${local.stdout}`);
  for (const h of lab.hosts) {
    const r = await lab.exec(h.name, ['sh', '-c', 'for d in /srv/kubernetes /var/lib/kubelet /var/lib/kube-proxy /etc/kubernetes /etc/default; do [ -d "$d" ] && set -- "$@" "$d"; done; grep -rlF -e "$0" "$@"',
      rootKeyBody.slice(0, 40)]);
    t.is(r.exitCode, 1, `${h.name}: ${r.stdout}${r.stderr}`);
  }
});

test.serial('kubeadm certs check-expiration reads the deployed set under the intermediates: each leaf and each CA as deployed on the master', async (t) => {
  const lab = await labP;
  const kube = kubeBinDir();
  if (!kube.dir) return t.fail(kube.why);
  // the master's files, as deployed, under kubeadm's names in a root of their own (--rootfs: kubeadm chroots there)
  const rootfs = tempDir('kubetls-kubeadm-root-');
  const k8s = path.join(rootfs, 'etc/kubernetes');
  mkdirSync(path.join(k8s, 'pki/etcd'), { recursive: true });
  const names: Record<string, string> = {
    'ca.crt': 'ca.crt', 'ca.key': 'ca.key', 'server.crt': 'apiserver.crt', 'server.key': 'apiserver.key', 'sa.key': 'sa.key', 'sa.pub': 'sa.pub',
    'apiserver-kubelet-client.crt': 'apiserver-kubelet-client.crt', 'apiserver-kubelet-client.key': 'apiserver-kubelet-client.key',
    'apiserver-etcd-client.crt': 'apiserver-etcd-client.crt', 'apiserver-etcd-client.key': 'apiserver-etcd-client.key',
    'front-proxy-ca.crt': 'front-proxy-ca.crt', 'front-proxy-client.crt': 'front-proxy-client.crt', 'front-proxy-client.key': 'front-proxy-client.key',
    'etcd-ca.crt': 'etcd/ca.crt', 'etcd-server.crt': 'etcd/server.crt', 'etcd-server.key': 'etcd/server.key', 'etcd-peer.crt': 'etcd/peer.crt', 'etcd-peer.key': 'etcd/peer.key',
    'controller-manager.conf': '../controller-manager.conf', 'scheduler.conf': '../scheduler.conf',
  };
  for (const [ours, theirs] of Object.entries(names)) writeFileSync(path.join(k8s, 'pki', theirs), lab.readFile('kubemaster', `/srv/kubernetes/${ours}`), { mode: 0o600 });
  writeFileSync(path.join(k8s, 'admin.conf'), readFileSync(path.join(lab.pkiDir, 'admin.kubeconfig')), { mode: 0o600 });
  // the etcd and front-proxy CA keys stay in pki.dir (no host needs them); without them kubeadm takes a CA for an
  // external one and then wants every leaf kubeadm would make under it (etcd/healthcheck-client), so they are added
  for (const [ours, theirs] of [['etcd-ca.key', 'etcd/ca.key'], ['front-proxy-ca.key', 'front-proxy-ca.key']]) {
    writeFileSync(path.join(k8s, 'pki', theirs!), readFileSync(path.join(lab.pkiDir, ours!)), { mode: 0o600 });
  }
  const r = await execa(path.join(kube.dir, 'kubeadm'), ['certs', 'check-expiration', '--rootfs', rootfs, '-o', 'json'], { reject: false, timeout: 60_000 });
  t.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { certificates: { name: string; expirationDate?: string; caName?: string; missing: boolean }[]; certificateAuthorities: { name: string; expirationDate?: string; missing: boolean }[] };
  const day = (pem: string | Buffer) => new Date(pemCerts(pem)[0]!.validTo).toISOString().slice(0, 19);
  const deployed = (f: string) => lab.readFile('kubemaster', `/srv/kubernetes/${f}`);
  const want: Record<string, [string, string]> = {
    apiserver: [day(deployed('server.crt')), 'ca'], 'apiserver-kubelet-client': [day(deployed('apiserver-kubelet-client.crt')), 'ca'],
    'apiserver-etcd-client': [day(deployed('apiserver-etcd-client.crt')), 'etcd-ca'], 'front-proxy-client': [day(deployed('front-proxy-client.crt')), 'front-proxy-ca'],
    'etcd-server': [day(deployed('etcd-server.crt')), 'etcd-ca'], 'etcd-peer': [day(deployed('etcd-peer.crt')), 'etcd-ca'],
  };
  for (const [name, [expires, ca]] of Object.entries(want)) {
    const c = out.certificates.find((x) => x.name === name);
    t.like(c, { missing: false, caName: ca }, name);
    t.is(c?.expirationDate?.slice(0, 19), expires, `${name}: kubeadm reads the leaf, the first certificate of the deployed chain`);
  }
  for (const ca of ['ca', 'etcd-ca', 'front-proxy-ca']) {
    const c = out.certificateAuthorities.find((x) => x.name === ca);
    t.like(c, { missing: false }, ca);
    t.is(c?.expirationDate?.slice(0, 19), day(readFileSync(path.join(lab.pkiDir, `${ca}.crt`))), `${ca}: the intermediate`);
  }
  // what kubetls does not make (kubeadm's etcd healthcheck client and super-admin.conf) is all kubeadm misses
  t.deepEqual(out.certificates.filter((x) => x.missing).map((x) => x.name).sort(), ['etcd-healthcheck-client', 'super-admin.conf']);
});
