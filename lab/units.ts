// The units a lab host may run: the five of the distro "kubernetes" packages (lab/nspawn.ts kubeUnitFiles writes
// them) and, modern, Debian's etcd. `lab.services` and the journal readers look at these; a host's own boot units
// (ssh, journald, …) are not kubetls's.
export const ALL_UNIT_NAMES = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy', 'etcd'];
