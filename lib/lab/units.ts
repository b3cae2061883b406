// The five services as the distro "kubernetes" packages (Fedora/Debian contrib units) define them, and (modern
// profile) Debian's etcd-server unit. The systemctl stand-in runs them with exactly this data, so a wrong file, flag or
// owner fails as it would there.
export interface Unit {
  name: string;
  description: string;
  user: 'kube' | 'root' | 'etcd';
  /** the unit has no Group=: systemd uses the user's primary group (kube: nogroup, etcd: etcd) */
  group?: string;
  /** Environment= lines (systemd specifiers such as %H already in the value); EnvironmentFile= values override them */
  environment?: Record<string, string>;
  environmentFiles: string[]; // all optional ("EnvironmentFile=-…")
  exec: string; // ExecStart as written in the unit (a bare name is a stand-in in /usr/local/sbin)
  /** how start knows the service is up: the stand-in's ready line, or (etcd, Type=notify) etcd serving its clients */
  ready?: 'marker' | 'etcd';
  /** where the real unit file lives (for `systemctl status`) */
  path?: string;
}

const unit = (name: string, description: string, user: Unit['user'], env: string, exec: string): Unit => ({
  name,
  description,
  user,
  environmentFiles: ['/etc/kubernetes/config', `/etc/kubernetes/${env}`],
  exec,
});

export const UNITS: Record<string, Unit> = {
  'kube-apiserver': unit('kube-apiserver', 'Kubernetes API Server', 'kube', 'apiserver',
    'kube-apiserver $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBE_ETCD_SERVERS $KUBE_API_ADDRESS $KUBE_API_PORT ' +
      '$KUBELET_PORT $KUBE_ALLOW_PRIV $KUBE_SERVICE_ADDRESSES $KUBE_ADMISSION_CONTROL $KUBE_API_ARGS'),
  'kube-controller-manager': unit('kube-controller-manager', 'Kubernetes Controller Manager', 'kube', 'controller-manager',
    'kube-controller-manager $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBE_MASTER $KUBE_CONTROLLER_MANAGER_ARGS'),
  'kube-scheduler': unit('kube-scheduler', 'Kubernetes Scheduler Plugin', 'kube', 'scheduler',
    'kube-scheduler $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBE_MASTER $KUBE_SCHEDULER_ARGS'),
  kubelet: unit('kubelet', 'Kubernetes Kubelet Server', 'root', 'kubelet',
    'kubelet $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBELET_API_SERVER $KUBELET_ADDRESS $KUBELET_PORT ' +
      '$KUBELET_HOSTNAME $KUBE_ALLOW_PRIV $KUBELET_ARGS'),
  'kube-proxy': unit('kube-proxy', 'Kubernetes Kube-Proxy Server', 'root', 'proxy',
    'kube-proxy $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBE_MASTER $KUBE_PROXY_ARGS'),
};

export const BINARIES = Object.keys(UNITS);

/**
 * Debian bookworm's etcd-server unit (/lib/systemd/system/etcd.service, etcd 3.4): the REAL /usr/bin/etcd runs, as
 * User=etcd, Type=notify. `ETCD_NAME=%H` is filled in with the host name by the caller (etcdUnit(hostname)).
 *   Environment=DAEMON_ARGS=  Environment=ETCD_NAME=%H  Environment=ETCD_DATA_DIR=/var/lib/etcd/default
 *   EnvironmentFile=-/etc/default/%p   ExecStart=/usr/bin/etcd $DAEMON_ARGS
 * Only the modern lab knows it (the recipe's 1.4 master ran etcd without TLS, outside what the lab checks).
 */
export function etcdUnit(hostname: string): Unit {
  return {
    name: 'etcd',
    description: 'etcd - highly-available key value store',
    user: 'etcd',
    group: 'etcd',
    environment: { DAEMON_ARGS: '', ETCD_NAME: hostname, ETCD_DATA_DIR: '/var/lib/etcd/default' },
    environmentFiles: ['/etc/default/etcd'],
    exec: '/usr/bin/etcd $DAEMON_ARGS',
    ready: 'etcd',
    path: '/lib/systemd/system/etcd.service',
  };
}

/** Every unit a host may run (for `lab.services`): the five, and etcd. */
export const ALL_UNIT_NAMES = [...BINARIES, 'etcd'];

/** Inside a lab host (paths as the host sees them). */
export const RUN_DIR = '/run/kubetls-lab';
export const LOG_DIR = '/var/log/kubetls-lab';
export const JOURNAL = `${LOG_DIR}/journal`;
/** A stand-in prints this line on stdout once it is up (our sd_notify READY=1). */
export const READY_MARKER = 'kubetls-lab: ready';
