import test from 'ava';
import { getVar, quoteValue, setVar, setVars } from '../lib/envfile.ts';

const distro = `###
# kubernetes system config
#
# The following values are used to configure the kube-apiserver
#

# The address on the local server to listen to.
KUBE_API_ADDRESS="--insecure-bind-address=127.0.0.1"

# Add your own!
KUBE_API_ARGS=""
`;

test('setting a variable replaces only its line and keeps every comment and other variable', (t) => {
  const { text, changed } = setVar(distro, 'KUBE_API_ARGS', '--client-ca-file=/srv/kubernetes/ca.crt --secure-port=6443');
  t.true(changed);
  t.is(text, distro.replace('KUBE_API_ARGS=""', 'KUBE_API_ARGS="--client-ca-file=/srv/kubernetes/ca.crt --secure-port=6443"'));
});

test('setting a variable to the value it has changes nothing', (t) => {
  const once = setVar(distro, 'KUBE_API_ARGS', '--a=1').text;
  t.deepEqual(setVar(once, 'KUBE_API_ARGS', '--a=1'), { text: once, changed: false });
});

test('a missing variable is appended, and a missing file becomes one line', (t) => {
  t.is(setVar(distro, 'KUBE_MASTER', '--master=https://kubemaster:6443').text, `${distro}KUBE_MASTER="--master=https://kubemaster:6443"\n`);
  t.is(setVar('', 'KUBE_PROXY_ARGS', '--kubeconfig=/var/lib/kubelet/kubeconfig').text, 'KUBE_PROXY_ARGS="--kubeconfig=/var/lib/kubelet/kubeconfig"\n');
  t.is(setVar('A=1', 'B', 'x').text, 'A=1\nB="x"\n');
});

test('the recipe\'s multi-line value is replaced as a whole', (t) => {
  const recipe = `# before\nKUBE_API_ARGS="--kubelet-https=true\n--client-ca-file=/srv/kubernetes/ca.crt\n--token-auth-file=/srv/kubernetes/tokens.csv"\n# after\nOTHER="1"\n`;
  const { text } = setVar(recipe, 'KUBE_API_ARGS', '--x=1');
  t.is(text, '# before\nKUBE_API_ARGS="--x=1"\n# after\nOTHER="1"\n');
  t.is(getVar(recipe, 'KUBE_API_ARGS'), '--kubelet-https=true --client-ca-file=/srv/kubernetes/ca.crt --token-auth-file=/srv/kubernetes/tokens.csv');
});

test('commented-out assignments are left alone and values are quoted for systemd', (t) => {
  const text = '#KUBELET_ARGS="--old"\nKUBELET_ARGS=\'--older\'\n';
  t.is(setVar(text, 'KUBELET_ARGS', 'a "b" $c').text, '#KUBELET_ARGS="--old"\nKUBELET_ARGS="a \\"b\\" \\$c"\n');
  t.is(getVar(setVar(text, 'KUBELET_ARGS', 'a "b" $c').text, 'KUBELET_ARGS'), 'a "b" $c');
  t.is(quoteValue(''), '""');
});

test('several variables are set in one pass, in order', (t) => {
  const r = setVars('', { KUBELET_API_SERVER: '', KUBELET_ARGS: '--register-node=true' });
  t.is(r.text, 'KUBELET_API_SERVER=""\nKUBELET_ARGS="--register-node=true"\n');
});
