// Stand-in for the 1.4 kube-proxy of the legacy profile (runs as root; the modern profile runs the real v1.37.2).
// --master overrides the kubeconfig's server, as in the real binary; node-agent.ts asks who it is, every 2 s.
import { parseOrDie } from './common.ts';
import { runNodeAgent } from './node-agent.ts';

const { flags, version } = parseOrDie('kube-proxy');
runNodeAgent('kube-proxy', flags, version, flags.get('master') || undefined);
