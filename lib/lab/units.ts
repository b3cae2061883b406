// The five services as the distro "kubernetes" packages (Fedora/Debian contrib units) define them.
// The systemctl stand-in runs them with exactly this data, so a wrong file, flag or owner fails as it would there.
export interface Unit {
  name: string;
  description: string;
  user: 'kube' | 'root';
  environmentFiles: string[]; // all optional ("EnvironmentFile=-…")
  exec: string; // ExecStart as written in the unit
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

/** Inside a lab host (paths as the host sees them). */
export const RUN_DIR = '/run/kubetls-lab';
export const LOG_DIR = '/var/log/kubetls-lab';
export const JOURNAL = `${LOG_DIR}/journal`;
/** A stand-in prints this line on stdout once it is up (our sd_notify READY=1). */
export const READY_MARKER = 'kubetls-lab: ready';
