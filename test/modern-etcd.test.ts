/**
 * The modern profile with three etcd members (issue 9): the master and two etcd hosts of their own form one cluster
 * over peer TLS, the apiserver uses all three, and verify asks each with the real etcdctl.
 */
import test from 'ava';
import { execa } from 'execa';
import path from 'node:path';
import { useLab } from './helpers/lab.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 1, profile: 'modern', etcdMembers: 3 });

test('master.ts forms a three-member etcd cluster over peer TLS, and verify finds every member healthy', async (t) => {
  const lab = await labP;
  for (const s of ['master.ts', 'minions.ts']) {
    const r = await runScript(s, ['--inventory', lab.inventoryPath]);
    t.is(r.code, 0, r.all);
  }
  const v = await runScript('verify.ts', ['--inventory', lab.inventoryPath, '--json']);
  t.is(v.code, 0, v.all);
  const results = (JSON.parse(v.stdout) as { results: { check: string; target: string; ok: boolean }[] }).results;
  t.deepEqual(results.filter((x) => x.check === 'etcd health' && x.ok).map((x) => x.target).sort(), ['kubeetcd2', 'kubeetcd3', 'kubemaster']);
  const pki = (f: string) => path.join(lab.pkiDir, f);
  const members = await execa('etcdctl', ['--endpoints', `https://${lab.master.address}:2379`, '--cacert', pki('etcd-ca.crt'), '--cert', pki('apiserver-etcd-client.crt'),
    '--key', pki('apiserver-etcd-client.key'), 'member', 'list'], { env: { ETCDCTL_API: '3' }, reject: false });
  t.is(members.exitCode, 0, members.stderr);
  t.is(members.stdout.trim().split('\n').length, 3);
  t.regex(members.stdout, /kubeetcd2, https:\/\/127\.\d+\.0\.\d+:2380/);
  const again = await runScript('master.ts', ['--inventory', lab.inventoryPath]);
  t.regex(again.stdout, /nothing to do/);
});
