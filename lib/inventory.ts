/**
 * The inventory as the rest of kubetls trusts it: the typed object that lib/inventory/load.ts makes from cluster.yaml
 * once it is valid, and the small pure questions every module asks of it (every host, where the apiserver is). It
 * imports nothing, so config/ and every module of lib/ may read it.
 *
 * Loading and validating: lib/inventory/load.ts (the keys: lib/inventory/schema.ts; the messages: errors.ts).
 */
import { isIP } from 'node:net';

export type Profile = 'legacy' | 'modern';
/**
 * Who carries the kubelets' certificates (cluster.yaml `kubelet.certificates`): `push`, kubetls over SSH (the recipe);
 * `api`, the kubelets themselves through the CSR API (docs/approve.md).
 */
export type KubeletCerts = 'push' | 'api';
export type KeyType = 'rsa' | 'ecdsa-p256' | 'ecdsa-p384';

export interface Host {
  name: string;
  /** `etcd`: a member of etcd.members that is not the master (a host of its own, reached over SSH like the others) */
  role: 'master' | 'minion' | 'etcd';
  address: string; // what we connect to; the name is what certificates and URLs use
  /** a minion's node_ip: the address its Node reports when it is not `address` (the kubelet's --node-ip) */
  nodeIp?: string;
  port: number;
  user: string;
  /** which of address, port and user cluster.yaml gave (for this host, or under ssh:): those win over ssh_config */
  explicit: { address: boolean; port: boolean; user: boolean };
}

export interface Inventory {
  file: string; // absolute path of cluster.yaml
  /** the example shipped with kubetls (its first line says so): master.ts and renew.ts warn before using it */
  example: boolean;
  cluster: string;
  profile: Profile;
  pki: {
    dir: string; // absolute
    remoteDir: string;
    key: KeyType;
    caBits: number;
    bits: number;
    caDays: number;
    days: number;
    renewBeforeDays: number;
  };
  apiserver: {
    cn: string; dns: string[]; ip: string[]; port: number;
    /**
     * The load balancer in front of the masters (`apiserver.endpoint`; required with more than one master): the
     * address every client outside the control plane uses (kubelets, kube-proxy, the operator's admin.kubeconfig).
     * kubetls does not manage the balancer; it names it in the server certificate and points the clients at it.
     */
    endpoint?: { name: string; address: string; port: number; drainSeconds: number };
  };
  clusterDns: string;
  clusterDomain: string;
  /** modern: the apiserver's --service-cluster-ip-range; its first address is the `kubernetes` service's ClusterIP */
  serviceCidr: string;
  ssh: {
    identityFile: string; knownHosts: string; sudo: boolean; user: string;
    /** the OpenSSH client config read for HostName, User, Port, IdentityFile, ProxyJump… (undefined: none) */
    configFile?: string;
    explicit: { identityFile: boolean; knownHosts: boolean };
  };
  /** The first master (the only one without HA): the CA is named after it, and single-master messages name it. */
  master: Host;
  /** Every master, in inventory order (`masters:`, or the one `master:`); the first is `master`. */
  masters: Host[];
  minions: Host[];
  /**
   * The etcd cluster (modern profile): its members in order. The default is stacked etcd: every master is a member. A
   * member named like a master IS that master host; any other member is a host of its own.
   */
  etcd: { members: Host[] };
  /**
   * Who carries the kubelets' certificates (modern; legacy is always `push`): kubetls over SSH, or the kubelets
   * themselves through the CSR API (docs/approve.md). certificateMinutes: what the controller-manager signs for.
   */
  kubelet: { certificates: KubeletCerts; certificateMinutes: number };
}

/** The kubelets rotate their own certificates through the CSR API (kubelet.certificates: api). */
export const kubeletApi = (inv: Inventory): boolean => inv.profile === 'modern' && inv.kubelet.certificates === 'api';

/** Every host, the masters first, then the etcd members of their own, then the minions. */
export const allHosts = (inv: Inventory): Host[] => [...inv.masters, ...etcdHosts(inv), ...inv.minions];

/** Where a client reaches the apiserver: an address to connect to, a port, and the name the certificate is checked for. */
export interface ApiTarget { address: string; port: number; name: string }
/** The address every client outside the control plane uses: the balancer (apiserver.endpoint) if any, else the master. */
export const apiTarget = (inv: Inventory): ApiTarget => inv.apiserver.endpoint ?? masterTarget(inv, inv.master);
/** One master's own apiserver (its controller-manager and scheduler use it; the rolling gates ask it). */
export const masterTarget = (inv: Inventory, host: Host): ApiTarget => ({ address: host.address, port: inv.apiserver.port, name: host.name });
/** `https://NAME:PORT` of a target (the name: kubeconfigs and flags say the name the certificate holds). */
export const urlOf = (t: ApiTarget): string => `https://${t.name.includes(':') ? `[${t.name}]` : t.name}:${t.port}`;
/** More than one master (behind apiserver.endpoint): renewals roll one master at a time. */
export const isHa = (inv: Inventory): boolean => inv.masters.length > 1;
/** The etcd members that are hosts of their own (not the master). */
export const etcdHosts = (inv: Inventory): Host[] => inv.etcd.members.filter((m) => m.role === 'etcd');

/** apiserver.endpoint.drain_seconds by default: a balancer that checks every 2 s and takes 3 failures (6 s), and a margin. */
export const DRAIN_SECONDS = 10;

/**
 * One spelling per address, for telling whether two are the same host: an IPv6 address canonical (lower case, zeros
 * compressed: `fd00:0::1` and `FD00::1` are one), an IPv4-mapped IPv6 address as its IPv4 (`::ffff:127.0.0.1` and
 * `0:0:0:0:0:ffff:7f00:1` are `127.0.0.1`), a name in lower case. An address with a zone id (`fe80::1%eth0`) is kept as
 * written, in lower case.
 */
export function canonicalAddress(a: string): string {
  if (isIP(a) !== 6) return a.toLowerCase();
  let h: string;
  try { h = new URL(`http://[${a}]/`).hostname.slice(1, -1); } catch { return a.toLowerCase(); }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h); // the URL spelling of ::ffff:a.b.c.d
  if (!mapped) return h;
  const [hi, lo] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}
