// Stand-in for the 1.4 kube-controller-manager of the legacy profile (the modern profile runs the real v1.37.2): 1.4
// flags, every file it names must be readable by User=kube and parse (root CA = certificates, service-account key = a
// private key), then it stays up (it reached the apiserver on the insecure port: nothing to authenticate).
import { makeLog, onSignals, parseOrDie, readOrThrow, stayUp } from './common.ts';
import { parseCerts, parsePrivateKey } from './tlsfiles.ts';
import { loadKubeconfig } from './kubeconfig.ts';

const log = makeLog('kube-controller-manager');
const { flags, version } = parseOrDie('kube-controller-manager');
try {
  const ca = flags.get('root-ca-file');
  if (ca) parseCerts(readOrThrow(ca).toString('utf8'), ca);
  const sa = flags.get('service-account-private-key-file');
  if (sa) {
    try {
      parsePrivateKey(readOrThrow(sa).toString('utf8'), sa);
    } catch (e) {
      throw new Error(`error reading key for service account token controller: ${(e as Error).message}`);
    }
  }
  for (const f of ['cluster-signing-cert-file', 'client-ca-file', 'requestheader-client-ca-file']) {
    const p = flags.get(f);
    if (p) parseCerts(readOrThrow(p).toString('utf8'), p);
  }
  const signKey = flags.get('cluster-signing-key-file');
  if (signKey) parsePrivateKey(readOrThrow(signKey).toString('utf8'), signKey);
  const kc = flags.get('kubeconfig');
  if (kc) loadKubeconfig(kc);
} catch (e) {
  log.fatal((e as Error).message);
}
log.info(`Started kube-controller-manager (emulating ${version})`);
onSignals(() => {});
log.ready();
stayUp();
