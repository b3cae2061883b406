/**
 * "Tests that bite", the half that needs the lab (root): each test gives a real OpenSSH host the bad case a
 * check exists to refuse or repair, and asserts what ends up on the host. Each was seen failing with the deliberate
 * bug of its title (see test/MUTATION.md). The tests share one lab and run in order.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { execa } from 'execa';
import { editInventory, remoteFile, restarts, sha256 } from './helpers/e2e.ts';
import { repoRoot } from './helpers/inventory.ts';
import { useLab } from './helpers/lab.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 2, profile: 'legacy', name: 't-bite-lab' });
type Lab = Awaited<typeof labP>;

const localSha = (lab: Lab, f: string) => sha256(readFileSync(path.join(lab.pkiDir, f)));
/** Accepted logins in a host's sshd log (its journal): what "nothing was sent" is measured with. */
const logins = async (lab: Lab, host: string) => {
  await lab.exec(host, ['journalctl', '--sync']); // journald writes asynchronously: what sshd said so far, all of it
  return (lab.unitLog(host, 'ssh').match(/Accepted publickey/g) ?? []).length;
};

test.serial('master.ts and minions.ts install the lab (the starting point of the tests below)', async (t) => {
  const lab = await labP;
  for (const s of ['master.ts', 'minions.ts']) {
    const r = await runScript(s, ['--inventory', lab.inventoryPath]);
    t.is(r.code, 0, r.all);
  }
  t.deepEqual(await remoteFile(lab, 'kubeminion1', '/srv/kubernetes/kubeminion1.key'), { owner: 'root:root', mode: '600', sha: localSha(lab, 'kubeminion1.key') });
});

test.serial('a key whose content is right but whose mode or owner drifted is rewritten with the recipe\'s owner and mode', async (t) => {
  const lab = await labP;
  await lab.exec('kubeminion1', ['chmod', '0644', '/srv/kubernetes/kubeminion1.key']);
  await lab.exec('kubemaster', ['chown', 'root:root', '/srv/kubernetes/server.key']);
  t.is((await remoteFile(lab, 'kubeminion1', '/srv/kubernetes/kubeminion1.key'))!.mode, '644', 'the drift is in place');
  const r = await runScript('master.ts', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /\[kubeminion1\] \$ sftp put .*kubeminion1\.key → \/srv\/kubernetes\/kubeminion1\.key \(root:root 0600, old one kept as /);
  t.regex(r.stdout, /\[kubemaster\] \$ sftp put .*server\.key → \/srv\/kubernetes\/server\.key \(kube:nogroup 0600, old one kept as /);
  t.deepEqual(await remoteFile(lab, 'kubeminion1', '/srv/kubernetes/kubeminion1.key'), { owner: 'root:root', mode: '600', sha: localSha(lab, 'kubeminion1.key') });
  t.deepEqual(await remoteFile(lab, 'kubemaster', '/srv/kubernetes/server.key'), { owner: 'kube:nogroup', mode: '600', sha: localSha(lab, 'server.key') });
  t.regex(r.stdout, /2 file\(s\) written/, 'only the two drifted files');
});

test.serial('--accept-new-host-keys with a CHANGED host key is refused and nothing is sent to that host', async (t) => {
  const lab = await labP;
  const kh = path.join(lab.dir, 'known_hosts.changed-accept');
  const lines = readFileSync(lab.knownHostsPath, 'utf8').split('\n');
  const other = lines.find((l) => l.startsWith('kubeminion1,'))!.split(' ').slice(1).join(' ');
  writeFileSync(kh, lines.map((l) => (l.startsWith('kubeminion2,') ? `${l.split(' ')[0]} ${other}` : l)).join('\n'));
  const khBefore = readFileSync(kh, 'utf8');
  const inv = editInventory(lab, (d) => { d.ssh.known_hosts = 'known_hosts.changed-accept'; }, path.join(lab.dir, 'changed-accept.yaml'));
  lab.writeFile('kubeminion2', '/srv/kubernetes/kubeminion2.key', 'tampered', { mode: 0o600 });
  const loginsBefore = await logins(lab, 'kubeminion2');
  t.true(loginsBefore > 0, 'sshd logs accepted logins (the measure below means something)');
  const r = await runScript('master.ts', ['--inventory', inv, '--accept-new-host-keys']);
  t.is(r.code, 1, r.all);
  t.regex(r.stdout, /^kubeminion2\s+FAILED\s+-\s+connect\s+HOST KEY CHANGED for 127\.\d+\.0\.3: offered ssh-ed25519 SHA256:\S+, .*known_hosts\.changed-accept:\d+ has SHA256:/m);
  t.regex(r.stdout, /^kubeminion1\s+ok/m);
  t.notRegex(r.all, /added host key/);
  t.is(readFileSync(kh, 'utf8'), khBefore, 'known_hosts is not changed');
  t.is(lab.readFile('kubeminion2', '/srv/kubernetes/kubeminion2.key'), 'tampered', 'nothing was written to the host');
  t.is(await logins(lab, 'kubeminion2'), loginsBefore, 'no login happened on the host');
  // put the right key back for the tests below
  const again = await runScript('master.ts', ['--inventory', lab.inventoryPath]);
  t.is(again.code, 0, again.all);
});

test.serial('restarts owed by an earlier run are done on the next run, although no file changed', async (t) => {
  const lab = await labP;
  // what a run that died between `touch restart.<unit>` and the unit's gate leaves on the hosts
  await lab.exec('kubeminion1', ['sh', '-c', 'mkdir -p /var/lib/kubetls && touch /var/lib/kubetls/restart.kubelet']);
  await lab.exec('kubemaster', ['sh', '-c', 'mkdir -p /var/lib/kubetls && touch /var/lib/kubetls/restart.kube-controller-manager']);
  const before = Object.fromEntries(lab.hosts.map((h) => [h.name, restarts(lab, h.name)]));
  const m = await runScript('master.ts', ['--inventory', lab.inventoryPath]);
  t.is(m.code, 0, m.all);
  const n = await runScript('minions.ts', ['--inventory', lab.inventoryPath]);
  t.is(n.code, 0, n.all);
  t.notRegex(m.all + n.all, /\$ sftp put/, 'no file changed');
  const after = Object.fromEntries(lab.hosts.map((h) => [h.name, restarts(lab, h.name)]));
  t.is(after.kubeminion1.kubelet - before.kubeminion1.kubelet, 1);
  t.is(after.kubeminion1['kube-proxy'], before.kubeminion1['kube-proxy'], 'only the owed unit');
  t.is(after.kubemaster['kube-controller-manager'] - before.kubemaster['kube-controller-manager'], 1);
  t.is(after.kubemaster['kube-apiserver'], before.kubemaster['kube-apiserver']);
  t.deepEqual(after.kubeminion2, before.kubeminion2);
  for (const h of ['kubeminion1', 'kubemaster']) {
    t.is((await lab.exec(h, ['ls', '-A', '/var/lib/kubetls'])).stdout.trim(), '', `${h}: the marker is removed once the unit passed its gate`);
  }
});

test.serial('a second writer racing master.ts exits 75 naming it, and master.ts finishes', async (t) => {
  const lab = await labP;
  const lock = path.join(lab.pkiDir, '.kubetls.lock'); // the lock lives in pki.dir
  // a minion that is down makes master.ts retry its connection for a few seconds while it holds the lock
  await lab.stopHost('kubeminion2');
  try {
    const first = runScript('master.ts', ['--inventory', lab.inventoryPath]);
    let holder = '';
    for (let i = 0; i < 100 && !holder; i++) {
      await sleep(100);
      if (existsSync(lock)) holder = readFileSync(lock, 'utf8');
    }
    t.regex(holder, /"command":"master\.ts"/, 'master.ts holds the lock while it runs');
    const [renew, master] = await Promise.all([runScript('renew.ts', ['--inventory', lab.inventoryPath]), runScript('master.ts', ['--inventory', lab.inventoryPath])]);
    t.is(renew.code, 75, renew.all);
    t.regex(renew.stderr, /another kubetls run holds .*\.kubetls\.lock: pid \d+ \(master\.ts\)/);
    t.is(master.code, 75, master.all);
    t.notRegex(renew.all + master.all, /\$ (openssl|sftp|systemctl)/, 'the second writers did nothing');
    const r = await first;
    t.is(r.code, 1, r.all); // kubeminion2 is down
    t.regex(r.stdout, /^kubeminion1\s+ok/m);
    t.false(existsSync(lock), 'released when master.ts ends');
  } finally {
    await lab.startHost('kubeminion2');
  }
});

test.serial('when sudo would ask for a password, the host fails at once with the message instead of hanging', async (t) => {
  const lab = await labP;
  const sudoers = lab.readFile('kubeminion2', '/etc/sudoers.d/jijisa');
  // visiblepw: without -n, sudo would prompt on the SSH channel (no tty) and wait for a password that never comes
  await lab.exec('kubeminion2', ['sh', '-c', 'printf "Defaults:jijisa visiblepw\\njijisa ALL=(ALL) ALL\\n" > /etc/sudoers.d/jijisa']);
  try {
    const inv = editInventory(lab, (d) => { d.ssh.user = 'jijisa'; d.ssh.sudo = true; }, path.join(lab.dir, 'sudo-password.yaml'));
    const started = Date.now();
    const r = await execa(path.join(repoRoot, 'node_modules/.bin/zx'), [path.join(repoRoot, 'scripts/minions.ts'), '--inventory', inv], {
      cwd: repoRoot, reject: false, stdin: 'ignore', all: true, timeout: 60_000, env: { NODE_OPTIONS: '--import=tsx' },
    });
    const seconds = (Date.now() - started) / 1000;
    t.false(r.timedOut, `minions.ts still running after 60 s: ${r.all}`);
    t.true(seconds < 30, `took ${seconds} s`);
    t.is(r.exitCode, 1, r.all);
    t.regex(r.stdout, /^kubeminion2\s+FAILED\s+.*sudo asks for a password for jijisa: allow it with NOPASSWD in sudoers \(kubetls runs 'sudo -n'\)/m);
    t.regex(r.stdout, /^kubeminion1\s+ok/m);
  } finally {
    lab.writeFile('kubeminion2', '/etc/sudoers.d/jijisa', sudoers, { mode: 0o440 });
  }
});
