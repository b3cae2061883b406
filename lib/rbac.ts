/**
 * The API objects kubetls makes (modern profile). First, a ClusterRoleBinding that lets the apiserver's kubelet client
 * certificate (CN kube-apiserver-kubelet-client, no group) use the kubelets' API, which `kubectl logs`, `exec`,
 * `port-forward` and `nodes/NAME/proxy` go through. Second (at the end), approve.ts's role and its binding.
 *
 * Why the first: the kubelets run with `--authorization-mode=Webhook` (config/profiles.ts), so each request the apiserver makes
 * to a kubelet is authorized by a SubjectAccessReview for that user. The default RBAC has the role
 * (system:kubelet-api-admin) but binds it to nobody. kubeadm solves it by putting its kubelet client in a group bound to
 * cluster-admin; kubernetes-the-hard-way by a role and binding of its own. kubetls binds the built-in role to the user
 * alone (least privilege: the kubelets' API, nothing else), under a name that says who made it.
 */
import { APPROVER_USER } from '../config/certs.ts';
import { KUBELET_SERVING } from './csr/decide.ts';
import type { Inventory } from './inventory.ts';
import { BOOTSTRAP_GROUP } from './join.ts';
import { log } from './log.ts';
import { adminCredential, apiRequest } from './probe.ts';

export const KUBELET_API_BINDING = 'kubetls:apiserver-kubelet-client';
export const KUBELET_API_ROLE = 'system:kubelet-api-admin';
export const KUBELET_CLIENT_USER = 'kube-apiserver-kubelet-client';
const URL = '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings';

/** A ClusterRoleBinding of one built-in role to one subject, under a name that says kubetls made it. */
export function binding(name: string, role: string, subject: { kind: 'User' | 'Group'; name: string }): object {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding',
    metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'kubetls' } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', ...subject }],
  };
}
export const kubeletApiBinding = () => binding(KUBELET_API_BINDING, KUBELET_API_ROLE, { kind: 'User', name: KUBELET_CLIENT_USER });

type Binding = { roleRef?: { kind?: string; name?: string }; subjects?: { kind?: string; name?: string }[] };
/**
 * The binding as found is exactly what kubetls makes: the role, and the one subject. A binding of kubetls's name with
 * another subject beside it (a group such as system:authenticated) would hand the role to others under a name that
 * says kubetls made it: refused like a wrong role, never kept.
 */
export const bindsOnly = (b: Binding, role: string, subject: { kind: string; name: string }) => b.roleRef?.kind === 'ClusterRole' && b.roleRef.name === role
  && (b.subjects ?? []).length === 1 && b.subjects![0]!.kind === subject.kind && b.subjects![0]!.name === subject.name;
export const grants = (b: Binding) => bindsOnly(b, KUBELET_API_ROLE, { kind: 'User', name: KUBELET_CLIENT_USER });


/**
 * Make sure a binding exists (as admin: pki/admin.crt, system:masters). Returns what it did: 'kept' (one GET),
 * 'created', or 'would create' on a dry run. A binding of that name that grants something else is an error kubetls
 * does not overwrite: an operator changed it, and the message says how to put it back.
 */
async function ensureBinding(inv: Inventory, name: string, role: string, subject: { kind: 'User' | 'Group'; name: string }, why: string, o: { dryRun?: boolean }): Promise<'kept' | 'created' | 'would create'> {
  const admin = adminCredential(inv);
  // ':' is a legal character of a path segment (RFC 3986 pchar): the name goes as it is
  const got = await apiRequest(inv, 'GET', `${URL}/${name}`, admin);
  const shell = ['kubectl', 'create', 'clusterrolebinding', name, `--clusterrole=${role}`, `--${subject.kind.toLowerCase()}=${subject.name}`];
  if (got.status === 200) {
    if (bindsOnly(got.json as Binding, role, subject)) return 'kept';
    throw new Error(`clusterrolebinding ${name} exists but does not bind ${role} to ${subject.kind.toLowerCase()} ${subject.name} alone: `
      + `${why}. Check it, delete it (kubectl delete clusterrolebinding ${name}) and rerun master.ts`);
  }
  if (got.status !== 404) throw new Error(`GET clusterrolebinding ${name}: HTTP ${got.status} ${JSON.stringify(got.json).slice(0, 200)}`);
  log.cmd(shell);
  if (o.dryRun) return 'would create';
  const made = await apiRequest(inv, 'POST', URL, admin, binding(name, role, subject));
  if (made.status !== 201) throw new Error(`${shell.join(' ')}: HTTP ${made.status} ${JSON.stringify(made.json).slice(0, 200)}`);
  return 'created';
}

export const ensureKubeletApiBinding = (inv: Inventory, o: { dryRun?: boolean } = {}) => ensureBinding(inv, KUBELET_API_BINDING, KUBELET_API_ROLE,
  { kind: 'User', name: KUBELET_CLIENT_USER }, 'the apiserver may not reach the kubelets (kubectl logs/exec), or others may', o);

// ---- kubelet.certificates: api: the controller-manager's built-in approver signs a node's client CSR when whoever
// sends it may create `certificatesigningrequests/selfnodeclient` (a node renewing its own certificate) or
// `.../nodeclient` (a node joining with a bootstrap token); kubeadm binds the same built-in roles ----

export const NODE_ROTATION_BINDING = 'kubetls:node-autoapprove-certificate-rotation';
/** The bindings api mode needs: each a built-in role to one group (kubeadm's three, under kubetls's names). */
export const API_BINDINGS = [
  { name: NODE_ROTATION_BINDING, role: 'system:certificates.k8s.io:certificatesigningrequests:selfnodeclient', group: 'system:nodes', why: 'the nodes may not renew their client certificates, or others may' },
  { name: 'kubetls:kubelet-bootstrap', role: 'system:node-bootstrapper', group: BOOTSTRAP_GROUP, why: 'a joining node may not ask for its certificate, or others may' },
  { name: 'kubetls:node-autoapprove-bootstrap', role: 'system:certificates.k8s.io:certificatesigningrequests:nodeclient', group: BOOTSTRAP_GROUP, why: 'a joining node\'s certificate is not approved, or others\' are' },
] as const;

/** api: make the bindings; push: remove kubetls's where a cluster that was switched back still has them (least privilege). */
export async function ensureKubeletApiRbac(inv: Inventory, api: boolean, o: { dryRun?: boolean } = {}): Promise<'kept' | 'created' | 'would create' | 'removed'> {
  let did: 'kept' | 'created' | 'would create' | 'removed' = 'kept';
  for (const b of API_BINDINGS) {
    if (api) {
      const r = await ensureBinding(inv, b.name, b.role, { kind: 'Group', name: b.group }, b.why, o);
      if (r !== 'kept') did = r;
      continue;
    }
    const admin = adminCredential(inv);
    const got = await apiRequest(inv, 'GET', `${URL}/${b.name}`, admin);
    if (got.status === 404) continue;
    if (got.status !== 200) throw new Error(`GET clusterrolebinding ${b.name}: HTTP ${got.status} ${JSON.stringify(got.json).slice(0, 200)}`);
    log.cmd(['kubectl', 'delete', 'clusterrolebinding', b.name]);
    if (o.dryRun) continue;
    const del = await apiRequest(inv, 'DELETE', `${URL}/${b.name}`, admin);
    if (del.status !== 200 && del.status !== 404) throw new Error(`kubectl delete clusterrolebinding ${b.name}: HTTP ${del.status}`);
    did = 'removed';
  }
  return did;
}

// ---- approve.ts's identity (lib/csr/): read CSRs, approve or deny for the kubelet-serving signer, nothing else ----

export const APPROVER_ROLE = 'kubetls:kubelet-serving-approver';
const ROLES_URL = '/apis/rbac.authorization.k8s.io/v1/clusterroles';

/** The role, as kubelet-csr-approver's and the Kubernetes docs' approvers have it, without `nodes` (cluster.yaml decides). */
export function approverRole(): { apiVersion: string; kind: string; metadata: object; rules: object[] } {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole',
    metadata: { name: APPROVER_ROLE, labels: { 'app.kubernetes.io/managed-by': 'kubetls' } },
    rules: [
      { apiGroups: ['certificates.k8s.io'], resources: ['certificatesigningrequests'], verbs: ['list'] }, // all it reads
      { apiGroups: ['certificates.k8s.io'], resources: ['certificatesigningrequests/approval'], verbs: ['update'] },
      { apiGroups: ['certificates.k8s.io'], resources: ['signers'], resourceNames: [KUBELET_SERVING], verbs: ['approve'] },
    ],
  };
}
export const approverBinding = () => binding(APPROVER_ROLE, APPROVER_ROLE, { kind: 'User', name: APPROVER_USER });

type Rule = { apiGroups?: string[]; resources?: string[]; resourceNames?: string[]; verbs?: string[] };
const ruleKey = (r: Rule) => JSON.stringify([r.apiGroups ?? [], r.resources ?? [], r.resourceNames ?? [], r.verbs ?? []]);
/**
 * The role as found grants exactly what kubetls makes it grant: a wider one (an operator's `*`) is refused, never kept;
 * so is one with an aggregationRule, whose rules other roles could widen later.
 */
export const approverRoleIs = (found: { rules?: Rule[]; aggregationRule?: unknown }) => found.aggregationRule === undefined &&
  JSON.stringify((found.rules ?? []).map(ruleKey).sort()) === JSON.stringify((approverRole().rules as Rule[]).map(ruleKey).sort());
/** The binding as found binds kubetls's role to the approver's user alone. */
export const approverBindingIs = (b: Binding) => bindsOnly(b, APPROVER_ROLE, { kind: 'User', name: APPROVER_USER });

/**
 * Make sure the approver's role and binding exist (as admin), like ensureKubeletApiBinding: 'kept' (two GETs),
 * 'created', 'would create'. Either one found granting something else is an error naming what to delete.
 */
export async function ensureApproverRbac(inv: Inventory, o: { dryRun?: boolean } = {}): Promise<'kept' | 'created' | 'would create'> {
  const admin = adminCredential(inv);
  let made = false;
  const objects = [
    { kind: 'clusterrole', url: ROLES_URL, body: approverRole(), ok: (j: unknown) => approverRoleIs(j as { rules?: Rule[]; aggregationRule?: unknown }),
      shell: ['kubectl', 'create', 'clusterrole', APPROVER_ROLE, '…'], what: `the rules kubetls gives it (read CSRs, approve for ${KUBELET_SERVING})` },
    { kind: 'clusterrolebinding', url: URL, body: approverBinding(), ok: (j: unknown) => approverBindingIs(j as Binding),
      shell: ['kubectl', 'create', 'clusterrolebinding', APPROVER_ROLE, `--clusterrole=${APPROVER_ROLE}`, `--user=${APPROVER_USER}`], what: `${APPROVER_ROLE} to user ${APPROVER_USER} alone` },
  ];
  for (const x of objects) {
    const got = await apiRequest(inv, 'GET', `${x.url}/${APPROVER_ROLE}`, admin);
    if (got.status === 200) {
      if (x.ok(got.json)) continue;
      throw new Error(`${x.kind} ${APPROVER_ROLE} exists but does not grant ${x.what}: check it, delete it (kubectl delete ${x.kind} ${APPROVER_ROLE}) and rerun master.ts`);
    }
    if (got.status !== 404) throw new Error(`GET ${x.kind} ${APPROVER_ROLE}: HTTP ${got.status} ${JSON.stringify(got.json).slice(0, 200)}`);
    log.cmd(x.shell);
    if (o.dryRun) return 'would create';
    const r = await apiRequest(inv, 'POST', x.url, admin, x.body);
    if (r.status !== 201) throw new Error(`${x.shell.join(' ')}: HTTP ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`);
    made = true;
  }
  return made ? 'created' : 'kept';
}
