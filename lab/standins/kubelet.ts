// Stand-in for the 1.4 kubelet of the legacy profile (runs as root; the modern profile runs the real v1.37.2). 1.4
// takes the apiserver from --api-servers (it overrides the kubeconfig's server, as 1.4 did). The review endpoint did
// not exist in 1.4: the lab's apiserver answers it, so "authenticated as …" means what verify needs.
import { parseOrDie } from './common.ts';
import { runNodeAgent } from './node-agent.ts';

const { flags, version } = parseOrDie('kubelet');
runNodeAgent('kubelet', flags, version, flags.get('api-servers')?.split(',')[0] || undefined);
