// The modern profile against a REAL control plane (issue 18): hosts that boot Debian 12's systemd (systemd-nspawn -b),
// the real etcd of the Debian tree, and the real kube-apiserver, kube-controller-manager and kube-scheduler v1.37.2
// built from Go modules (lib/lab/kube/build.sh; .ci/run builds them once per machine). Whatever these binaries refuse
// is a kubetls bug: each test below names the one it found.
import test from 'ava';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { masterEnv } from '../config/profiles.ts';
import { flagContext } from '../lib/rollout.ts';
import { loadInventory } from '../lib/inventory.ts';
import { setVarsBuffer } from '../lib/envfile.ts';
import { useLab } from './helpers/lab.ts';
import { addSan } from './helpers/e2e.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 1, profile: 'modern', systemd: true });
const CONTROL = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];

/** kubectl (the machine's real one) as admin, to the master's address, verifying the apiserver for its name. */
const kubectl = async (args: string[]) => {
  const lab = await labP;
  return execa('kubectl', ['--kubeconfig', join(lab.pkiDir, 'admin.kubeconfig'), '--server', `https://${lab.master.address}:6443`,
    '--tls-server-name', 'kubemaster', '--request-timeout', '10s', ...args], { reject: false, timeout: 30000 });
};

test.serial('master.ts brings up the real etcd and v1.37.2 control plane under real systemd, and kubectl reaches it as admin', async (t) => {
  const lab = await labP;
  const r = await runScript('master', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  // real systemd is PID 1 and runs the units (its own `systemctl status`, the unit file kubetls's env files feed)
  t.is((await lab.exec('kubemaster', ['ps', '-o', 'comm=', '-p', '1'])).stdout.trim(), 'systemd');
  const status = await lab.exec('kubemaster', ['systemctl', 'status', '--no-pager', 'kube-apiserver']);
  t.regex(status.stdout, /Loaded: loaded \(\/etc\/systemd\/system\/kube-apiserver\.service;/);
  t.regex(status.stdout, /Active: active \(running\)/);
  t.is((await lab.exec('kubemaster', ['kube-apiserver', '--version'])).stdout.trim(), 'Kubernetes v1.37.2');
  for (const u of CONTROL) t.is((await lab.exec('kubemaster', ['systemctl', 'is-active', u])).stdout.trim(), 'active', u);
  const version = await kubectl(['version', '-o', 'json']);
  t.is(version.exitCode, 0, version.stderr);
  t.is(JSON.parse(version.stdout).serverVersion.gitVersion, 'v1.37.2');
  const who = await kubectl(['auth', 'whoami', '-o', 'json']);
  t.is(who.exitCode, 0, who.stderr);
  t.like(JSON.parse(who.stdout).status.userInfo, { username: 'kubernetes-admin' });
  t.true(JSON.parse(who.stdout).status.userInfo.groups.includes('system:masters'));
});

test.serial('the real apiserver, controller-manager and scheduler listen on the master\'s address only, never on every interface', async (t) => {
  // defect: kubetls left the binding to the binaries, whose default is 0.0.0.0 (6443, 10257, 10259 on all interfaces)
  const lab = await labP;
  const ss = await execa('ss', ['-Hltnp'], { reject: false });
  const mine = ss.stdout.split('\n').filter((l) => /"kube-(apiserver|controller|scheduler)/.test(l));
  t.true(mine.length >= 3, ss.stdout);
  for (const port of ['6443', '10257', '10259']) {
    const lines = mine.filter((l) => l.split(/\s+/)[3]?.endsWith(`:${port}`));
    t.true(lines.length > 0, `nothing listens on :${port}`);
    for (const l of lines) t.is(l.split(/\s+/)[3], `${lab.master.address}:${port}`, l);
  }
});

test.serial('a second master.ts writes nothing and restarts nothing: no job in the real journal', async (t) => {
  const lab = await labP;
  const before = lab.journal('kubemaster').length;
  const r = await runScript('master', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /nothing to do: every host already up to date \(0 files written, 0 restarts\)/);
  t.deepEqual(lab.journal('kubemaster').slice(before), []);
});

test.serial('a renewed server certificate is served by the real apiserver after one restart, and the gate waits for /readyz', async (t) => {
  const lab = await labP;
  const before = lab.journal('kubemaster').length;
  addSan(lab);
  const r = await runScript('master', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  const served = await execa('openssl', ['s_client', '-connect', `${lab.master.address}:6443`, '-servername', 'kubemaster',
    '-CAfile', join(lab.pkiDir, 'ca.crt'), '-verify_return_error'], { input: '', reject: false, timeout: 15000 });
  t.regex(served.stdout, /Verify return code: 0 \(ok\)/);
  const local = await execa('openssl', ['x509', '-noout', '-serial', '-in', join(lab.pkiDir, 'server.crt')]);
  const got = await execa('openssl', ['x509', '-noout', '-serial'], { input: served.stdout });
  t.is(got.stdout, local.stdout);
  const jobs = lab.journal('kubemaster').slice(before);
  t.is(jobs.filter((j) => j.unit === 'kube-apiserver' && (j.event === 'start' || j.event === 'restart')).length, 1, JSON.stringify(jobs));
  t.false(jobs.some((j) => j.unit === 'etcd'), 'etcd reads nothing that changed');
  t.is((await kubectl(['get', '--raw', '/readyz'])).stdout.trim(), 'ok');
});

test.serial('a controller-manager that exits right after its restart fails master.ts (exit 1, named), and the next run finishes once it is fixed', async (t) => {
  // defect: `systemctl restart` + `is-active` passed a Type=simple unit that died a moment later (Restart=on-failure
  // then hides it): the real controller-manager did exactly that on the first real run. A 1.4-era line an operator
  // kept in /etc/kubernetes/controller-manager (--logtostderr, removed in 1.26) makes the real binary exit at once.
  const lab = await labP;
  const file = '/etc/kubernetes/controller-manager';
  const good = lab.readFile('kubemaster', file);
  lab.writeFile('kubemaster', file, setVarsBuffer(Buffer.from(good), { KUBE_LOGTOSTDERR: '--logtostderr=true' }).bytes);
  await lab.exec('kubemaster', ['rm', '-f', '/srv/kubernetes/controller-manager.conf']); // kubetls puts it back: a restart
  const r = await runScript('master', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 1, r.all);
  t.regex(r.all, /kube-controller-manager did not stay up/);
  t.regex(lab.unitLog('kubemaster', 'kube-controller-manager'), /unknown flag: --logtostderr/);
  lab.writeFile('kubemaster', file, good);
  const again = await runScript('master', ['--inventory', lab.inventoryPath]);
  t.is(again.code, 0, again.all);
  t.regex(again.all, /kube-controller-manager still owes a restart from an earlier run/);
  t.is((await lab.exec('kubemaster', ['systemctl', 'is-active', 'kube-controller-manager'])).stdout.trim(), 'active');
});

test.serial('the real kube-apiserver refuses a flag kubetls writes once renamed to one it does not know, and takes the flags as written', async (t) => {
  const lab = await labP;
  const inv = loadInventory(lab.inventoryPath);
  const env = masterEnv('modern', flagContext(inv)).find((e) => e.path === '/etc/kubernetes/apiserver')!;
  const file = '/etc/kubernetes/apiserver';
  const kept = lab.readFile('kubemaster', file);
  const renamed = env.vars.KUBE_API_ARGS!.replace('--tls-cert-file=', '--tls-certificate-file=');
  t.not(renamed, env.vars.KUBE_API_ARGS);
  lab.writeFile('kubemaster', file, setVarsBuffer(Buffer.from(kept), { KUBE_API_ARGS: renamed }).bytes);
  const bad = await lab.exec('kubemaster', ['systemctl', 'restart', 'kube-apiserver']);
  t.not(bad.exitCode, 0);
  t.regex(lab.unitLog('kubemaster', 'kube-apiserver'), /unknown flag: --tls-certificate-file/);
  lab.writeFile('kubemaster', file, setVarsBuffer(Buffer.from(kept), { KUBE_API_ARGS: env.vars.KUBE_API_ARGS! }).bytes);
  t.is(lab.readFile('kubemaster', file), kept, 'kubetls\'s own flags, as master.ts wrote them');
  const ok = await lab.exec('kubemaster', ['systemctl', 'restart', 'kube-apiserver']);
  t.is(ok.exitCode, 0, ok.stderr);
  t.regex(readFileSync(join(lab.pkiDir, 'ca.crt'), 'utf8'), /BEGIN CERTIFICATE/);
});
