// Stand-in for kube-proxy (runs as root). --master overrides the kubeconfig's server, as in the real binary.
// Legacy: node-agent.ts (who am I, every 2 s). Modern (1.30): component.ts with kube-proxy's own needs: its node
// (GET nodes/NAME, once, "Failed to retrieve node info" on error) and list endpointslices; it keeps running on 401 and
// 403 as the real one does, logging the error.
import { hostname } from 'node:os';
import { makeLog, parseOrDie } from './common.ts';
import { runNodeAgent } from './node-agent.ts';
import { apiCall, clientConfig, runComponent } from './component.ts';
import { statusMessage } from './client.ts';

const { flags, version, legacy } = parseOrDie('kube-proxy');
const master = flags.get('master');
if (legacy) {
  runNodeAgent('kube-proxy', flags, version, master || undefined);
} else {
  const log = makeLog('kube-proxy');
  if (!flags.get('kubeconfig')) log.fatal('lab: kube-proxy needs --kubeconfig to reach the apiserver (none given)');
  const { cfg, server } = clientConfig(log, flags);
  const node = flags.get('hostname-override') || hostname();
  await runComponent('kube-proxy', log, version, cfg, server,
    { path: '/apis/discovery.k8s.io/v1/endpointslices', type: '*v1.EndpointSlice' }, {
      exitOn401: false,
      before: async () => {
        try {
          const r = await apiCall(cfg, server, 'GET', `/api/v1/nodes/${encodeURIComponent(node)}`);
          if (r.status === 200) log.info(`"Successfully retrieved node IP(s)" IPs=${JSON.stringify((r.json().status?.addresses ?? []).filter((a: { type: string }) => a.type === 'InternalIP').map((a: { address: string }) => a.address))}`);
          else log.error(`"Failed to retrieve node info" err=${JSON.stringify(r.status === 401 ? 'Unauthorized' : statusMessage(r))}`);
        } catch (e) {
          log.error(`"Failed to retrieve node info" err=${JSON.stringify((e as Error).message)}`);
        }
      },
    });
}
