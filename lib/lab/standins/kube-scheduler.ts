// Stand-in for kube-scheduler: flags of the emulated version, --kubeconfig must load, then it stays up.
// Modern (1.30): it talks to the apiserver with its own --kubeconfig (component.ts): who am I, then list pods;
// no kubeconfig or 401 ⇒ exit 1, 403 ⇒ runs and logs "is forbidden".
import { makeLog, parseOrDie, readOrThrow } from './common.ts';
import { loadKubeconfig } from './kubeconfig.ts';
import { runControlPlane } from './component.ts';

const log = makeLog('kube-scheduler');
const { flags, version, legacy } = parseOrDie('kube-scheduler');
try {
  const kc = flags.get('kubeconfig');
  if (kc && legacy) loadKubeconfig(kc);
  const cfg = flags.get('config');
  if (cfg) readOrThrow(cfg);
} catch (e) {
  log.fatal((e as Error).message);
}
await runControlPlane('kube-scheduler', log, version, legacy, flags, { path: '/api/v1/pods', type: '*v1.Pod' });
