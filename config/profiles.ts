/**
 * The flags each profile writes into /etc/kubernetes/*, and which service reads which file.
 *
 * `legacy` is docs/recipe.md steps 9, 10, 15, 16 and 17 word for word (Kubernetes 1.4). `modern` is the same cluster for
 * Kubernetes >= 1.28, where the recipe's flags make the binaries exit:
 *  - `--kubelet-https` was removed from kube-apiserver in 1.22 and `--api-servers` from the kubelet in 1.8:
 *    both give "unknown flag".
 *  - kube-apiserver needs `--service-account-issuer`, `--service-account-key-file` and
 *    `--service-account-signing-key-file` since 1.20; they name a dedicated sa.key / sa.pub pair
 *    (https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/).
 *  - kube-controller-manager's `--pod-eviction-timeout` was removed in 1.27; `--enable-server` left the kubelet.
 * Each value is one `VAR="…"` line; lib/envfile.ts edits only that variable and keeps the rest of the file.
 */
import { isIP } from 'node:net';
import type { KubeletCerts, Profile } from '../lib/inventory.ts';
import { KUBECONFIG_PATH } from './files.ts';
import { BOOTSTRAP_KUBECONFIG, KUBE_PROXY_KUBECONFIG, KUBELET_PKI } from './layout.ts';

export interface FlagContext {
  remoteDir: string; // pki.remote_dir, e.g. /srv/kubernetes
  masterUrl: string; // where clients reach the apiserver: https://<endpoint or master name>:<port>
  masterAddress: string; // the address of the master being configured (its apiserver, controller-manager, scheduler bind it)
  /** behind a balancer: how long a stopping apiserver keeps serving with /readyz failing (--shutdown-delay-duration) */
  drainSeconds?: number;
  port: number;
  clusterDns: string;
  clusterDomain: string;
  serviceCidr: string; // modern: --service-cluster-ip-range
  kubeconfig: string; // /var/lib/kubelet/kubeconfig
  cluster: string; // the cluster's name (etcd's initial cluster token)
  /** modern: the etcd members, in inventory order */
  etcd: { name: string; address: string }[];
  /** who carries the kubelets' certificates; `api`: how long the controller-manager signs for, in minutes */
  kubelet: KubeletCerts;
  signingMinutes: number;
}

/** `<address>:<port>` (IPv6 in brackets). */
const hostPort = (address: string, port: number) => `${address.includes(':') ? `[${address}]` : address}:${port}`;
/** `https://<address>:<port>` (IPv6 in brackets). */
const url = (address: string, port: number) => `https://${address.includes(':') ? `[${address}]` : address}:${port}`;
export const ETCD_CLIENT_PORT = 2379;
/** etcd's data (Debian's default): a member that ever joined has `member/` in it. */
export const ETCD_DATA_DIR = '/var/lib/etcd/default';
export const ETCD_PEER_PORT = 2380;
export const KUBELET_PORT = 10250;
export const etcdServers = (c: FlagContext) => c.etcd.map((m) => url(m.address, ETCD_CLIENT_PORT)).join(',');

/** One environment file and the variables we own in it. */
export interface EnvEdit {
  path: string;
  vars: Record<string, string>;
}

/** 127.0.0.0/8 or ::1 (an address the apiserver will not advertise). */
export const isLoopback = (a: string) => /^127\./.test(a) || a === '::1' || /^::ffff:127\./i.test(a);

const flags = (...parts: (string | false)[]) => parts.filter(Boolean).join(' ');

/** Steps 9 and 10: the master's /etc/kubernetes/apiserver and controller-manager. */
export function masterEnv(profile: Profile, c: FlagContext): EnvEdit[] {
  const r = c.remoteDir;
  const legacy = profile === 'legacy';
  const kc = (f: string) => [`--kubeconfig=${r}/${f}`, `--authentication-kubeconfig=${r}/${f}`, `--authorization-kubeconfig=${r}/${f}`];
  return [
    // modern: the controller-manager and scheduler find the apiserver through their kubeconfigs; the distro's
    // KUBE_MASTER names the insecure port 8080, removed in 1.20, and would override them
    ...(legacy ? [] : [{ path: '/etc/kubernetes/config', vars: { KUBE_MASTER: '' } }]),
    {
      path: '/etc/kubernetes/apiserver',
      vars: {
        ...(legacy ? {} : {
          // the master's own address, as the certificate names it: the real apiserver's default is every
          // interface (0.0.0.0), and its advertised address (the `kubernetes` Endpoints) the default route's.
          // A loopback address is not advertised: 1.37 exits with "cannot use public IP 127.x with endpoint
          // reconciler: … may not be in the loopback range" (the lab's masters live on 127.N.0.1).
          KUBE_API_ADDRESS: flags(`--bind-address=${c.masterAddress}`, !isLoopback(c.masterAddress) && `--advertise-address=${c.masterAddress}`),
          KUBE_ETCD_SERVERS: `--etcd-servers=${etcdServers(c)}`,
          // the range whose first address is the `kubernetes` service (in-cluster clients' apiserver): the server
          // certificate names it (inventory check); the distro default 10.254.0.0/16 made it 10.254.0.1, a name the
          // recipe's certificate (10.24.0.1) does not have
          KUBE_SERVICE_ADDRESSES: `--service-cluster-ip-range=${c.serviceCidr}`,
          // the distro's plugins plus NodeRestriction (kubeadm's): a node may modify only its own Node object
          KUBE_ADMISSION_CONTROL: '--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota,NodeRestriction',
        }),
        KUBE_API_ARGS: flags(
          legacy && '--kubelet-https=true',
          `--client-ca-file=${r}/ca.crt`,
          `--tls-cert-file=${r}/server.crt`,
          `--tls-private-key-file=${r}/server.key`,
          `--token-auth-file=${r}/tokens.csv`,
          // api: nodes join with a bootstrap token (a Secret in kube-system, lib/join.ts)
          !legacy && c.kubelet === 'api' && '--enable-bootstrap-token-auth=true',
          `--secure-port=${c.port}`,
          !legacy && `--service-account-issuer=https://kubernetes.default.svc.${c.clusterDomain}`,
          !legacy && `--service-account-key-file=${r}/sa.pub`,
          !legacy && `--service-account-signing-key-file=${r}/sa.key`,
          // etcd over TLS with the apiserver's own etcd client certificate (etcd CA, kept apart from the cluster CA)
          !legacy && `--etcd-cafile=${r}/etcd-ca.crt --etcd-certfile=${r}/apiserver-etcd-client.crt --etcd-keyfile=${r}/apiserver-etcd-client.key`,
          // the apiserver -> kubelet path (kubectl logs/exec): its client certificate, and the CA the kubelets' serving certificates chain to
          !legacy && `--kubelet-client-certificate=${r}/apiserver-kubelet-client.crt --kubelet-client-key=${r}/apiserver-kubelet-client.key --kubelet-certificate-authority=${r}/ca.crt`,
          // aggregated APIs (metrics-server): the front-proxy CA and the apiserver's front-proxy client pair
          !legacy && `--requestheader-client-ca-file=${r}/front-proxy-ca.crt --requestheader-allowed-names=front-proxy-client --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group --requestheader-extra-headers-prefix=X-Remote-Extra-`,
          !legacy && `--proxy-client-cert-file=${r}/front-proxy-client.crt --proxy-client-key-file=${r}/front-proxy-client.key`,
          !legacy && '--authorization-mode=Node,RBAC',
          // behind a balancer: told to stop, the apiserver fails /readyz at once but serves on for this long, so the
          // balancer's health checks take it out of the rotation before it closes its port (a rolling restart then
          // fails no request); without a balancer there is no one to tell
          !legacy && c.drainSeconds !== undefined && `--shutdown-delay-duration=${c.drainSeconds}s`,
          // then it answers what is still arriving with 429 + Retry-After (client-go retries those) until its requests
          // in flight are done, and exits 2 s later. Without it the apiserver closes its port at once and then waits
          // its whole 60 s request timeout for open watches ("Failed to shutdown server: context deadline exceeded"):
          // a restart measured 67 s without it, 9 s with it (lab/README.md). Every renewal restarts it.
          !legacy && '--shutdown-send-retry-after=true',
        ),
      },
    },
    {
      path: '/etc/kubernetes/controller-manager',
      vars: {
        KUBE_CONTROLLER_MANAGER_ARGS: flags(
          ...(legacy ? [] : kc('controller-manager.conf')),
          // its health/metrics port (10257) on the master's address, not every interface (kubeadm: 127.0.0.1)
          !legacy && `--bind-address=${c.masterAddress}`,
          `--root-ca-file=${r}/ca.crt`,
          // legacy signs service-account tokens with the server key, as the recipe does; modern with sa.key
          `--service-account-private-key-file=${r}/${legacy ? 'server.key' : 'sa.key'}`,
          // modern: signs the nodes' CSRs with the cluster CA (kubeadm's choice), one service account per controller;
          // ca-signer.crt is ca.crt, never a bundle (config/layout.ts masterFiles)
          !legacy && `--cluster-signing-cert-file=${r}/ca-signer.crt --cluster-signing-key-file=${r}/ca.key --use-service-account-credentials=true`,
          // api: the kubelets' certificates live as long as pki.days says (or kubelet.certificate_minutes): the
          // default is a year whatever pki.days is. push keeps today's flags (a cluster that does not switch restarts nothing)
          !legacy && c.kubelet === 'api' && `--cluster-signing-duration=${c.signingMinutes}m`,
          // and deletes an expired bootstrap token (a join killed before it deleted its own): off by default
          !legacy && c.kubelet === 'api' && '--controllers=*,tokencleaner',
          '--node-monitor-grace-period=20s',
          legacy && '--pod-eviction-timeout=20s',
        ),
      },
    },
    ...(legacy ? [] : [{ path: '/etc/kubernetes/scheduler', vars: { KUBE_SCHEDULER_ARGS: flags(...kc('scheduler.conf'), `--bind-address=${c.masterAddress}`) } }]),
  ];
}

/**
 * An etcd member's /etc/default/etcd (Debian's etcd-server reads ETCD_* from it): client and peer TLS with client
 * certificates required, on the member's own address (kubetls does not add 127.0.0.1: the apiserver reaches every
 * member by address, and the lab's hosts share one loopback).
 */
export function etcdEnv(c: FlagContext, member: { name: string; address: string }): EnvEdit[] {
  const r = c.remoteDir;
  const client = url(member.address, ETCD_CLIENT_PORT);
  const peer = url(member.address, ETCD_PEER_PORT);
  return [{
    path: '/etc/default/etcd',
    vars: {
      ETCD_NAME: member.name,
      ETCD_DATA_DIR,
      ETCD_LISTEN_CLIENT_URLS: client,
      ETCD_ADVERTISE_CLIENT_URLS: client,
      ETCD_LISTEN_PEER_URLS: peer,
      ETCD_INITIAL_ADVERTISE_PEER_URLS: peer,
      ETCD_INITIAL_CLUSTER: c.etcd.map((m) => `${m.name}=${url(m.address, ETCD_PEER_PORT)}`).join(','),
      ETCD_INITIAL_CLUSTER_STATE: 'new',
      ETCD_INITIAL_CLUSTER_TOKEN: c.cluster,
      ETCD_CERT_FILE: `${r}/etcd-server.crt`,
      ETCD_KEY_FILE: `${r}/etcd-server.key`,
      ETCD_CLIENT_CERT_AUTH: 'true',
      ETCD_TRUSTED_CA_FILE: `${r}/etcd-ca.crt`,
      ETCD_PEER_CERT_FILE: `${r}/etcd-peer.crt`,
      ETCD_PEER_KEY_FILE: `${r}/etcd-peer.key`,
      ETCD_PEER_CLIENT_CERT_AUTH: 'true',
      ETCD_PEER_TRUSTED_CA_FILE: `${r}/etcd-ca.crt`,
    },
  }];
}

/** The kubelet's --node-ip: the minion's node_ip, else its address when that is an IP the kubelet takes. */
const nodeIp = (host: { address: string; nodeIp?: string }) => host.nodeIp ?? (isIP(host.address) && !isLoopback(host.address) ? host.address : undefined);

/** Steps 15, 16 and 17: a minion's /etc/kubernetes/config, kubelet and proxy. */
export function minionEnv(profile: Profile, c: FlagContext, host: { name: string; address: string; nodeIp?: string }): EnvEdit[] {
  const legacy = profile === 'legacy';
  return [
    { path: '/etc/kubernetes/config', vars: { KUBE_MASTER: `--master=${c.masterUrl}` } },
    {
      path: '/etc/kubernetes/kubelet',
      vars: {
        // modern: the kubelet serves its API (logs, exec) on its own address with a certificate for its name, and
        // registers under its inventory name (the distro's defaults are 127.0.0.1 for both)
        ...(legacy ? {} : { KUBELET_ADDRESS: `--address=${host.address}`, KUBELET_HOSTNAME: `--hostname-override=${host.name}` }),
        // modern: emptied, not left alone: the distro's default file sets --api-servers, which 1.8+ refuses
        KUBELET_API_SERVER: legacy ? `--api-servers=${c.masterUrl}` : '',
        KUBELET_ARGS: flags(
          `--cluster-dns=${c.clusterDns}`,
          `--cluster-domain=${c.clusterDomain}`,
          legacy && '--enable_server=true',
          '--register-node=true',
          `--kubeconfig=${c.kubeconfig}`,
          '--node-status-update-frequency=5s',
          // its API (logs, exec) only for callers with a certificate from the cluster CA: 1.30 still lets anonymous in by default
          !legacy && c.kubelet === 'push' && `--tls-cert-file=${KUBELET_PKI}/kubelet.crt --tls-private-key-file=${KUBELET_PKI}/kubelet.key`,
          !legacy && `--client-ca-file=${c.remoteDir}/ca.crt --anonymous-auth=false`,
          // api: the kubelet keeps its client certificate in --cert-dir (kubelet-client-current.pem, renewed at 70–90 % of
          // its life through a CSR the controller-manager approves and signs) and asks for its serving certificate
          // (kubelet-server-current.pem, approved by approve.ts). --bootstrap-kubeconfig is read only while it has no valid
          // client certificate: then it writes --kubeconfig itself, naming kubelet-client-current.pem
          !legacy && c.kubelet === 'api' && `--bootstrap-kubeconfig=${BOOTSTRAP_KUBECONFIG} --cert-dir=${KUBELET_PKI} --rotate-certificates=true --rotate-server-certificates=true`,
          // api: the addresses its serving CSR names are the Node's: the inventory's (node_ip, else an address that is
          // an IP and not loopback, which the kubelet refuses), not every address the host has (approve.ts denies any other)
          !legacy && c.kubelet === 'api' && nodeIp(host) !== undefined && `--node-ip=${nodeIp(host)}`,
          // and each caller authorized by the apiserver (SubjectAccessReview): the flag's default is AlwaysAllow, with
          // which any certificate of the cluster CA (another node's, kube-proxy's) may exec into this node's pods. The
          // apiserver's own kubelet client is allowed by the binding master.ts makes (lib/rbac.ts). Its health port
          // (10248) on the node's address, as --address: the default 127.0.0.1 is every node's (and in the lab, shared)
          !legacy && `--authorization-mode=Webhook --healthz-bind-address=${host.address}`,
        ),
      },
    },
    // modern: kube-proxy as system:kube-proxy (the default RBAC's system:node-proxier), not with the node's identity
    // its health (10256) and metrics (10249) ports on the node's address, not every interface and not 127.0.0.1
    { path: '/etc/kubernetes/proxy', vars: { KUBE_PROXY_ARGS: legacy ? `--kubeconfig=${c.kubeconfig}`
      : flags(`--kubeconfig=${KUBE_PROXY_KUBECONFIG}`, `--healthz-bind-address=${hostPort(host.address, 10256)}`, `--metrics-bind-address=${hostPort(host.address, 10249)}`) } },
  ];
}

/**
 * Which unit reads which file: a unit is restarted when one of its files was written (and only then), in this order
 * (etcd before the apiserver that needs it, the apiserver before its clients). Paths are remote paths; `{remote}`
 * stands for pki.remote_dir. Every unit also reads /etc/kubernetes/config except etcd (the distro units' EnvironmentFile=).
 */
export type UnitRole = 'master' | 'etcd' | 'minion';
export interface UnitReads { unit: string; reads: string[] }
export function unitsFor(profile: Profile, role: UnitRole, kubelet: KubeletCerts = 'push'): UnitReads[] {
  const R = '{remote}';
  if (profile === 'legacy') {
    if (role === 'master') {
      return [
        { unit: 'kube-apiserver', reads: ['/etc/kubernetes/apiserver', `${R}/ca.crt`, `${R}/server.crt`, `${R}/server.key`, `${R}/tokens.csv`] },
        { unit: 'kube-controller-manager', reads: ['/etc/kubernetes/controller-manager', `${R}/ca.crt`, `${R}/server.key`] },
      ];
    }
    if (role === 'minion') {
      return [
        { unit: 'kubelet', reads: ['/etc/kubernetes/config', '/etc/kubernetes/kubelet', KUBECONFIG_PATH] },
        { unit: 'kube-proxy', reads: ['/etc/kubernetes/config', '/etc/kubernetes/proxy', KUBECONFIG_PATH] },
      ];
    }
    return [];
  }
  if (role === 'etcd') {
    return [{ unit: 'etcd', reads: ['/etc/default/etcd', `${R}/etcd-ca.crt`, `${R}/etcd-server.crt`, `${R}/etcd-server.key`, `${R}/etcd-peer.crt`, `${R}/etcd-peer.key`] }];
  }
  if (role === 'master') {
    const cfg = '/etc/kubernetes/config';
    return [
      { unit: 'kube-apiserver', reads: [cfg, '/etc/kubernetes/apiserver', ...['ca.crt', 'server.crt', 'server.key', 'tokens.csv', 'sa.key', 'sa.pub',
        'etcd-ca.crt', 'apiserver-etcd-client.crt', 'apiserver-etcd-client.key', 'apiserver-kubelet-client.crt', 'apiserver-kubelet-client.key',
        'front-proxy-ca.crt', 'front-proxy-client.crt', 'front-proxy-client.key'].map((f) => `${R}/${f}`)] },
      { unit: 'kube-controller-manager', reads: [cfg, '/etc/kubernetes/controller-manager', `${R}/controller-manager.conf`, `${R}/ca.crt`, `${R}/ca-signer.crt`, `${R}/ca.key`, `${R}/sa.key`] },
      { unit: 'kube-scheduler', reads: [cfg, '/etc/kubernetes/scheduler', `${R}/scheduler.conf`] },
    ];
  }
  // api: the kubeconfig and the certificates are the kubelet's own; a new bootstrap kubeconfig needs no restart (the
  // kubelet reads it only when its own client certificate is gone or expired, and then it starts over anyway)
  const kubeletReads = kubelet === 'api' ? [] : [KUBECONFIG_PATH, `${KUBELET_PKI}/kubelet.crt`, `${KUBELET_PKI}/kubelet.key`];
  return [
    { unit: 'kubelet', reads: ['/etc/kubernetes/config', '/etc/kubernetes/kubelet', ...kubeletReads, `${R}/ca.crt`] },
    { unit: 'kube-proxy', reads: ['/etc/kubernetes/config', '/etc/kubernetes/proxy', KUBE_PROXY_KUBECONFIG] },
  ];
}

/** The identity each credential must be given by the apiserver (verify.ts, docs/recipe.md steps 19–20). */
export function minionIdentity(profile: Profile, name: string): { cn: string; o?: string } {
  return profile === 'legacy' ? { cn: name } : { cn: `system:node:${name}`, o: 'system:nodes' };
}
export const TOKEN_USER = 'kubelet';
