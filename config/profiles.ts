/**
 * The flags each profile writes into /etc/kubernetes/*, and which service reads which file.
 *
 * `legacy` is SEED.md steps 9, 10, 15, 16 and 17 word for word (Kubernetes 1.4). `modern` is the same cluster for
 * Kubernetes >= 1.28, where the recipe's flags make the binaries exit:
 *  - `--kubelet-https` was removed from kube-apiserver in 1.22 and `--api-servers` from the kubelet in 1.8:
 *    both give "unknown flag".
 *  - kube-apiserver needs `--service-account-issuer`, `--service-account-key-file` and
 *    `--service-account-signing-key-file` since 1.20; they name a dedicated sa.key / sa.pub pair
 *    (https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/).
 *  - kube-controller-manager's `--pod-eviction-timeout` was removed in 1.27; `--enable-server` left the kubelet.
 * Each value is one `VAR="…"` line; lib/envfile.ts edits only that variable and keeps the rest of the file.
 */
import type { Profile } from '../lib/inventory.ts';

export interface FlagContext {
  remoteDir: string; // pki.remote_dir, e.g. /srv/kubernetes
  masterUrl: string; // https://<master name>:<port>
  port: number;
  clusterDns: string;
  clusterDomain: string;
  kubeconfig: string; // /var/lib/kubelet/kubeconfig
}

/** One environment file and the variables we own in it. */
export interface EnvEdit {
  path: string;
  vars: Record<string, string>;
}

const flags = (...parts: (string | false)[]) => parts.filter(Boolean).join(' ');

/** Steps 9 and 10: the master's /etc/kubernetes/apiserver and controller-manager. */
export function masterEnv(profile: Profile, c: FlagContext): EnvEdit[] {
  const r = c.remoteDir;
  const legacy = profile === 'legacy';
  return [
    {
      path: '/etc/kubernetes/apiserver',
      vars: {
        KUBE_API_ARGS: flags(
          legacy && '--kubelet-https=true',
          `--client-ca-file=${r}/ca.crt`,
          `--tls-cert-file=${r}/server.crt`,
          `--tls-private-key-file=${r}/server.key`,
          `--token-auth-file=${r}/tokens.csv`,
          `--secure-port=${c.port}`,
          !legacy && `--service-account-issuer=https://kubernetes.default.svc.${c.clusterDomain}`,
          !legacy && `--service-account-key-file=${r}/sa.pub`,
          !legacy && `--service-account-signing-key-file=${r}/sa.key`,
        ),
      },
    },
    {
      path: '/etc/kubernetes/controller-manager',
      vars: {
        KUBE_CONTROLLER_MANAGER_ARGS: flags(
          `--root-ca-file=${r}/ca.crt`,
          // legacy signs service-account tokens with the server key, as the recipe does; modern with sa.key
          `--service-account-private-key-file=${r}/${legacy ? 'server.key' : 'sa.key'}`,
          '--node-monitor-grace-period=20s',
          legacy && '--pod-eviction-timeout=20s',
        ),
      },
    },
  ];
}

/** Steps 15, 16 and 17: a minion's /etc/kubernetes/config, kubelet and proxy. */
export function minionEnv(profile: Profile, c: FlagContext): EnvEdit[] {
  const legacy = profile === 'legacy';
  return [
    { path: '/etc/kubernetes/config', vars: { KUBE_MASTER: `--master=${c.masterUrl}` } },
    {
      path: '/etc/kubernetes/kubelet',
      vars: {
        // modern: emptied, not left alone: the distro's default file sets --api-servers, which 1.8+ refuses
        KUBELET_API_SERVER: legacy ? `--api-servers=${c.masterUrl}` : '',
        KUBELET_ARGS: flags(
          `--cluster-dns=${c.clusterDns}`,
          `--cluster-domain=${c.clusterDomain}`,
          legacy && '--enable_server=true',
          '--register-node=true',
          `--kubeconfig=${c.kubeconfig}`,
          '--node-status-update-frequency=5s',
        ),
      },
    },
    { path: '/etc/kubernetes/proxy', vars: { KUBE_PROXY_ARGS: `--kubeconfig=${c.kubeconfig}` } },
  ];
}

/**
 * Which unit reads which file: a unit is restarted when one of its files was written (and only then).
 * Paths are remote paths; `{remote}` stands for pki.remote_dir and `{minion}` for the minion's name.
 */
export const units = {
  master: [
    {
      unit: 'kube-apiserver',
      reads: ['/etc/kubernetes/apiserver', '{remote}/ca.crt', '{remote}/server.crt', '{remote}/server.key',
        '{remote}/tokens.csv', '{remote}/sa.key', '{remote}/sa.pub'],
    },
    {
      unit: 'kube-controller-manager',
      reads: ['/etc/kubernetes/controller-manager', '{remote}/ca.crt', '{remote}/server.key', '{remote}/sa.key'],
    },
  ],
  minion: [
    {
      unit: 'kubelet',
      reads: ['/etc/kubernetes/config', '/etc/kubernetes/kubelet', '/var/lib/kubelet/kubeconfig'],
    },
    {
      unit: 'kube-proxy',
      reads: ['/etc/kubernetes/config', '/etc/kubernetes/proxy', '/var/lib/kubelet/kubeconfig'],
    },
  ],
} as const;

/** The identity each credential must be given by the apiserver (verify.ts, SEED.md steps 19–20). */
export function minionIdentity(profile: Profile, name: string): { cn: string; o?: string } {
  return profile === 'legacy' ? { cn: name } : { cn: `system:node:${name}`, o: 'system:nodes' };
}
export const TOKEN_USER = 'kubelet';
