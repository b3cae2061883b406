/**
 * One pass of approve.ts: the pending kubelet-serving CSRs, each decided (decide.ts) and approved or denied through the
 * apiserver's approval subresource, as approve.ts's own identity (pki.dir/approver.crt: it may read CSRs and approve or
 * deny for that signer only, lib/rbac.ts), never admin.
 *
 * Never twice: a CSR that already carries Approved, Denied or Failed is not touched, and the update names the
 * resourceVersion it read, so a CSR another run (or another approver) decided meanwhile answers 409 and is left as it
 * is. A run killed half-way leaves each CSR decided or pending; the next run decides the pending ones.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { APPROVER_USER } from '../../config/certs.ts';
import type { Inventory } from '../inventory.ts';
import { faultHold, faultPoint } from '../fault.ts';
import { log } from '../log.ts';
import { apiRequest, type Credential } from '../probe.ts';
import { decide, KUBELET_SERVING, shownValue } from './decide.ts';
import { decided, readCsr, type CsrObject } from './read.ts';

const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';

export interface Outcome {
  name: string;
  node?: string;
  /** what was done (or, on a dry run, would be): approved, denied; left: decided meanwhile by someone else; failed: the
   * apiserver refused the update (the CSR stays pending; the others are still decided) */
  did: 'approved' | 'denied' | 'left' | 'failed' | 'would approve' | 'would deny';
  reason?: string;
}

/** The approver's credential, or an error saying how to get one. */
function credential(inv: Inventory): Credential {
  const f = (x: string) => path.join(inv.pki.dir, x);
  try {
    return { cert: readFileSync(f('approver.crt')), key: readFileSync(f('approver.key')) };
  } catch {
    throw new Error(`no ${f('approver.crt')} and approver.key: run master.ts first (it makes the approver's certificate and role)`);
  }
}

/** One pass: every pending kubelet-serving CSR decided, in name order (`watch`: say nothing when none is pending). */
export async function approvePending(inv: Inventory, o: { dryRun?: boolean; watch?: boolean } = {}): Promise<Outcome[]> {
  const cred = credential(inv);
  const list = await apiRequest(inv, 'GET', `${CSRS}?fieldSelector=${encodeURIComponent(`spec.signerName=${KUBELET_SERVING}`)}`, cred, undefined, 20_000);
  if (list.status === 403) throw new Error(`the apiserver refuses to list CSRs to ${APPROVER_USER}: run master.ts (it makes the approver's role): ${JSON.stringify(list.json).slice(0, 200)}`);
  if (list.status !== 200) throw new Error(`GET ${CSRS}: HTTP ${list.status} ${JSON.stringify(list.json).slice(0, 200)}`);
  const items = ((list.json as { items?: CsrObject[] }).items ?? []).filter((c) => !decided(c)).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  if (items.length || !o.watch) log.info(`${items.length} pending kubelet serving CSR${items.length === 1 ? '' : 's'}`); // --watch: not every 10 s
  await faultHold('approve-hold');
  const out: Outcome[] = [];
  for (const csr of items) {
    const d = decide(await readCsr(csr), inv.minions);
    if (d.verdict === 'ignore') continue; // the field selector already keeps other signers out
    const name = csr.metadata.name;
    const shown = shownValue(name); // Kubernetes does not check a CSR's name: it may hold any byte
    const approve = d.verdict === 'approve';
    log.cmd(['kubectl', 'certificate', approve ? 'approve' : 'deny', shown]);
    if (o.dryRun) {
      out.push({ name, did: approve ? 'would approve' : 'would deny', ...(approve ? { node: d.node } : { reason: d.reason }) });
      continue;
    }
    const condition = approve
      ? { type: 'Approved', status: 'True', reason: 'KubetlsApproved', message: `kubetls approve: ${d.node}'s names and addresses in cluster.yaml` }
      : { type: 'Denied', status: 'True', reason: 'KubetlsDenied', message: d.reason };
    const body = { apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', ...csr, status: { ...csr.status, conditions: [...(csr.status?.conditions ?? []), condition] } };
    const r = await apiRequest(inv, 'PUT', `${CSRS}/${encodeURIComponent(name)}/approval`, cred, body, 20_000);
    if (r.status === 409) {
      log.info(`${shown}: changed since it was read (another run or approver decided it): left as it is`);
      out.push({ name, did: 'left' });
      continue;
    }
    if (r.status !== 200) {
      // one CSR the apiserver will not update (deleted meanwhile, or made to fail) must not keep the others waiting
      const error = `kubectl certificate ${approve ? 'approve' : 'deny'} ${shown}: HTTP ${r.status} ${shownValue(JSON.stringify(r.json).slice(0, 200))}`;
      log.error(error);
      out.push({ name, did: 'failed', reason: error });
      continue;
    }
    if (approve) log.info(`${shown}: approved for ${d.node}`);
    else log.warn(`${shown}: denied: ${d.reason}`);
    out.push({ name, did: approve ? 'approved' : 'denied', ...(approve ? { node: d.node } : { reason: d.reason }) });
    faultPoint(`decided-${out.length}`);
  }
  return out;
}
