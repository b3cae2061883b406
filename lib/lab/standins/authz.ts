// The modern apiserver stand-in's authorizers: --authorization-mode=AlwaysAllow|AlwaysDeny|Node|RBAC (comma list, in
// order, the first "allow" wins), with a small copy of the default RBAC policy (bootstrappolicy) and of the Node
// authorizer's static rules, and the NodeRestriction admission plugin's one rule about Node objects. The table is in
// lib/lab/README.md; anything not in it is denied, as a role the lab does not know would be.
export interface Attrs {
  user: string;
  groups: string[];
  verb: string;
  resourceRequest: boolean;
  apiGroup: string;
  apiVersion: string;
  resource: string;
  subresource: string;
  name: string;
  namespace: string;
  path: string;
}

interface Rule { verbs: string[]; apiGroups?: string[]; resources?: string[]; resourceNames?: string[]; nonResourceURLs?: string[] }
const r = (verbs: string, apiGroups: string, resources: string, resourceNames?: string): Rule => ({
  verbs: verbs.split(' '), apiGroups: apiGroups.split(' ').map((g) => (g === '""' ? '' : g)), resources: resources.split(' '),
  ...(resourceNames ? { resourceNames: resourceNames.split(' ') } : {}),
});
const urls = (verbs: string, list: string): Rule => ({ verbs: verbs.split(' '), nonResourceURLs: list.split(' ') });
const CORE = '""';

/** ClusterRoles of the default policy (Kubernetes 1.30 bootstrappolicy), the parts a control plane's first minutes use. */
export const CLUSTER_ROLES: Record<string, Rule[]> = {
  'cluster-admin': [r('*', '*', '*'), urls('*', '*')],
  'system:basic-user': [r('create', 'authentication.k8s.io', 'selfsubjectreviews'),
    r('create', 'authorization.k8s.io', 'selfsubjectaccessreviews selfsubjectrulesreviews')],
  'system:discovery': [urls('get', '/api /api/* /apis /apis/* /healthz /livez /readyz /version /version/ /openapi /openapi/*')],
  'system:public-info-viewer': [urls('get', '/healthz /livez /readyz /version /version/')],
  'system:kube-controller-manager': [
    r('create patch update', `${CORE} events.k8s.io`, 'events'),
    r('create', 'coordination.k8s.io', 'leases'), r('get update', 'coordination.k8s.io', 'leases', 'kube-controller-manager'),
    r('create', CORE, 'endpoints'), r('get update', CORE, 'endpoints', 'kube-controller-manager'),
    r('create delete get update', CORE, 'secrets serviceaccounts'), r('create', CORE, 'serviceaccounts/token'),
    r('create', 'authentication.k8s.io', 'tokenreviews'), r('create', 'authorization.k8s.io', 'subjectaccessreviews'),
    r('list watch', '*', '*'), // "needed for all shared informers"
  ],
  'system:kube-scheduler': [
    r('create patch update', `${CORE} events.k8s.io`, 'events'),
    r('create', 'coordination.k8s.io', 'leases'), r('get update', 'coordination.k8s.io', 'leases', 'kube-scheduler'),
    r('create', CORE, 'endpoints'), r('get update', CORE, 'endpoints', 'kube-scheduler'),
    r('get list watch', CORE, 'nodes'), r('delete get list watch', CORE, 'pods'),
    r('create', CORE, 'bindings pods/binding'), r('patch update', CORE, 'pods/status'),
    r('list watch', CORE, 'replicationcontrollers services namespaces persistentvolumeclaims persistentvolumes'),
    r('list watch', 'apps', 'replicasets statefulsets'), r('list watch', 'policy', 'poddisruptionbudgets'),
    r('list watch', 'storage.k8s.io', 'storageclasses csinodes csidrivers csistoragecapacities'),
    r('create', 'authentication.k8s.io', 'tokenreviews'), r('create', 'authorization.k8s.io', 'subjectaccessreviews'),
  ],
  'system:node-proxier': [
    r('list watch', CORE, 'endpoints services'), r('get list watch', CORE, 'nodes'),
    r('create patch update', `${CORE} events.k8s.io`, 'events'), r('list watch', 'discovery.k8s.io', 'endpointslices'),
  ],
  // exists, bound to nobody by default: whoever runs `kubectl logs/exec` through the apiserver's kubelet client
  // certificate needs a binding to it (kubeadm binds its own group)
  'system:kubelet-api-admin': [r('get list watch proxy', CORE, 'nodes'),
    r('*', CORE, 'nodes/proxy nodes/log nodes/stats nodes/metrics nodes/spec')],
};

interface Subject { kind: 'User' | 'Group'; name: string }
const user = (name: string): Subject => ({ kind: 'User', name });
const group = (name: string): Subject => ({ kind: 'Group', name });

/** ClusterRoleBindings of the default policy (same subset). */
export const CLUSTER_ROLE_BINDINGS: { role: string; subjects: Subject[] }[] = [
  { role: 'cluster-admin', subjects: [group('system:masters')] },
  { role: 'system:basic-user', subjects: [group('system:authenticated')] },
  { role: 'system:discovery', subjects: [group('system:authenticated')] },
  { role: 'system:public-info-viewer', subjects: [group('system:authenticated'), group('system:unauthenticated')] },
  { role: 'system:kube-controller-manager', subjects: [user('system:kube-controller-manager')] },
  { role: 'system:kube-scheduler', subjects: [user('system:kube-scheduler')] },
  { role: 'system:node-proxier', subjects: [user('system:kube-proxy')] },
];

/** RoleBindings in kube-system: extension-apiserver-authentication-reader (the front-proxy CA configmap). */
const KUBE_SYSTEM_ROLE_RULES: { rules: Rule[]; subjects: Subject[] }[] = [
  { rules: [r('get list watch', CORE, 'configmaps', 'extension-apiserver-authentication')],
    subjects: [user('system:kube-controller-manager'), user('system:kube-scheduler')] },
];

/** The Node authorizer's static rules (bootstrappolicy NodeRules) for system:node:NAME in system:nodes. */
const NODE_RULES: Rule[] = [
  r('create get list watch update patch delete', CORE, 'nodes'), r('update patch', CORE, 'nodes/status'),
  r('get list watch create delete', CORE, 'pods'), r('update patch', CORE, 'pods/status'), r('create', CORE, 'pods/eviction'),
  r('get list watch', CORE, 'services'), r('create patch update', `${CORE} events.k8s.io`, 'events'),
  r('create', 'authentication.k8s.io', 'tokenreviews'),
  r('create', 'authorization.k8s.io', 'subjectaccessreviews localsubjectaccessreviews'),
  r('create get list watch', 'certificates.k8s.io', 'certificatesigningrequests'),
];

function matches(rule: Rule, a: Attrs): boolean {
  if (!rule.verbs.includes('*') && !rule.verbs.includes(a.verb)) return false;
  if (!a.resourceRequest) {
    return !!rule.nonResourceURLs?.some((u) => u === '*' || u === a.path || (u.endsWith('*') && a.path.startsWith(u.slice(0, -1))));
  }
  if (!rule.resources || !rule.apiGroups) return false;
  if (!rule.apiGroups.includes('*') && !rule.apiGroups.includes(a.apiGroup)) return false;
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  if (!rule.resources.includes('*') && !rule.resources.includes(res)) return false;
  return !rule.resourceNames || (!!a.name && rule.resourceNames.includes(a.name));
}

const bound = (s: Subject, a: Attrs) => (s.kind === 'User' ? s.name === a.user : a.groups.includes(s.name));

/** ClusterRoleBindings stored through the API (of the roles above; another role grants nothing here). */
let stored: { role: string; subjects: Subject[] }[] = [];
export function setStoredBindings(objs: { roleRef?: { kind?: string; name?: string }; subjects?: { kind?: string; name?: string }[] }[]): void {
  stored = objs.filter((o) => o.roleRef?.kind === 'ClusterRole' && CLUSTER_ROLES[o.roleRef.name ?? ''])
    .map((o) => ({ role: o.roleRef!.name!, subjects: (o.subjects ?? []).filter((s) => s.kind === 'User' || s.kind === 'Group').map((s) => ({ kind: s.kind as Subject['kind'], name: String(s.name) })) }));
}

export function rbacAllows(a: Attrs): boolean {
  for (const b of [...CLUSTER_ROLE_BINDINGS, ...stored]) {
    if (b.subjects.some((s) => bound(s, a)) && CLUSTER_ROLES[b.role]!.some((rule) => matches(rule, a))) return true;
  }
  if (a.namespace === 'kube-system') {
    for (const b of KUBE_SYSTEM_ROLE_RULES) if (b.subjects.some((s) => bound(s, a)) && b.rules.some((rule) => matches(rule, a))) return true;
  }
  return false;
}

/** The node a request comes from (system:node:NAME in system:nodes), or undefined. */
export function nodeOf(a: Pick<Attrs, 'user' | 'groups'>): string | undefined {
  return a.groups.includes('system:nodes') && a.user.startsWith('system:node:') ? a.user.slice('system:node:'.length) : undefined;
}

export function nodeAllows(a: Attrs): boolean {
  const node = nodeOf(a);
  if (!node) return false;
  // its own Lease in kube-node-lease (the node heartbeat)
  if (a.resourceRequest && a.apiGroup === 'coordination.k8s.io' && a.resource === 'leases' && a.namespace === 'kube-node-lease') {
    return a.verb === 'create' || a.name === node;
  }
  return NODE_RULES.some((rule) => matches(rule, a));
}

export const MODES = ['AlwaysAllow', 'AlwaysDeny', 'Node', 'RBAC'];

export function authorize(modes: string[], a: Attrs): boolean {
  for (const m of modes) {
    if (m === 'AlwaysAllow') return true;
    if (m === 'AlwaysDeny') return false;
    if (m === 'Node' && nodeAllows(a)) return true;
    if (m === 'RBAC' && rbacAllows(a)) return true;
  }
  return false;
}

/** The real apiserver's Forbidden message (responsewriters.forbiddenMessage). */
export function forbiddenMessage(a: Attrs): string {
  const who = `User ${JSON.stringify(a.user)}`;
  if (!a.resourceRequest) return `forbidden: ${who} cannot ${a.verb} path ${JSON.stringify(a.path)}`;
  const qualified = a.apiGroup ? `${a.resource}.${a.apiGroup}` : a.resource;
  const subject = a.name ? `${qualified} ${JSON.stringify(a.name)}` : qualified;
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const scope = a.namespace ? `in the namespace ${JSON.stringify(a.namespace)}` : 'at the cluster scope';
  return `${subject} is forbidden: ${who} cannot ${a.verb} resource ${JSON.stringify(res)} in API group ${JSON.stringify(a.apiGroup)} ${scope}`;
}

/** Request path → attributes (k8s.io/apiserver RequestInfoFactory, enough of it). */
export function requestAttrs(method: string, path: string, query: URLSearchParams, who: { user: string; groups: string[] }): Attrs {
  const base: Attrs = { ...who, verb: method.toLowerCase(), resourceRequest: false, apiGroup: '', apiVersion: '', resource: '', subresource: '', name: '', namespace: '', path };
  const parts = path.split('/').filter(Boolean);
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) {
    base.apiVersion = parts[1]!;
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    base.apiGroup = parts[1]!;
    base.apiVersion = parts[2]!;
    rest = parts.slice(3);
  } else {
    return base; // /version, /healthz, /api, /apis/GROUP/VERSION (discovery): non-resource
  }
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    base.namespace = rest[1]!;
    rest = rest.slice(2);
  } else if (rest[0] === 'namespaces' && rest.length === 2) {
    base.name = rest[1]!; // the namespace object itself
    rest = ['namespaces'];
  }
  base.resourceRequest = true;
  base.resource = rest[0]!;
  base.name ||= rest[1] ?? '';
  base.subresource = rest[2] ?? '';
  const named = !!base.name;
  const m = method.toUpperCase();
  base.verb = m === 'GET' || m === 'HEAD' ? (named ? 'get' : query.get('watch') === 'true' ? 'watch' : 'list')
    : m === 'POST' ? 'create' : m === 'PUT' ? 'update' : m === 'PATCH' ? 'patch'
    : m === 'DELETE' ? (named ? 'delete' : 'deletecollection') : m.toLowerCase();
  return base;
}
