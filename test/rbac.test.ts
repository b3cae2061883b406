// The one API object kubetls makes (lib/rbac.ts): which bindings of its name it keeps, and which it refuses.
import test from 'ava';
import { grants, kubeletApiBinding, KUBELET_API_ROLE, KUBELET_CLIENT_USER } from '../lib/rbac.ts';

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
