/**
 * kubelet.certificates: api: the certificates each kubelet carries itself, as status and the Prometheus textfile see
 * them. kubetls holds no copy to compare with: a certificate is judged by its issuer (the cluster CA, or one of the CAs
 * of a CA rotation), its name, and whether the kubelet's rotation keeps up. The kubelet renews at 70–90 % of a
 * certificate's life (k8s.io/client-go/util/certificate); one past 90 % is one whose renewal is stuck (a CSR nobody
 * approves: `kubectl get csr`), which monitoring must see while the old certificate still works.
 */
import { X509Certificate } from 'node:crypto';
import { KUBELET_CLIENT_CURRENT } from '../config/layout.ts';
import type { Inventory } from './inventory.ts';
import { type CertInfo, parseCert } from './pki/read.ts';
import { clientTrust } from './pki/trust.ts';
import type { Remote } from './remote/remote.ts';

/** The share of a certificate's life after which the kubelet should have renewed it. */
export const ROTATION_LATE = 0.9;

/** ok, expired, or renew due (`what` names the certificate in the advice) for a certificate the kubelet rotates itself. */
export function rotationStatus(x: X509Certificate, now: Date, what: string): string {
  const from = Date.parse(x.validFrom);
  const to = Date.parse(x.validTo);
  if (to <= now.getTime()) return 'expired';
  if (now.getTime() - from > ROTATION_LATE * (to - from)) return `renew due: the kubelet has not rotated its ${what} certificate at ${ROTATION_LATE * 100} % of its life (its CSR pending? kubectl get csr)`;
  return 'ok';
}

/** Issued by one of the CAs the cluster trusts (clientTrust: ca.crt, and during a rotation the other one). */
export function issuedByCluster(inv: Inventory, x: X509Certificate): boolean {
  const pems = clientTrust(inv).toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return pems.some((p) => { try { return x.checkIssued(new X509Certificate(p)) && x.verify(new X509Certificate(p).publicKey); } catch { return false; } });
}

/**
 * --remote on a minion of an api cluster: its current client certificate, read on the node by `openssl x509` (the file
 * holds the key too: only the certificate crosses the connection).
 */
export async function kubeletClientRow(inv: Inventory, r: Remote, now: Date): Promise<{ info?: CertInfo; where: string; status: string }> {
  const where = `${r.host.name}:${KUBELET_CLIENT_CURRENT}`;
  const got = await r.run(['openssl', 'x509', '-in', KUBELET_CLIENT_CURRENT], { ok: [0, 1], quiet: true });
  if (got.code !== 0) return { where, status: `missing: ${got.stderr.trim().split('\n')[0] || 'no certificate'} (has the kubelet bootstrapped? minions.ts)` };
  let info: CertInfo;
  try { info = parseCert(got.stdout, where); } catch (e) { return { where, status: `unreadable: ${(e as Error).message}` }; }
  const want = `system:node:${r.host.name}`;
  const status = !issuedByCluster(inv, info.x509) ? 'not signed by CA: not issued by the cluster CA'
    : info.subject.cn !== want || info.subject.o !== 'system:nodes' ? `drift: CN=${info.subject.cn}, expected O=system:nodes, CN=${want}`
      : rotationStatus(info.x509, now, 'client');
  return { info, where, status };
}
