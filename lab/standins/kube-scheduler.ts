// Stand-in for the 1.4 kube-scheduler of the legacy profile (the modern profile runs the real v1.37.2): 1.4 flags,
// --kubeconfig must load, then it stays up.
import { makeLog, onSignals, parseOrDie, readOrThrow, stayUp } from './common.ts';
import { loadKubeconfig } from './kubeconfig.ts';

const log = makeLog('kube-scheduler');
const { flags, version } = parseOrDie('kube-scheduler');
try {
  const kc = flags.get('kubeconfig');
  if (kc) loadKubeconfig(kc);
  const cfg = flags.get('config');
  if (cfg) readOrThrow(cfg);
} catch (e) {
  log.fatal((e as Error).message);
}
log.info(`Started kube-scheduler (emulating ${version})`);
onSignals(() => {});
log.ready();
stayUp();
