// The API objects kubetls makes (lib/rbac.ts): which objects of its names it keeps, and which it refuses.
import test from 'ava';
import { APPROVER_ROLE, approverBinding, approverBindingIs, approverRole, approverRoleIs, grants, kubeletApiBinding, KUBELET_API_ROLE, KUBELET_CLIENT_USER } from '../lib/rbac.ts';

const binding = (roleRef: object, subjects: object[]) => ({ roleRef, subjects });
const role = { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: KUBELET_API_ROLE };
const user = { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: KUBELET_CLIENT_USER };

test('the binding kubetls makes is kept as it is, and any other binding of its name is refused', (t) => {
  t.true(grants(kubeletApiBinding() as never), 'what kubetls creates is what it keeps');
  t.true(grants(binding(role, [user])));
  // another role, or the right role as a namespaced Role
  t.false(grants(binding({ ...role, name: 'view' }, [user])));
  t.false(grants(binding({ ...role, name: 'cluster-admin' }, [user])));
  t.false(grants(binding({ ...role, kind: 'Role' }, [user])));
  // the user missing, spelled as a group, or joined by others: the kubelets' API for everyone under kubetls's name
  t.false(grants(binding(role, [])));
  t.false(grants(binding(role, [{ ...user, kind: 'Group' }])));
  t.false(grants(binding(role, [user, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:authenticated' }])));
  t.false(grants(binding(role, [{ kind: 'ServiceAccount', name: 'default', namespace: 'default' }, user])));
  t.false(grants({} as never));
});

test('the approver\'s role is kept only when it grants exactly reading CSRs and approving for the kubelet-serving signer', (t) => {
  const rules = approverRole().rules as { apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] }[];
  t.true(approverRoleIs({ rules }));
  t.true(approverRoleIs({ rules: [...rules].reverse() }), 'the order of rules does not matter');
  // any signer, another signer, a wider verb, one more rule, one rule fewer: refused
  t.false(approverRoleIs({ rules: rules.map((r) => (r.resources[0] === 'signers' ? { ...r, resourceNames: undefined } : r)) }));
  t.false(approverRoleIs({ rules: rules.map((r) => (r.resources[0] === 'signers' ? { ...r, resourceNames: ['kubernetes.io/kube-apiserver-client'] } : r)) }));
  t.false(approverRoleIs({ rules: rules.map((r) => (r.resources[0] === 'certificatesigningrequests' ? { ...r, verbs: ['*'] } : r)) }));
  t.false(approverRoleIs({ rules: [...rules, { apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] }));
  t.false(approverRoleIs({ rules: rules.slice(1) }));
  t.false(approverRoleIs({}));
  t.false(approverRoleIs({ rules, aggregationRule: { clusterRoleSelectors: [{ matchLabels: { any: 'role' } }] } }), 'rules others could widen');
});

test('the approver\'s binding is kept only when it binds its role to the approver\'s user alone', (t) => {
  const made = approverBinding() as { roleRef: object; subjects: { kind: string; name: string }[] };
  t.true(approverBindingIs(made as never));
  t.false(approverBindingIs({ ...made, roleRef: { kind: 'ClusterRole', name: 'cluster-admin' } } as never));
  t.false(approverBindingIs({ ...made, roleRef: { kind: 'Role', name: APPROVER_ROLE } } as never));
  t.false(approverBindingIs({ ...made, subjects: [...made.subjects, { kind: 'Group', name: 'system:authenticated' }] } as never));
  t.false(approverBindingIs({ ...made, subjects: [{ kind: 'Group', name: made.subjects[0]!.name }] } as never));
  t.false(approverBindingIs({ ...made, subjects: [] } as never));
});
