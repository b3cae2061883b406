/**
 * No wrong success, on the real modern lab (the real v1.37.2 control plane and kubelet under real systemd): a run
 * killed between replacing a unit's files and restarting it leaves a restart owed that the next cron renew makes, and
 * that verify and status --remote report until then; a deployed private key that is missing, not its certificate's, or
 * readable by others is seen by status --remote (its JSON and its textfile) and refused by verify.
 */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { restarts } from './helpers/e2e.ts';
import { useLab } from './helpers/lab.ts';
import { tempDir } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 1, profile: 'modern' });
type Lab = Awaited<typeof labP>;
const inv = (lab: Lab) => ['--inventory', lab.inventoryPath];
interface Check { check: string; target: string; ok: boolean; detail: string }
interface Row { name: string; where: string; status: string }
async function verify(lab: Lab) {
  const r = await runScript('verify.ts', [...inv(lab), '--json']);
  return { code: r.code, bad: (JSON.parse(r.stdout || '{"results":[]}') as { results: Check[] }).results.filter((x) => !x.ok), all: r.all };
}
async function status(lab: Lab, prom?: string) {
  const r = await runScript('status.ts', [...inv(lab), '--remote', '--json', ...(prom ? ['--prometheus', prom] : [])]);
  return { code: r.code, bad: (JSON.parse(r.stdout || '{"rows":[]}') as { rows: Row[] }).rows.filter((x) => x.status !== 'ok'), all: r.all };
}
const owed = async (lab: Lab, host: string) => (await lab.exec(host, ['ls', '-A', '/var/lib/kubetls'])).stdout.split('\n').filter((f) => f.startsWith('restart.'));

test.serial('the modern lab comes up with master.ts and minions.ts, and verify passes', async (t) => {
  const lab = await labP;
  for (const s of ['master.ts', 'minions.ts']) {
    const r = await runScript(s, inv(lab));
    t.is(r.code, 0, r.all);
  }
  const v = await verify(lab);
  t.is(v.code, 0, v.all);
});

test.serial('minions.ts killed after the kubelet\'s kubeconfig was replaced: verify and status --remote report the owed restart, and cron\'s renew makes it', async (t) => {
  const lab = await labP;
  // a new client certificate for the node: master.ts makes and installs the pair, minions.ts the kubeconfig that embeds it
  for (const ext of ['crt', 'key', 'csr']) rmSync(path.join(lab.pkiDir, `kubeminion1.${ext}`));
  t.is((await runScript('master.ts', inv(lab))).code, 0);
  const from = lab.journal('kubeminion1').length;
  const killed = await runScript('minions.ts', inv(lab), { KUBETLS_FAULT: 'wrote-all' });
  t.not(killed.code, 0, 'killed');
  t.deepEqual(await owed(lab, 'kubeminion1'), ['restart.kubelet'], 'the kubelet reads the kubeconfig that was replaced; kube-proxy reads its own');
  t.is(restarts(lab, 'kubeminion1', from).kubelet ?? 0, 0, 'the kubelet was not restarted: it runs on the kubeconfig it read before');
  // everything that says "all is well" today must not
  const v = await verify(lab);
  t.is(v.code, 1, v.all);
  t.true(v.bad.some((x) => x.check === 'restart owed' && x.target === 'kubeminion1:kubelet' && /run renew\.ts/.test(x.detail)), JSON.stringify(v.bad));
  const s = await status(lab);
  t.is(s.code, 1, s.all);
  t.true(s.bad.some((x) => x.name === 'restart.kubelet' && x.where === 'kubeminion1:/var/lib/kubetls/restart.kubelet' && /^renew due: kubelet owes a restart/.test(x.status)), JSON.stringify(s.bad));
  t.true(s.bad.some((x) => x.name === 'renew pending' && /kubeminion1/.test(x.status)), 'the local record names the host');
  // cron's renew: nothing is due by date, but the host is owed the run that was killed
  const renew = await runScript('renew.ts', [...inv(lab), '--quiet']);
  t.is(renew.code, 0, renew.all);
  t.notRegex(renew.all, /nothing to renew/);
  t.deepEqual(await owed(lab, 'kubeminion1'), []);
  t.true((restarts(lab, 'kubeminion1', from).kubelet ?? 0) >= 1, 'the owed restart was made');
  t.is((await verify(lab)).code, 0);
  t.is((await status(lab)).code, 0);
  t.regex((await runScript('renew.ts', inv(lab))).stdout, /nothing to renew/, 'and then there is nothing left to do');
});

test.serial('master.ts killed after the controller-manager\'s kubeconfig was replaced: cron\'s renew restarts the controller-manager', async (t) => {
  const lab = await labP;
  for (const ext of ['crt', 'key', 'csr']) rmSync(path.join(lab.pkiDir, `controller-manager.${ext}`));
  const from = lab.journal('kubemaster').length;
  const killed = await runScript('master.ts', [...inv(lab), '--only', 'kubemaster'], { KUBETLS_FAULT: 'wrote-all' });
  t.not(killed.code, 0);
  t.true((await owed(lab, 'kubemaster')).includes('restart.kube-controller-manager'));
  t.is(restarts(lab, 'kubemaster', from)['kube-controller-manager'] ?? 0, 0);
  t.is((await verify(lab)).code, 1);
  const renew = await runScript('renew.ts', [...inv(lab), '--quiet']);
  t.is(renew.code, 0, renew.all);
  t.notRegex(renew.all, /nothing to renew/);
  t.deepEqual(await owed(lab, 'kubemaster'), []);
  t.true((restarts(lab, 'kubemaster', from)['kube-controller-manager'] ?? 0) >= 1);
  t.is((await verify(lab)).code, 0);
});

test.serial('a missing server.key and etcd-server.key and a world-readable sa.key are rows of status --remote, its JSON and its textfile, and fail verify', async (t) => {
  const lab = await labP;
  await lab.exec('kubemaster', ['rm', '-f', '/srv/kubernetes/server.key', '/srv/kubernetes/etcd-server.key']);
  await lab.exec('kubemaster', ['chmod', '0644', '/srv/kubernetes/sa.key']);
  const prom = path.join(tempDir(), 'kubetls.prom');
  const s = await status(lab, prom);
  t.is(s.code, 1, s.all);
  const bad = s.bad.map((x) => [x.name, x.where, x.status]);
  t.deepEqual(bad.filter(([n]) => /\.key$/.test(n!)).sort(), [
    ['etcd-server-kubemaster.key', 'kubemaster:/srv/kubernetes/etcd-server.key', 'missing'],
    ['sa.key', 'kubemaster:/srv/kubernetes/sa.key', 'insecure mode 0644: kubemaster:/srv/kubernetes/sa.key'],
    ['server.key', 'kubemaster:/srv/kubernetes/server.key', 'missing'],
  ]);
  const text = readFileSync(prom, 'utf8');
  t.regex(text, /^kubetls_certificate_ok\{name="server\.key",where="kubemaster:\/srv\/kubernetes\/server\.key",status="missing"\} 0$/m);
  t.regex(text, /^kubetls_certificate_ok\{name="sa\.key",where="kubemaster:\/srv\/kubernetes\/sa\.key",status="insecure_mode"\} 0$/m);
  t.regex(text, /^kubetls_certificate_ok\{name="etcd-server-kubemaster\.key",where="kubemaster:\/srv\/kubernetes\/etcd-server\.key",status="missing"\} 0$/m);
  const v = await verify(lab);
  t.is(v.code, 1);
  const failed = v.bad.map((x) => x.target);
  for (const f of ['server.key', 'etcd-server.key', 'sa.key']) t.true(failed.includes(`kubemaster:/srv/kubernetes/${f}`), `verify fails ${f}: ${JSON.stringify(v.bad)}`);
  t.regex(v.bad.find((x) => x.target.endsWith('/sa.key'))!.detail, /insecure mode 0644, expected kube:nogroup 0600/);
  // a key replaced by another: not the key of the certificate beside it
  await lab.exec('kubemaster', ['cp', '/srv/kubernetes/apiserver-kubelet-client.key', '/srv/kubernetes/server.key']);
  const swapped = await status(lab);
  t.true(swapped.bad.some((x) => x.name === 'server.key' && x.status.startsWith('key mismatch: /srv/kubernetes/server.key is not the local server.key')), JSON.stringify(swapped.bad));
  // master.ts puts every key back as it was, and then all is well again
  const r = await runScript('master.ts', inv(lab));
  t.is(r.code, 0, r.all);
  t.is((await status(lab)).code, 0);
  t.is((await verify(lab)).code, 0);
});
