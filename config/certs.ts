/**
 * The certificate list, as data: every CA and every leaf certificate kubetls issues for an inventory, with its file
 * name, subject, SANs, extended key usage, the openssl.cnf section it is signed with and the CA that signs it
 * (kubeadm's cmd/kubeadm/app/phases/certs/certlist.go idea). Read by the PKI plan (lib/pki/plan.ts), the openssl config
 * (config/openssl.ts), status, verify, the CA rotation, and the inventory's reserved names. It imports nothing but
 * config/ and the inventory's types, so that every module can read it without a circle.
 *
 * Where each file goes and who reads it there is config/layout.ts; the flags that name them, config/profiles.ts.
 */
import { isIP } from 'node:net';
import type { Inventory } from '../lib/inventory.ts';
import { minionIdentity } from './profiles.ts';

/** The user approve.ts is to the apiserver (its client certificate's CN, no group); lib/rbac.ts binds its role to it. */
export const APPROVER_USER = 'kubetls:approver';

/** The CAs: the cluster CA of the recipe, and (modern) kubeadm's etcd and front-proxy CAs, kept apart so that a certificate of one can never authenticate to the service of another. */
export type CaName = 'ca' | 'etcd-ca' | 'front-proxy-ca';
export interface CaSpec { name: CaName; cn: string }
export function caSpecs(inv: Inventory): CaSpec[] {
  return [{ name: 'ca', cn: inv.master.name }, // the recipe's step 2: CN=<master>
    ...(inv.profile === 'modern' ? [{ name: 'etcd-ca' as const, cn: 'etcd-ca' }, { name: 'front-proxy-ca' as const, cn: 'front-proxy-ca' }] : [])];
}

export type Eku = 'serverAuth' | 'clientAuth';
export interface LeafSpec {
  /** server: the apiserver's (recipe step 5); minion: a node's client certificate (step 12); leaf: the modern profile's others */
  kind: 'server' | 'minion' | 'leaf';
  name: string; // file base name: server, kubeminion1, apiserver-etcd-client, etcd-server-kubemaster
  cn: string;
  o?: string;
  sans: string[];
  eku: Eku[];
  /** the section of openssl.cnf it is signed with (-extensions): server, client, or its own `ext_<name>` when it has SANs */
  section: string;
  ca: CaName;
}

/** An IP address in the one spelling node's X509Certificate gives a SAN (IPv6 compressed, lower case). */
export function canonicalIp(ip: string): string {
  return ip.includes(':') ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip;
}

/** `DNS:name` or `IP:address`, whichever an address is. */
const sanOf = (a: string) => (isIP(a) ? `IP:${canonicalIp(a)}` : `DNS:${a}`);

/**
 * The apiserver's serving certificate (the recipe's steps 4 and 5): its SANs are `apiserver.dns` and `apiserver.ip`
 * and, behind a balancer, every master's name and address and the endpoint's name and address.
 */
export function serverSpec(inv: Inventory): LeafSpec {
  // One server certificate for every master (the recipe's server.crt), not one per master as kubeadm issues: behind a
  // TCP balancer every master must answer for the endpoint's name anyway, so a master's key already speaks for all of
  // them (docs/ha.md). With a balancer it names, beyond apiserver.dns/ip, every master's name and address (each
  // master's own components and the rolling gates reach it directly) and the endpoint's name and address.
  const ep = inv.apiserver.endpoint;
  const extra = ep ? [...inv.masters.flatMap((m) => [`DNS:${m.name}`, sanOf(m.address)]), `DNS:${ep.name}`, sanOf(ep.address)] : [];
  return {
    kind: 'server', name: 'server', cn: inv.apiserver.cn, eku: ['serverAuth'], section: 'server', ca: 'ca',
    sans: [...new Set([...inv.apiserver.dns.map((d) => `DNS:${d}`), ...inv.apiserver.ip.map((ip) => `IP:${canonicalIp(ip)}`), ...extra])],
  };
}

/** Every leaf certificate of the inventory, in the order the plan lists them. */
export function leafSpecs(inv: Inventory): LeafSpec[] {
  // kubelet.certificates: api: kubetls makes no key for a node; each kubelet makes its own and joins by token
  const minions = (inv.kubelet?.certificates === 'api' ? [] : inv.minions).map((m): LeafSpec => ({
    kind: 'minion', name: m.name, ...minionIdentity(inv.profile, m.name), sans: [], eku: ['clientAuth'], section: 'client', ca: 'ca',
  }));
  return [serverSpec(inv), ...minions, ...(inv.profile === 'modern' ? modernLeaves(inv) : [])];
}

/**
 * The modern profile's certificates beyond the recipe's, as kubeadm's `certs check-expiration` lists them (see
 * config/layout.ts for where each goes and who reads it). Client identities are the ones the default RBAC binds.
 */
function modernLeaves(inv: Inventory): LeafSpec[] {
  const client = (name: string, cn: string, ca: CaName, o?: string): LeafSpec => ({ kind: 'leaf', name, cn, o, sans: [], eku: ['clientAuth'], section: 'client', ca });
  const withSans = (name: string, cn: string, o: string | undefined, sans: string[], eku: Eku[], ca: CaName): LeafSpec =>
    ({ kind: 'leaf', name, cn, o, sans: [...new Set(sans)], eku, section: `ext_${name.replace(/-/g, '_')}`, ca });
  return [
    client('apiserver-kubelet-client', 'kube-apiserver-kubelet-client', 'ca'),
    client('apiserver-etcd-client', 'kube-apiserver-etcd-client', 'etcd-ca'),
    client('front-proxy-client', 'front-proxy-client', 'front-proxy-ca'),
    client('controller-manager', 'system:kube-controller-manager', 'ca'),
    client('scheduler', 'system:kube-scheduler', 'ca'),
    client('kube-proxy', 'system:kube-proxy', 'ca'),
    client('admin', 'kubernetes-admin', 'ca', 'system:masters'),
    // approve.ts's own identity (lib/csr/): it may read CSRs and approve for the kubelet-serving signer, nothing else
    client('approver', APPROVER_USER, 'ca'),
    ...inv.etcd.members.flatMap((m) => {
      const sans = [`DNS:${m.name}`, 'DNS:localhost', sanOf(m.address), 'IP:127.0.0.1', 'IP:::1'];
      return [withSans(`etcd-server-${m.name}`, m.name, undefined, sans, ['serverAuth', 'clientAuth'], 'etcd-ca'),
        withSans(`etcd-peer-${m.name}`, m.name, undefined, sans, ['serverAuth', 'clientAuth'], 'etcd-ca')];
    }),
    // the kubelets' serving pairs, unless they ask for their own (kubelet.certificates: api; the inventory's name
    // check passes no kubelet settings, and so reserves these names whatever the mode)
    ...(inv.kubelet?.certificates === 'api' ? [] : inv.minions).map((m) => withSans(`kubelet-${m.name}`, `system:node:${m.name}`, 'system:nodes', [`DNS:${m.name}`, sanOf(m.address)], ['serverAuth'], 'ca')),
  ];
}
