// The modern profile's PKI as docs (/work/notes/modern-layout.md) lay it out, made in the test with the real openssl
// (EC P-256: fast) and installed with lab.writeFile — NOT with kubetls's scripts: test/lab.test.ts starts the real etcd
// and the real apiserver with files no kubetls code wrote.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import type { Lab } from '../../lab/index.ts';

export const R = '/srv/kubernetes';
export interface Named { name: string; address: string }

export interface ModernPki {
  dir: string;
  /** path of DIR/NAME.crt (or .key with key=true) */
  crt(name: string): string;
  key(name: string): string;
  /** a kubeconfig (embedded cert + key, server https://MASTER:6443, cluster CA) for the pair NAME */
  kubeconfig(name: string, server?: string): string;
  master: Named;
  minions: Named[];
  members: Named[];
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * CAs: ca (cluster), etcd-ca, front-proxy-ca. Leaves (name: CA, subject):
 *   server (apiserver serving), apiserver-kubelet-client, apiserver-etcd-client (etcd CA), front-proxy-client
 *   (front-proxy CA), etcd-server-M / etcd-peer-M per member (etcd CA), controller-manager, scheduler, kube-proxy,
 *   admin (O=system:masters), per minion M: M (kubelet client, system:node:M) and kubelet-M (kubelet serving).
 * Wrong on purpose: etcd-client-wrong-ca (the etcd client's subject, signed by the CLUSTER CA),
 *   kubelet-wrong-name (kubelet serving cert of the first minion's key pair... for kubeminion2's name), sa.key/sa.pub.
 */
export async function makeModernPki(dir: string, master: Named, minions: Named[], members: Named[]): Promise<ModernPki> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = (f: string) => `${dir}/${f}`;
  const o = (args: string[]) => execa('openssl', args, { cwd: dir });
  await Promise.all([['ca', 'kubernetes'], ['etcd-ca', 'etcd-ca'], ['front-proxy-ca', 'front-proxy-ca']].map(([n, cn]) =>
    o(['req', '-x509', ...EC, '-keyout', p(`${n}.key`), '-out', p(`${n}.crt`), '-subj', `/CN=${cn}`, '-days', '30',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature'])));
  const leaf = async (name: string, ca: string, subj: string, eku: string, sans?: string) => {
    writeFileSync(p(`${name}.ext`), `keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=${eku}\n${sans ? `subjectAltName=${sans}\n` : ''}`);
    await o(['req', '-new', ...EC, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', subj]);
    // a random serial per leaf (-CAcreateserial's serial file would race: the leaves are signed in parallel)
    await o(['x509', '-req', '-in', p(`${name}.csr`), '-CA', p(`${ca}.crt`), '-CAkey', p(`${ca}.key`), '-set_serial', `0x${randomBytes(16).toString('hex')}`,
      '-days', '30', '-extfile', p(`${name}.ext`), '-out', p(`${name}.crt`)]);
  };
  const memberSans = (m: Named) => `DNS:${m.name},DNS:localhost,IP:${m.address},IP:127.0.0.1,IP:::1`;
  await Promise.all([
    leaf('server', 'ca', '/CN=kubernetes.default.svc', 'serverAuth', `DNS:kubernetes.default.svc,DNS:${master.name},IP:10.24.0.1,IP:${master.address}`),
    leaf('apiserver-kubelet-client', 'ca', '/CN=kube-apiserver-kubelet-client', 'clientAuth'),
    leaf('apiserver-etcd-client', 'etcd-ca', '/CN=kube-apiserver-etcd-client', 'clientAuth'),
    leaf('etcd-client-wrong-ca', 'ca', '/CN=kube-apiserver-etcd-client', 'clientAuth'),
    leaf('front-proxy-client', 'front-proxy-ca', '/CN=front-proxy-client', 'clientAuth'),
    leaf('controller-manager', 'ca', '/CN=system:kube-controller-manager', 'clientAuth'),
    leaf('scheduler', 'ca', '/CN=system:kube-scheduler', 'clientAuth'),
    leaf('kube-proxy', 'ca', '/CN=system:kube-proxy', 'clientAuth'),
    leaf('admin', 'ca', '/CN=kubernetes-admin/O=system:masters', 'clientAuth'),
    ...members.flatMap((m) => [
      leaf(`etcd-server-${m.name}`, 'etcd-ca', `/CN=${m.name}`, 'serverAuth,clientAuth', memberSans(m)),
      leaf(`etcd-peer-${m.name}`, 'etcd-ca', `/CN=${m.name}`, 'serverAuth,clientAuth', memberSans(m)),
    ]),
    ...minions.flatMap((m) => [
      leaf(m.name, 'ca', `/CN=system:node:${m.name}/O=system:nodes`, 'clientAuth'),
      leaf(`kubelet-${m.name}`, 'ca', `/CN=system:node:${m.name}/O=system:nodes`, 'serverAuth', `DNS:${m.name},IP:${m.address}`),
    ]),
    ...(minions[1] ? [leaf('kubelet-wrong-name', 'ca', `/CN=system:node:${minions[1].name}/O=system:nodes`, 'serverAuth',
      `DNS:${minions[1].name},IP:${minions[1].address}`)] : []),
    o(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', p('sa.key')])
      .then(() => o(['pkey', '-in', p('sa.key'), '-pubout', '-out', p('sa.pub')])),
  ]);
  const b64 = (f: string) => readFileSync(f).toString('base64');
  return {
    dir, master, minions, members,
    crt: (n) => p(`${n}.crt`),
    key: (n) => p(`${n}.key`),
    kubeconfig: (n, server = `https://${master.name}:6443`) => `apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: ${b64(p('ca.crt'))}
    server: ${server}
  name: debian-cluster
users:
- name: ${n}
  user:
    client-certificate-data: ${b64(p(`${n}.crt`))}
    client-key-data: ${b64(p(`${n}.key`))}
contexts:
- context:
    cluster: debian-cluster
    user: ${n}
  name: ${n}@debian-cluster
current-context: ${n}@debian-cluster
`,
  };
}

/** R as the contract makes it: root:root, 0755 on the master and etcd members, 0700 on minions. */
export function makeR(lab: Lab, host: string, mode = 0o755): void {
  // inside the host (nsenter), like lab.writeFile: never through /proc/PID/root
  execFileSync('nsenter', ['-t', String(lab.host(host).pid), '-m', '-u', '-p', '--', 'install', '-d', '-m', mode.toString(8), R]);
}

/** Replace `KEY=…` (one line) in an env file, or append it. */
export function setVar(text: string, key: string, value: string): string {
  const line = `${key}="${value}"`;
  const re = new RegExp(`^${key}=.*$`, 'm');
  return re.test(text) ? text.replace(re, line) : `${text.endsWith('\n') ? text : `${text}\n`}${line}\n`;
}

export function editEnv(lab: Lab, host: string, file: string, vars: Record<string, string>): void {
  let text = lab.readFile(host, file);
  for (const [k, v] of Object.entries(vars)) text = setVar(text, k, v);
  lab.writeFile(host, file, text);
}

/** The etcd members' files and /etc/default/etcd (one VAR at a time, on top of Debian's shipped file). */
export function installEtcd(lab: Lab, pki: ModernPki, token = 'debian-cluster'): void {
  const cluster = pki.members.map((m) => `${m.name}=https://${m.address}:2380`).join(',');
  for (const m of pki.members) {
    makeR(lab, m.name);
    const etcd = { uid: lab.uids.etcd, gid: lab.uids.etcdGid, mode: 0o600 };
    lab.writeFile(m.name, `${R}/etcd-ca.crt`, readFileSync(pki.crt('etcd-ca')), { mode: 0o644 });
    for (const kind of ['server', 'peer']) {
      lab.writeFile(m.name, `${R}/etcd-${kind}.crt`, readFileSync(pki.crt(`etcd-${kind}-${m.name}`)), etcd);
      lab.writeFile(m.name, `${R}/etcd-${kind}.key`, readFileSync(pki.key(`etcd-${kind}-${m.name}`)), etcd);
    }
    editEnv(lab, m.name, '/etc/default/etcd', {
      ETCD_NAME: m.name,
      ETCD_DATA_DIR: '/var/lib/etcd/default',
      ETCD_LISTEN_CLIENT_URLS: `https://${m.address}:2379`,
      ETCD_ADVERTISE_CLIENT_URLS: `https://${m.address}:2379`,
      ETCD_LISTEN_PEER_URLS: `https://${m.address}:2380`,
      ETCD_INITIAL_ADVERTISE_PEER_URLS: `https://${m.address}:2380`,
      ETCD_INITIAL_CLUSTER: cluster,
      ETCD_INITIAL_CLUSTER_STATE: 'new',
      ETCD_INITIAL_CLUSTER_TOKEN: token,
      ETCD_CERT_FILE: `${R}/etcd-server.crt`,
      ETCD_KEY_FILE: `${R}/etcd-server.key`,
      ETCD_CLIENT_CERT_AUTH: 'true',
      ETCD_TRUSTED_CA_FILE: `${R}/etcd-ca.crt`,
      ETCD_PEER_CERT_FILE: `${R}/etcd-peer.crt`,
      ETCD_PEER_KEY_FILE: `${R}/etcd-peer.key`,
      ETCD_PEER_CLIENT_CERT_AUTH: 'true',
      ETCD_PEER_TRUSTED_CA_FILE: `${R}/etcd-ca.crt`,
    });
  }
}
