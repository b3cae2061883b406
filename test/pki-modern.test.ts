/**
 * The modern profile's certificate set, made with the real openssl and checked with it: three CAs kept
 * apart (a certificate of one never verifies with another), each leaf's subject, SANs, extendedKeyUsage and
 * basicConstraints, the admin kubeconfig, idempotency, and a leaf signed by the wrong CA reissued.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { loadInventory } from '../lib/inventory/load.ts';
import { configureLog } from '../lib/log.ts';
import { applyPki } from '../lib/pki/apply.ts';
import { planPki } from '../lib/pki/plan.ts';
import { writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

configureLog({ sink: () => undefined, tty: false });

const modern = {
  profile: 'modern', pki: { key: 'ecdsa-p256' },
  master: { name: 'kubemaster', address: '127.9.0.1' },
  minions: [{ name: 'kubeminion1', address: '127.9.0.2' }],
  etcd: { members: ['kubemaster', { name: 'kubeetcd2', address: '127.9.0.9' }, { name: 'kubeetcd3', address: '127.9.0.10' }] },
};
const built = (async () => {
  const file = writeInventory(modern);
  const inv = loadInventory(file);
  await applyPki(inv, planPki(inv));
  return { file, inv, dir: inv.pki.dir };
})();
const openssl = async (dir: string, args: string[]) => execa('openssl', args, { cwd: dir, reject: false });
const verifies = async (dir: string, ca: string, crt: string) => (await openssl(dir, ['verify', '-CAfile', ca, crt])).exitCode === 0;
const ext = async (dir: string, crt: string, name: string) => (await openssl(dir, ['x509', '-in', crt, '-noout', '-ext', name])).stdout;
const subject = async (dir: string, crt: string) => (await openssl(dir, ['x509', '-in', crt, '-noout', '-subject', '-nameopt', 'RFC2253'])).stdout.trim();

test('each certificate verifies with its own CA and with no other', async (t) => {
  const { dir } = await built;
  const own: [string, string][] = [
    ['server.crt', 'ca.crt'], ['kubeminion1.crt', 'ca.crt'], ['apiserver-kubelet-client.crt', 'ca.crt'], ['controller-manager.crt', 'ca.crt'],
    ['scheduler.crt', 'ca.crt'], ['kube-proxy.crt', 'ca.crt'], ['admin.crt', 'ca.crt'], ['kubelet-kubeminion1.crt', 'ca.crt'],
    ['apiserver-etcd-client.crt', 'etcd-ca.crt'], ['etcd-server-kubemaster.crt', 'etcd-ca.crt'], ['etcd-peer-kubeetcd2.crt', 'etcd-ca.crt'],
    ['front-proxy-client.crt', 'front-proxy-ca.crt'],
  ];
  for (const [crt, ca] of own) {
    t.true(await verifies(dir, ca, crt), `${crt} with ${ca}`);
    for (const other of ['ca.crt', 'etcd-ca.crt', 'front-proxy-ca.crt'].filter((c) => c !== ca)) t.false(await verifies(dir, other, crt), `${crt} must not verify with ${other}`);
  }
});

test('subjects are the identities the default RBAC and the Node authorizer expect', async (t) => {
  const { dir } = await built;
  const want: Record<string, string> = {
    'apiserver-kubelet-client.crt': 'subject=CN=kube-apiserver-kubelet-client',
    'apiserver-etcd-client.crt': 'subject=CN=kube-apiserver-etcd-client',
    'front-proxy-client.crt': 'subject=CN=front-proxy-client',
    'controller-manager.crt': 'subject=CN=system:kube-controller-manager',
    'scheduler.crt': 'subject=CN=system:kube-scheduler',
    'kube-proxy.crt': 'subject=CN=system:kube-proxy',
    'admin.crt': 'subject=CN=kubernetes-admin,O=system:masters',
    'kubelet-kubeminion1.crt': 'subject=CN=system:node:kubeminion1,O=system:nodes',
    'etcd-server-kubeetcd2.crt': 'subject=CN=kubeetcd2',
    'etcd-ca.crt': 'subject=CN=etcd-ca',
    'front-proxy-ca.crt': 'subject=CN=front-proxy-ca',
  };
  for (const [crt, s] of Object.entries(want)) t.is(await subject(dir, crt), s, crt);
});

test('SANs, extendedKeyUsage and basicConstraints are what each service checks', async (t) => {
  const { dir } = await built;
  for (const m of [['kubemaster', '127.9.0.1'], ['kubeetcd2', '127.9.0.9']]) {
    for (const kind of ['server', 'peer']) {
      const crt = `etcd-${kind}-${m[0]}.crt`;
      t.regex(await ext(dir, crt, 'subjectAltName'), new RegExp(`DNS:${m[0]}, DNS:localhost, IP Address:${m[1].replace(/\./g, '\\.')}, IP Address:127\\.0\\.0\\.1, IP Address:0:0:0:0:0:0:0:1`), crt);
      t.regex(await ext(dir, crt, 'extendedKeyUsage'), /TLS Web Server Authentication, TLS Web Client Authentication/, crt);
    }
  }
  t.regex(await ext(dir, 'kubelet-kubeminion1.crt', 'subjectAltName'), /DNS:kubeminion1, IP Address:127\.9\.0\.2$/);
  t.regex(await ext(dir, 'kubelet-kubeminion1.crt', 'extendedKeyUsage'), /TLS Web Server Authentication$/);
  for (const crt of ['apiserver-kubelet-client.crt', 'apiserver-etcd-client.crt', 'front-proxy-client.crt', 'kube-proxy.crt', 'admin.crt']) {
    t.regex(await ext(dir, crt, 'extendedKeyUsage'), /TLS Web Client Authentication$/, crt);
    t.notRegex(await ext(dir, crt, 'extendedKeyUsage'), /Server/, crt);
  }
  for (const crt of ['etcd-ca.crt', 'front-proxy-ca.crt', 'ca.crt']) t.regex(await ext(dir, crt, 'basicConstraints'), /critical\n\s+CA:TRUE/, crt);
  for (const crt of ['apiserver-etcd-client.crt', 'etcd-peer-kubemaster.crt', 'kubelet-kubeminion1.crt', 'admin.crt']) t.regex(await ext(dir, crt, 'basicConstraints'), /CA:FALSE/, crt);
});

test('admin.kubeconfig is owner-only, reaches the master by address and checks its certificate for the master\'s name', async (t) => {
  const { dir } = await built;
  const file = path.join(dir, 'admin.kubeconfig');
  t.is(statSync(file).mode & 0o777, 0o600);
  const view = await execa('kubectl', ['config', 'view', '--kubeconfig', file, '--raw', '-o', 'jsonpath={.clusters[0].cluster.server} {.clusters[0].cluster.tls-server-name} {.users[0].name}'], { reject: false });
  t.is(view.stdout, 'https://127.9.0.1:6443 kubemaster kubernetes-admin', view.stderr);
  t.true(readFileSync(file, 'utf8').includes(Buffer.from(readFileSync(path.join(dir, 'admin.crt'))).toString('base64')));
});

test('a second master.ts --pki-only on the modern set does nothing', async (t) => {
  const { file } = await built;
  const r = await runScript('master.ts', ['--inventory', file, '--pki-only']);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /PKI: nothing to do/);
  t.notRegex(r.all, /\$ (openssl|kubectl|mv)/);
});

test('a leaf signed by the wrong CA is reissued by its own', async (t) => {
  const file = writeInventory(modern);
  const inv = loadInventory(file);
  await applyPki(inv, planPki(inv));
  const dir = inv.pki.dir;
  // the apiserver's etcd client certificate, signed by the cluster CA instead of the etcd CA
  await openssl(dir, ['x509', '-req', '-in', 'apiserver-etcd-client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '30', '-out', 'apiserver-etcd-client.crt']);
  const plan = planPki(inv);
  const item = plan.items.find((i) => i.name === 'apiserver-etcd-client')!;
  t.is(item.action, 'reissue');
  t.regex(item.reason, /^not signed by the current etcd-ca/);
  await applyPki(inv, plan);
  t.true(await verifies(dir, 'etcd-ca.crt', 'apiserver-etcd-client.crt'));
});

test('status.ts shows the certificates as kubeadm does, and the three CAs in a table of their own', async (t) => {
  const { file } = await built;
  const r = await runScript('status.ts', ['--inventory', file]);
  t.is(r.code, 0, r.all);
  const [certs, cas] = r.stdout.split(/\n\n/);
  t.regex(certs, /^CERTIFICATE +WHERE +EXPIRES +RESIDUAL TIME +AUTHORITY +STATUS/);
  t.regex(certs, /^apiserver-etcd-client\.crt +\S+ +\w{3} \d+, \d{4} \d\d:\d\d UTC +364d +etcd-ca +ok$/m);
  t.regex(certs, /^front-proxy-client\.crt .* front-proxy-ca +ok$/m);
  t.notRegex(certs, /^(ca|etcd-ca|front-proxy-ca)\.crt /m, 'no CA among the certificates');
  t.regex(cas, /^CERTIFICATE AUTHORITY +EXPIRES +RESIDUAL TIME +STATUS\nca +.* 9y +ok\netcd-ca +.* ok\nfront-proxy-ca +.* ok\n/);
  const wide = await runScript('status.ts', ['--inventory', file, '--wide']);
  t.regex(wide.stdout, /^etcd-server-kubeetcd2\.crt .* CN=kubeetcd2 +DNS:kubeetcd2,DNS:localhost,IP:127\.9\.0\.9,IP:127\.0\.0\.1,IP:::1$/m);
});
