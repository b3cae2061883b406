/**
 * Whether a kubelet's serving CSR (signer kubernetes.io/kubelet-serving) may be approved: a pure function of what the
 * CSR asks, who asked (the apiserver's username and groups of the requester, which the requester cannot choose) and
 * cluster.yaml. Kubernetes never approves these itself (KEP-267): whoever approves decides which names and addresses a
 * node may serve. cluster.yaml is that list; nothing the node says about itself (its Node object, its hostname, DNS)
 * widens it.
 *
 * Rules, each one a reason in the denial a person reads in `kubectl get csr`:
 * - another signer: left alone (not this approver's business), never denied;
 * - the requester is `system:node:<n>` in the group `system:nodes`, and `<n>` is a host of cluster.yaml;
 * - the subject is exactly O=system:nodes, CN=system:node:<n> (the requester's own name), nothing else;
 * - at least one SAN; every IP SAN is one of that host's addresses in cluster.yaml; every DNS SAN is its name (or its
 *   address, when cluster.yaml gives a name there); no URI, email or other SAN;
 * - the usages are KEP-267's: digital signature + server auth, with or without key encipherment (1.27 dropped it for
 *   ECDSA keys), nothing else (a client-auth usage would make the node a client of anything that trusts the CA);
 * - the key is one kubetls itself issues with: RSA of 2048 bits or more, or ECDSA P-256 / P-384; and the request's
 *   own signature verifies (the node holds the key).
 */
import { canonicalAddress, type Host } from '../inventory.ts';

export const KUBELET_SERVING = 'kubernetes.io/kubelet-serving';

/** What one CSR object and the request it carries say (lib/csr/read.ts reads the request with openssl). */
export interface CsrFacts {
  signerName: string;
  /** set by the apiserver from the requester's credential: who asked, never what the request claims */
  username: string;
  groups: string[];
  usages: string[];
  /** every attribute of the request's subject, in order, as `type=value` (`O=system:nodes`, `CN=system:node:n`) */
  subject: string[];
  dns: string[];
  ips: string[];
  /** SANs of any other kind: `URI:…`, `email:…`, `othername:…` */
  otherSans: string[];
  key: { type: 'rsa' | 'ec' | 'other'; bits: number; curve?: string };
  /** `openssl req -verify` accepted the request's signature */
  signatureOk: boolean;
}

export type Decision =
  | { verdict: 'approve'; node: string }
  | { verdict: 'deny'; reason: string }
  | { verdict: 'ignore'; reason: string };

const NODE_PREFIX = 'system:node:';
const NODES_GROUP = 'system:nodes';
/** KEP-267's two sets (k8s.io/kubernetes pkg/apis/certificates: kubeletServingRequiredUsages and …NoRSA). */
const USAGE_SETS = [['digital signature', 'key encipherment', 'server auth'], ['digital signature', 'server auth']];
const CURVES = ['P-256', 'P-384']; // as openssl names them (NIST CURVE)

/**
 * A value the requester chose, as a reason may show it: printable ASCII as it is, anything else escaped (a name with
 * an escape sequence must not reach a terminal through `kubectl get csr` or the log), at most 100 characters.
 */
export function shownValue(v: string): string {
  const s = v.replace(/[^\x20-\x7e]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}

/** The decision for one CSR, given the hosts of cluster.yaml whose kubelets may ask (the minions). */
export function decide(csr: CsrFacts, hosts: Host[]): Decision {
  if (csr.signerName !== KUBELET_SERVING) return { verdict: 'ignore', reason: `signer ${csr.signerName} is not ${KUBELET_SERVING}` };
  const problems = problemsOf(csr, hosts);
  // at most 2000 characters: a CSR with thousands of bad SANs must not make a denial too big for the apiserver to store
  const reason = `kubetls approve: ${problems.join('; ')}`;
  if (problems.length) return { verdict: 'deny', reason: reason.length > 2000 ? `${reason.slice(0, 1999)}…` : reason };
  return { verdict: 'approve', node: csr.username.slice(NODE_PREFIX.length) };
}

/** Every reason to deny, in the order a person would check them; [] to approve. */
export function problemsOf(csr: CsrFacts, hosts: Host[]): string[] {
  if (!csr.username.startsWith(NODE_PREFIX) || csr.username.length === NODE_PREFIX.length) return [`requester ${shownValue(csr.username)} is not a node (system:node:<name>)`];
  const name = csr.username.slice(NODE_PREFIX.length);
  const out: string[] = [];
  if (!csr.groups.includes(NODES_GROUP)) out.push(`requester ${shownValue(csr.username)} is not in group ${NODES_GROUP}`);
  const host = hosts.find((h) => h.name === name);
  if (!host) return [...out, `node ${shownValue(name)} is not a host of cluster.yaml`];
  const want = [`O=${NODES_GROUP}`, `CN=${csr.username}`];
  if (csr.subject.length !== 2 || !want.every((w) => csr.subject.includes(w))) out.push(`subject ${shownValue(csr.subject.join(', ')) || '(empty)'} is not ${want.join(', ')}`);
  if (!csr.dns.length && !csr.ips.length) out.push('no DNS or IP SAN');
  const names = [host.name, host.address].map((n) => n.toLowerCase());
  for (const d of csr.dns) if (!names.includes(d.toLowerCase())) out.push(`DNS name ${shownValue(d)} is not ${name}'s in cluster.yaml`);
  const ips = [host.address, ...(host.nodeIp ? [host.nodeIp] : [])];
  for (const ip of csr.ips) if (!ips.some((a) => canonicalAddress(a) === canonicalAddress(ip))) out.push(`IP address ${ip} is not ${name}'s in cluster.yaml (${ips.join(', ')})`);
  for (const o of csr.otherSans) out.push(`SAN ${shownValue(o)} is not allowed (DNS and IP only)`);
  const usages = [...new Set(csr.usages)].sort();
  if (usages.length !== csr.usages.length || !USAGE_SETS.some((s) => s.join() === usages.join())) {
    out.push(`usages ${shownValue(csr.usages.join(', ')) || '(none)'} are not digital signature + server auth (and key encipherment)`);
  }
  const k = csr.key;
  const keyOk = k.type === 'rsa' ? k.bits >= 2048 : k.type === 'ec' && CURVES.includes(k.curve ?? '');
  if (!keyOk) out.push(`key ${k.type}${k.curve ? ` ${k.curve}` : ''} ${k.bits} bits is not RSA of 2048 bits or more, nor ECDSA P-256 or P-384`);
  if (!csr.signatureOk) out.push('the request\'s signature does not verify');
  return out;
}
