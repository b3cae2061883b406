// Stand-in for the kubelet (runs as root). Legacy 1.4 takes the apiserver from --api-servers (it overrides the
// kubeconfig's server, as 1.4 did); 1.30 only from --kubeconfig. The review endpoint did not exist in 1.4: the lab's
// apiserver answers it on both versions, so "authenticated as …" means the same thing for both profiles.
// Modern: kubelet-modern.ts (serves its API on :10250 with its serving certificate, registers its Node).
import { parseOrDie } from './common.ts';
import { runNodeAgent } from './node-agent.ts';
import { runModernKubelet } from './kubelet-modern.ts';

const { flags, version, legacy } = parseOrDie('kubelet');
if (legacy) {
  const apiServers = flags.get('api-servers')?.split(',')[0];
  runNodeAgent('kubelet', flags, version, apiServers || undefined);
} else {
  await runModernKubelet(flags, version);
}
