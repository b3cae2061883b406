/**
 * The modern profile over the recipe's sudo flow: connect as the non-root user jijisa, stage files in its home,
 * install them with one `sudo -n` command each. Kubernetes >= 1.28 flags, node identities, a dedicated SA key pair.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { editInventory, remoteFile, restarts, sha256 } from './helpers/e2e.ts';
import { useLab } from './helpers/lab.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 2, profile: 'modern' });
const sudoInventory = async () => {
  const lab = await labP;
  return editInventory(lab, (d) => { d.ssh.user = 'jijisa'; d.ssh.sudo = true; }, path.join(lab.dir, 'sudo.yaml'));
};

test.serial('master.ts, minions.ts and verify.ts succeed as a sudo user on the modern profile', async (t) => {
  const lab = await labP;
  const inv = await sudoInventory();
  const m = await runScript('master.ts', ['--inventory', inv]);
  t.is(m.code, 0, m.all);
  t.regex(m.stdout, /\[kubemaster\] \$ sudo -n systemctl restart kube-apiserver/);
  const n = await runScript('minions.ts', ['--inventory', inv]);
  t.is(n.code, 0, n.all);
  const v = await runScript('verify.ts', ['--inventory', inv, '--json']);
  t.is(v.code, 0, v.all);
  t.like(JSON.parse(v.stdout), { apiVersion: 'kubetls/v1', kind: 'Verify', ok: true });
  const results = JSON.parse(v.stdout).results as { check: string; target: string; detail: string }[];
  t.regex(results.find((x) => x.check === 'whoami' && x.target === 'cert kubeminion1')!.detail, /^system:node:kubeminion1 \[.*system:nodes/);
  // etcd first (the master is the only member), then the apiserver and its clients, each once
  t.deepEqual(restarts(lab, 'kubemaster'), { etcd: 1, 'kube-apiserver': 1, 'kube-controller-manager': 1, 'kube-scheduler': 1 });
});

test.serial('files installed through sudo have the recipe\'s owners and modes, and staging stays private', async (t) => {
  const lab = await labP;
  const pki = (f: string) => sha256(readFileSync(path.join(lab.pkiDir, f)));
  for (const f of ['sa.key', 'sa.pub', 'server.key', 'tokens.csv']) {
    t.deepEqual(await remoteFile(lab, 'kubemaster', `/srv/kubernetes/${f}`), { owner: 'kube:nogroup', mode: '600', sha: pki(f) }, f);
  }
  t.deepEqual(await remoteFile(lab, 'kubeminion1', '/srv/kubernetes/kubeminion1.key'), { owner: 'root:root', mode: '600', sha: pki('kubeminion1.key') });
  const staging = await lab.exec('kubeminion1', ['sh', '-c', 'stat -c "%U %a" /home/jijisa/.kubetls-staging; ls -A /home/jijisa/.kubetls-staging | wc -l']);
  t.deepEqual(staging.stdout.trim().split('\n'), ['jijisa 700', '0']);
});

test.serial('the modern profile writes no removed flag and uses the SA key pair', async (t) => {
  const lab = await labP;
  const api = lab.readFile('kubemaster', '/etc/kubernetes/apiserver');
  t.notRegex(api, /--kubelet-https/);
  t.regex(api, /--service-account-issuer=https:\/\/kubernetes\.default\.svc\.kubic\.local --service-account-key-file=\/srv\/kubernetes\/sa\.pub --service-account-signing-key-file=\/srv\/kubernetes\/sa\.key/);
  t.regex(lab.readFile('kubemaster', '/etc/kubernetes/controller-manager'), /--service-account-private-key-file=\/srv\/kubernetes\/sa\.key --cluster-signing-cert-file=\/srv\/kubernetes\/ca-signer\.crt --cluster-signing-key-file=\/srv\/kubernetes\/ca\.key --use-service-account-credentials=true --node-monitor-grace-period=20s"$/m);
  const kubelet = lab.readFile('kubeminion2', '/etc/kubernetes/kubelet');
  t.regex(kubelet, /^KUBELET_API_SERVER=""$/m);
  t.notRegex(kubelet, /--enable_server|--api-servers/);
  // the kubeconfig installed through sudo is the node's identity, as the real apiserver sees it (kubectl on the host)
  const who = await lab.exec('kubeminion2', ['kubectl', '--kubeconfig', '/var/lib/kubelet/kubeconfig', 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
  t.is(who.stdout, 'system:node:kubeminion2', who.stderr);
});

test.serial('a second run through sudo writes nothing', async (t) => {
  const inv = await sudoInventory();
  const m = await runScript('master.ts', ['--inventory', inv]);
  const n = await runScript('minions.ts', ['--inventory', inv]);
  t.is(m.code + n.code, 0, m.all + n.all);
  t.regex(m.stdout, /nothing to do: every host already up to date/);
  t.regex(n.stdout, /nothing to do: every host already up to date/);
});

test.serial('a failed install through sudo leaves no copy of a key in the staging folder, and old leftovers are removed', async (t) => {
  const lab = await labP;
  editInventory(lab, (d) => { d.apiserver.dns.push('staging.example'); });
  const inv = await sudoInventory();
  // a leftover of an older run that died, and an install that will fail (a folder where the temp file goes)
  await lab.exec('kubemaster', ['sh', '-c', 'echo old > /home/jijisa/.kubetls-staging/sa.key.99999 && chown jijisa /home/jijisa/.kubetls-staging/sa.key.99999']);
  await lab.exec('kubemaster', ['mkdir', '/srv/kubernetes/.server.key.kubetls-tmp']);
  const r = await runScript('master.ts', ['--inventory', inv]);
  t.is(r.code, 1, r.all);
  t.regex(r.stdout, /kubemaster +FAILED .*install \/srv\/kubernetes\/server\.key/);
  t.is((await lab.exec('kubemaster', ['ls', '-A', '/home/jijisa/.kubetls-staging'])).stdout, '', 'no staged copy left, old or new');
  await lab.exec('kubemaster', ['rmdir', '/srv/kubernetes/.server.key.kubetls-tmp']);
  const again = await runScript('master.ts', ['--inventory', inv]);
  t.is(again.code, 0, again.all);
  t.is((await lab.exec('kubemaster', ['ls', '-A', '/home/jijisa/.kubetls-staging'])).stdout, '');
});

test.serial('the sudoers line the README documents is enough: a run restricted to sudo sh works', async (t) => {
  const lab = await labP;
  await lab.exec('kubeminion1', ['sh', '-c', 'echo "jijisa ALL=(root) NOPASSWD: /usr/bin/sh, /bin/sh" > /etc/sudoers.d/jijisa']);
  const inv = await sudoInventory();
  editInventory(lab, (d) => { d.cluster_dns = '10.24.0.11'; d.ssh.user = 'jijisa'; d.ssh.sudo = true; }, inv);
  const r = await runScript('minions.ts', ['--inventory', inv, '--only', 'kubeminion1']);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /\[kubeminion1\] \$ sudo -n systemctl restart kubelet/);
  t.regex(lab.readFile('kubeminion1', '/etc/kubernetes/kubelet'), /--cluster-dns=10\.24\.0\.11/);
  // and nothing else: sudo refuses another command
  const other = await lab.exec('kubeminion1', ['sudo', '-n', '-u', 'root', 'id'], { user: 'jijisa' });
  t.not(other.exitCode, 0);
});

test.serial('when sudo asks for a password the host fails with a clear message and the others go on', async (t) => {
  const lab = await labP;
  await lab.exec('kubeminion2', ['sh', '-c', 'echo "jijisa ALL=(ALL) ALL" > /etc/sudoers.d/jijisa']);
  const inv = await sudoInventory();
  const r = await runScript('verify.ts', ['--inventory', inv]);
  t.is(r.code, 1);
  t.regex(r.stdout, /ssh\s+kubeminion2\s+FAIL\s+sudo asks for a password for jijisa: allow it with NOPASSWD in sudoers \(kubetls runs 'sudo -n'\)/);
  t.regex(r.stdout, /deployed\s+kubeminion1:\/srv\/kubernetes\/kubeminion1\.key\s+ok/);
});
