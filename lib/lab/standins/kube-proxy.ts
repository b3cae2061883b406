// Stand-in for kube-proxy (runs as root). --master overrides the kubeconfig's server, as in the real binary.
import { parseOrDie } from './common.ts';
import { runNodeAgent } from './node-agent.ts';

const { flags, version } = parseOrDie('kube-proxy');
const master = flags.get('master');
runNodeAgent('kube-proxy', flags, version, master || undefined);
