/**
 * Fault injection: kubetls killed with SIGKILL at every step boundary of master.ts, minions.ts and renew.ts
 * (KUBETLS_FAULT, see lib/fault.ts), and the SSH connection dropped mid-transfer. After each: no file on the host is
 * empty, half-written or anything but the old or the new version; the next run converges (the served certificate
 * equals the local one, every restart owed is done); the run after that does nothing.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { addSan, editInventory, localServerSerial, remoteFile, restarts, servedSerial, sha256 } from './helpers/e2e.ts';
import { useLab } from './helpers/lab.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 1, profile: 'legacy' });
type Lab = Awaited<typeof labP>;

const inv = (lab: Lab) => ['--inventory', lab.inventoryPath];
const localSerial = localServerSerial;

const MASTER_FILES = ['/srv/kubernetes/ca.crt', '/srv/kubernetes/ca.key', '/srv/kubernetes/server.crt', '/srv/kubernetes/server.key',
  '/srv/kubernetes/tokens.csv', '/etc/kubernetes/apiserver', '/etc/kubernetes/controller-manager'];

/** sha256 of each file on a host (undefined when missing); an empty file fails the test at once. */
async function snapshot(t: { true(v: boolean, m?: string): void }, lab: Lab, host: string, files: string[]) {
  const out: Record<string, string | undefined> = {};
  for (const f of files) {
    const st = await remoteFile(lab, host, f);
    if (st) t.true(st.sha !== sha256(''), `${host}:${f} is empty`);
    out[f] = st?.sha;
  }
  return out;
}

/** Every file is its old or its new version: nothing else (no empty, no torn copy). */
function oldOrNew(t: { true(v: boolean, m?: string): void }, before: Record<string, string | undefined>, after: Record<string, string | undefined>, now: Record<string, string | undefined>) {
  for (const f of Object.keys(now)) t.true(now[f] === before[f] || now[f] === after[f], `${f} is neither the old nor the new version`);
}

test.serial('the cluster is set up', async (t) => {
  const lab = await labP;
  for (const s of ['master.ts', 'minions.ts']) {
    const r = await runScript(s, inv(lab));
    t.is(r.code, 0, r.all);
  }
});

for (const point of ['marked', 'wrote-1', 'wrote-all', 'restarted', 'gated', 'disconnect']) {
  test.serial(`master.ts ${point === 'disconnect' ? 'losing its SSH connection mid-transfer' : `killed at "${point}"`} leaves old-or-new files, and the next run converges`, async (t) => {
    const lab = await labP;
    const before = await snapshot(t, lab, 'kubemaster', MASTER_FILES);
    const startsBefore = restarts(lab, 'kubemaster')['kube-apiserver'] ?? 0;
    addSan(lab);
    const killed = await runScript('master.ts', [...inv(lab), '--only', 'kubemaster'], { KUBETLS_FAULT: point });
    t.not(killed.code, 0, killed.all);
    // what the run would have written: the master's files from the local PKI as it is now (env files: after the rerun)
    const mid = await snapshot(t, lab, 'kubemaster', MASTER_FILES);

    const r = await runScript('master.ts', [...inv(lab), '--only', 'kubemaster']);
    t.is(r.code, 0, r.all);
    t.regex(r.all, point === 'disconnect' || point === 'marked' ? /./ : /still owes a restart|kube-apiserver owes a restart|systemctl restart kube-apiserver/);
    const after = await snapshot(t, lab, 'kubemaster', MASTER_FILES);
    oldOrNew(t, before, after, mid);
    for (const f of ['server.crt', 'server.key']) t.is(after[`/srv/kubernetes/${f}`], sha256(readFileSync(path.join(lab.pkiDir, f))), f);
    t.is(await servedSerial(lab), localSerial(lab), 'the apiserver serves the local certificate');
    t.true((restarts(lab, 'kubemaster')['kube-apiserver'] ?? 0) > startsBefore, 'the apiserver was restarted');
    t.is((await lab.exec('kubemaster', ['sh', '-c', 'ls /var/lib/kubetls; find /srv/kubernetes -name "*.kubetls-tmp"'])).stdout.trim(), '', 'no restart owed, no temp file');

    const again = await runScript('master.ts', [...inv(lab), '--only', 'kubemaster']);
    t.is(again.code, 0, again.all);
    t.regex(again.stdout, /nothing to do: every host already up to date \(0 files? written, 0 restarts?\)|0 file\(s\) written, 0 restart\(s\)/);
  });
}

test.serial('minions.ts killed after the first file leaves the kubelet restart owed, and the next run does it', async (t) => {
  const lab = await labP;
  const files = ['/var/lib/kubelet/kubeconfig', '/etc/kubernetes/config', '/etc/kubernetes/kubelet', '/etc/kubernetes/proxy'];
  const before = await snapshot(t, lab, 'kubeminion1', files);
  editInventory(lab, (d) => { d.cluster_dns = '10.24.0.53'; });
  const killed = await runScript('minions.ts', inv(lab), { KUBETLS_FAULT: 'wrote-1' });
  t.not(killed.code, 0, killed.all);
  const mid = await snapshot(t, lab, 'kubeminion1', files);
  t.true(lab.readFile('kubeminion1', '/var/lib/kubetls/restart.kubelet') !== undefined, 'the restart is recorded before the first file is replaced');
  const kubelet = restarts(lab, 'kubeminion1').kubelet;

  const r = await runScript('minions.ts', inv(lab));
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /kubelet still owes a restart from an earlier run/);
  t.is(restarts(lab, 'kubeminion1').kubelet, kubelet + 1);
  oldOrNew(t, before, await snapshot(t, lab, 'kubeminion1', files), mid);
  t.regex(lab.readFile('kubeminion1', '/etc/kubernetes/kubelet'), /--cluster-dns=10\.24\.0\.53/);
  t.is((await lab.exec('kubeminion1', ['ls', '/var/lib/kubetls'])).stdout.trim(), '');
  const again = await runScript('minions.ts', inv(lab));
  t.regex(again.stdout, /nothing to do/);
});

test.serial('renew.ts killed right after reissuing leaves the hosts owed, and the next run rolls the new certificates out', async (t) => {
  const lab = await labP;
  addSan(lab); // drift: renew.ts reissues server.crt
  const killed = await runScript('renew.ts', inv(lab), { KUBETLS_FAULT: 'renewed' });
  t.not(killed.code, 0, killed.all);
  t.not(await servedSerial(lab), localSerial(lab), 'killed before the rollout');
  const r = await runScript('renew.ts', inv(lab));
  t.is(r.code, 0, r.all);
  t.notRegex(r.stdout, /nothing to renew/);
  t.is(await servedSerial(lab), localSerial(lab));
  const again = await runScript('renew.ts', inv(lab));
  t.regex(again.stdout, /nothing to renew/);
});

test.serial('renew.ts killed after installing, before the restart, restarts on the next run', async (t) => {
  const lab = await labP;
  addSan(lab);
  const killed = await runScript('renew.ts', inv(lab), { KUBETLS_FAULT: 'wrote-all' });
  t.not(killed.code, 0, killed.all);
  const r = await runScript('renew.ts', inv(lab));
  t.is(r.code, 0, r.all);
  t.is(await servedSerial(lab), localSerial(lab));
  t.regex((await runScript('renew.ts', inv(lab))).stdout, /nothing to renew/);
});

test.serial('a run that only does the restart a killed run owed still rolls back when the gate fails, from the backups that run recorded', async (t) => {
  const lab = await labP;
  const served = await servedSerial(lab);
  const before = await snapshot(t, lab, 'kubemaster', MASTER_FILES);
  addSan(lab);
  const killed = await runScript('master.ts', [...inv(lab), '--only', 'kubemaster'], { KUBETLS_FAULT: 'wrote-all' });
  t.not(killed.code, 0);
  await lab.exec('kubemaster', ['sh', '-c', 'mkdir -p /etc/kubetls-lab/fail-next-start && touch /etc/kubetls-lab/fail-next-start/kube-apiserver']);
  const r = await runScript('master.ts', [...inv(lab), '--only', 'kubemaster']);
  t.is(r.code, 1, r.all);
  t.regex(r.all, /kube-apiserver still owes a restart from an earlier run/);
  t.regex(r.all, /rolling back \d file\(s\)/);
  t.deepEqual(await snapshot(t, lab, 'kubemaster', ['/srv/kubernetes/server.crt', '/srv/kubernetes/server.key']),
    { '/srv/kubernetes/server.crt': before['/srv/kubernetes/server.crt'], '/srv/kubernetes/server.key': before['/srv/kubernetes/server.key'] });
  t.is(await servedSerial(lab), served, 'the old certificate is served again');
  const again = await runScript('master.ts', [...inv(lab), '--only', 'kubemaster']);
  t.is(again.code, 0, again.all);
  t.is(await servedSerial(lab), localSerial(lab));
});

test.serial('backups dated in the future (another machine\'s clock) never make a run prune the backup it just made', async (t) => {
  const lab = await labP;
  const served = await servedSerial(lab);
  const good = (await remoteFile(lab, 'kubemaster', '/srv/kubernetes/server.crt'))!.sha;
  await lab.exec('kubemaster', ['sh', '-c', 'for s in 99990101T000000Z 99990102T000000Z 99990103T000000Z; do echo old > /srv/kubernetes/server.crt.bak-$s; done']);
  await lab.exec('kubemaster', ['sh', '-c', 'mkdir -p /etc/kubetls-lab/fail-next-start && touch /etc/kubetls-lab/fail-next-start/kube-apiserver']);
  addSan(lab);
  const r = await runScript('master.ts', [...inv(lab), '--only', 'kubemaster']);
  t.is(r.code, 1, r.all);
  t.notRegex(r.all, /rollback incomplete/);
  t.is((await remoteFile(lab, 'kubemaster', '/srv/kubernetes/server.crt'))!.sha, good, 'the good certificate is back');
  t.is(await servedSerial(lab).catch((e: Error) => e.message), served, r.all);
  await lab.exec('kubemaster', ['sh', '-c', 'rm -f /srv/kubernetes/*.bak-9999*']);
  t.is((await runScript('master.ts', [...inv(lab), '--only', 'kubemaster'])).code, 0);
});
