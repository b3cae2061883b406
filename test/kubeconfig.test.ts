import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa, execaSync } from 'execa';
import { kubeconfig, readKubeconfig } from '../lib/kubeconfig.ts';

const pem = (label: string, body: string) => `-----BEGIN ${label}-----\n${Buffer.from(body).toString('base64')}\n-----END ${label}-----\n`;
const input = {
  cluster: 'debian-cluster', server: 'https://kubemaster:6443',
  ca: pem('CERTIFICATE', 'ca'), cert: pem('CERTIFICATE', 'client'), key: pem('TEST KEY', 'key'), token: 'abcdefghijklmnopqrstuvwxyz012345',
};

test('the kubeconfig reads back to the same cluster, credentials and context', (t) => {
  const k = readKubeconfig(kubeconfig(input));
  t.is(k.cluster, 'debian-cluster');
  t.is(k.server, 'https://kubemaster:6443');
  t.is(k.ca!.toString(), input.ca);
  t.is(k.cert!.toString(), input.cert);
  t.is(k.key!.toString(), input.key);
  t.is(k.token, input.token);
});

const kubectl = execaSync('kubectl', ['version', '--client'], { reject: false }).exitCode === 0;

(kubectl ? test : test.skip)('the kubeconfig is byte for byte what the recipe\'s four kubectl config commands write', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kubetls-kc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true })); // it holds a key: no copy is left behind
  for (const f of ['ca', 'cert', 'key'] as const) writeFileSync(path.join(dir, f), input[f]);
  const K = `--kubeconfig=${path.join(dir, 'kubeconfig')}`;
  const run = (...a: string[]) => execa('kubectl', ['config', K, ...a], { cwd: dir });
  await run('set-cluster', 'debian-cluster', '--server=https://kubemaster:6443', '--certificate-authority=ca', '--embed-certs=true');
  await run('set-credentials', 'kubelet', '--client-certificate=cert', '--client-key=key', '--embed-certs=true', `--token=${input.token}`);
  await run('set-context', 'kubelet-context', '--cluster=debian-cluster', '--user=kubelet');
  await run('use-context', 'kubelet-context');
  t.is(kubeconfig(input), readFileSync(path.join(dir, 'kubeconfig'), 'utf8'));
});

/** A kubeconfig of two clusters, users and contexts (as kubectl leaves one an operator edited), the second current. */
function two(current: string, patch: (doc: any) => void = () => {}): string {
  const doc: any = {
    apiVersion: 'v1', kind: 'Config', 'current-context': current,
    clusters: [{ name: 'a', cluster: { server: 'https://a:6443', 'certificate-authority-data': Buffer.from('ca-a').toString('base64') } },
      { name: 'b', cluster: { server: 'https://b:6443', 'certificate-authority-data': Buffer.from('ca-b').toString('base64') } }],
    users: [{ name: 'ua', user: { token: 'token-a' } }, { name: 'ub', user: { token: 'token-b', 'client-certificate-data': Buffer.from('cert-b').toString('base64'), 'client-key-data': Buffer.from('key-b').toString('base64') } }],
    contexts: [{ name: 'ctx-a', context: { cluster: 'a', user: 'ua' } }, { name: 'ctx-b', context: { cluster: 'b', user: 'ub' } }],
  };
  patch(doc);
  return JSON.stringify(doc); // YAML is a superset of JSON
}

test('readKubeconfig follows current-context to its own cluster and user, not the first ones', (t) => {
  const k = readKubeconfig(two('ctx-b'));
  t.like(k, { cluster: 'b', server: 'https://b:6443', token: 'token-b' });
  t.is(k.ca!.toString(), 'ca-b');
  t.is(k.cert!.toString(), 'cert-b');
  t.is(k.key!.toString(), 'key-b');
});

test('readKubeconfig refuses a kubeconfig whose current context, cluster or user is not there', (t) => {
  t.throws(() => readKubeconfig(two('ctx-z')), { message: "kubeconfig has no current context 'ctx-z'" });
  t.throws(() => readKubeconfig(two('ctx-b', (d) => { delete d.contexts; })), { message: "kubeconfig has no current context 'ctx-b'" });
  const gone = 'kubeconfig: the current context names a cluster or user that is not there';
  t.throws(() => readKubeconfig(two('ctx-b', (d) => { d.users = d.users.slice(0, 1); })), { message: gone });
  t.throws(() => readKubeconfig(two('ctx-b', (d) => { d.clusters = d.clusters.slice(0, 1); })), { message: gone });
  t.throws(() => readKubeconfig(two('ctx-b', (d) => { delete d.users; })), { message: gone });
  t.throws(() => readKubeconfig(two('ctx-b', (d) => { delete d.clusters; })), { message: gone });
});
