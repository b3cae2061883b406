// Stand-in for kube-scheduler: flags of the emulated version, --kubeconfig must load, then it stays up.
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
