// /etc/kubernetes/* as the distro packages ship them, so the tool edits real files ("edit that variable only").
// legacy: the Fedora/Debian contrib files of the 1.4 era, verbatim in substance.
// modern: the same files with the flags 1.30 no longer has removed (--logtostderr, --insecure-*, --admission-control,
//         --allow-privileged for the kubelet, --api-servers), as a package for 1.30 would ship them.
import type { Profile } from './versions.ts';

const HEAD = (what: string) => `###\n# kubernetes ${what} config\n#\n`;

export function kubernetesDefaults(profile: Profile): Record<string, string> {
  const legacy = profile === 'legacy';
  return {
    config: `${HEAD('system')}# The following values are used to configure various aspects of all
# kubernetes services, including
#
#   kube-apiserver.service
#   kube-controller-manager.service
#   kube-scheduler.service
#   kubelet.service
#   kube-proxy.service
${legacy ? `# logging to stderr means we get it in the systemd journal
KUBE_LOGTOSTDERR="--logtostderr=true"
` : ''}
# journal message level, 0 is debug
KUBE_LOG_LEVEL="--v=0"
${legacy ? `
# Should this cluster be allowed to run privileged docker containers
KUBE_ALLOW_PRIV="--allow-privileged=false"
` : ''}
# How the controller-manager, scheduler, and proxy find the apiserver
KUBE_MASTER="--master=http://127.0.0.1:8080"
`,
    apiserver: `${HEAD('system')}# The following values are used to configure the kube-apiserver
#
${legacy ? `
# The address on the local server to listen to.
KUBE_API_ADDRESS="--insecure-bind-address=127.0.0.1"

# The port on the local server to listen on.
# KUBE_API_PORT="--port=8080"

# Port minions listen on
# KUBELET_PORT="--kubelet-port=10250"
` : `
# The address on the local server to listen to (default: all interfaces; in the lab: this host's address).
# KUBE_API_ADDRESS="--bind-address=0.0.0.0"

# The secure port on the local server to listen on.
# KUBE_API_PORT="--secure-port=6443"
`}
# Comma separated list of nodes in the etcd cluster
KUBE_ETCD_SERVERS="--etcd-servers=http://127.0.0.1:2379"

# Address range to use for services
KUBE_SERVICE_ADDRESSES="--service-cluster-ip-range=10.254.0.0/16"

# default admission control policies
${legacy
    ? 'KUBE_ADMISSION_CONTROL="--admission-control=NamespaceLifecycle,NamespaceExists,LimitRanger,SecurityContextDeny,ServiceAccount,ResourceQuota"'
    : 'KUBE_ADMISSION_CONTROL="--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota"'}

# Add your own!
KUBE_API_ARGS=""
`,
    'controller-manager': `${HEAD('controller-manager')}# The following values are used to configure the kubernetes controller-manager

# defaults from config and apiserver should be adequate

# Add your own!
KUBE_CONTROLLER_MANAGER_ARGS=""
`,
    scheduler: `${HEAD('scheduler')}
# default config should be adequate

# Add your own!
KUBE_SCHEDULER_ARGS=""
`,
    kubelet: `${HEAD('kubelet (minion)')}
# The address for the info server to serve on (set to 0.0.0.0 or "" for all interfaces)
KUBELET_ADDRESS="--address=127.0.0.1"

# The port for the info server to serve on
# KUBELET_PORT="--port=10250"

# You may leave this blank to use the actual hostname
KUBELET_HOSTNAME="--hostname-override=127.0.0.1"
${legacy ? `
# location of the api-server
KUBELET_API_SERVER="--api-servers=http://127.0.0.1:8080"
` : ''}
# Add your own!
KUBELET_ARGS=""
`,
    proxy: `${HEAD('proxy')}
# default config should be adequate

# Add your own!
KUBE_PROXY_ARGS=""
`,
  };
}
