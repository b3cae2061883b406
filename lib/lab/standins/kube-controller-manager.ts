// Stand-in for kube-controller-manager: flags of the emulated version, every file it names must be readable by
// User=kube and parse (root CA = certificates, service-account key = a private key), then it stays up.
// Modern (1.30): the cluster-signing pair must match, and it talks to the apiserver with its own --kubeconfig
// (component.ts): who am I, then list nodes; no kubeconfig or 401 ⇒ exit 1, 403 ⇒ runs and logs "is forbidden".
import { makeLog, parseOrDie, readOrThrow } from './common.ts';
import { loadKeyPair, parseCerts, parsePrivateKey } from './tlsfiles.ts';
import { loadKubeconfig } from './kubeconfig.ts';
import { runControlPlane } from './component.ts';

const log = makeLog('kube-controller-manager');
const { flags, version, legacy } = parseOrDie('kube-controller-manager');
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
  const signCert = flags.get('cluster-signing-cert-file');
  if (!legacy && signCert && signKey) {
    // the CSR signing controllers load the pair like tls.LoadX509KeyPair: a key of another certificate fails
    try {
      loadKeyPair(signCert, signKey);
    } catch (e) {
      throw new Error(`"Error starting controllers" err="failed to start certificatesigningrequest-signing-controller: ` +
        `error reading CA cert file \\"${signCert}\\": ${(e as Error).message}"`);
    }
  }
  const kc = flags.get('kubeconfig');
  if (kc && legacy) loadKubeconfig(kc);
} catch (e) {
  log.fatal((e as Error).message);
}
await runControlPlane('kube-controller-manager', log, version, legacy, flags, { path: '/api/v1/nodes', type: '*v1.Node' });
