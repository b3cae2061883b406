import test from 'ava';
import { execa, execaSync } from 'execa';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
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
  for (const f of ['ca', 'cert', 'key'] as const) writeFileSync(path.join(dir, f), input[f]);
  const K = `--kubeconfig=${path.join(dir, 'kubeconfig')}`;
  const run = (...a: string[]) => execa('kubectl', ['config', K, ...a], { cwd: dir });
  await run('set-cluster', 'debian-cluster', '--server=https://kubemaster:6443', '--certificate-authority=ca', '--embed-certs=true');
  await run('set-credentials', 'kubelet', '--client-certificate=cert', '--client-key=key', '--embed-certs=true', `--token=${input.token}`);
  await run('set-context', 'kubelet-context', '--cluster=debian-cluster', '--user=kubelet');
  await run('use-context', 'kubelet-context');
  t.is(kubeconfig(input), readFileSync(path.join(dir, 'kubeconfig'), 'utf8'));
});
