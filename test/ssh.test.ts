/**
 * The operator's SSH setup: ~/.ssh/config-style files give HostName, User, Port, IdentityFile,
 * UserKnownHostsFile, BindAddress and ProxyJump; minions that accept SSH only from the bastion are reached through
 * it; an encrypted key is used through ssh-agent. The workstation is 127.N.0.250 (ssh_config BindAddress); the
 * minions' sshd accepts only connections that come from the bastion (the master), which reach them from 127.0.0.1.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { stringify, parse } from 'yaml';
import { remoteFile, sha256 } from './helpers/e2e.ts';
import { useLab } from './helpers/lab.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 2, profile: 'legacy' });
type Lab = Awaited<typeof labP>;
const work = mkdtempSync(path.join(tmpdir(), 'kubetls-ssh-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));

/** An inventory that names hosts only (no address, user, port, key or known_hosts): everything else from `config`. */
function operatorInventory(lab: Lab, config: string, name: string): string {
  const doc = parse(readFileSync(lab.inventoryPath, 'utf8')) as Record<string, any>;
  doc.ssh = { config_file: config };
  doc.master = { name: 'kubemaster', address: lab.master.address }; // 6443 is reached directly; SSH settings come from ssh_config
  doc.minions = lab.minions.map((m) => m.name);
  doc.pki.dir = path.join(lab.dir, 'pki');
  const file = path.join(work, name);
  writeFileSync(file, stringify(doc));
  return file;
}

const workstation = (lab: Lab) => `127.${lab.block}.0.250`;
function sshConfig(lab: Lab, identity: string, jump: boolean): string {
  const hosts = lab.hosts.map((h) => `Host ${h.name}\n  HostName ${h.address}\n`).join('');
  return `${hosts}Host kubeminion*\n  ${jump ? 'ProxyJump kubemaster' : 'ProxyJump none'}\nHost *\n  User root\n  Port 22\n  IdentityFile ${identity}\n`
    + `  UserKnownHostsFile ${lab.knownHostsPath}\n  BindAddress ${workstation(lab)}\n`;
}

test.serial('minions that accept SSH only from the bastion are refused directly and reached through ProxyJump from ssh_config', async (t) => {
  const lab = await labP;
  t.is((await runScript('master.ts', ['--inventory', lab.inventoryPath, '--pki-only'])).code, 0);
  for (const m of lab.minions) {
    // only connections from the bastion: it reaches the minion from 127.0.0.1, the workstation comes from .250
    await lab.exec(m.name, ['sh', '-c', 'echo "AllowUsers root@127.0.0.1 jijisa@127.0.0.1" >> /etc/ssh/sshd_config']);
    await lab.stopHost(m.name, { sshdOnly: true });
    await lab.startHost(m.name);
  }
  const direct = operatorInventory(lab, path.join(work, 'direct_config'), 'direct.yaml');
  writeFileSync(path.join(work, 'direct_config'), sshConfig(lab, lab.identityFile, false));
  const refused = await runScript('master.ts', ['--inventory', direct, '--only', 'kubeminion1']);
  t.is(refused.code, 1, refused.all);
  t.regex(refused.stdout, /kubeminion1 +FAILED .*connect +ssh root@127\.\d+\.0\.2:22: /);

  const viaBastion = operatorInventory(lab, path.join(work, 'jump_config'), 'jump.yaml');
  writeFileSync(path.join(work, 'jump_config'), sshConfig(lab, lab.identityFile, true));
  const r = await runScript('master.ts', ['--inventory', viaBastion]);
  t.is(r.code, 0, r.all);
  for (const m of lab.minions) {
    t.deepEqual(await remoteFile(lab, m.name, `/srv/kubernetes/${m.name}.key`), { owner: 'root:root', mode: '600', sha: sha256(readFileSync(path.join(lab.pkiDir, `${m.name}.key`))) });
  }
  const n = await runScript('minions.ts', ['--inventory', viaBastion]);
  t.is(n.code, 0, n.all);
  // sshd on the minions saw the bastion, not the workstation
  t.regex(lab.unitLog('kubeminion1', 'ssh'), /Accepted publickey for root from 127\.0\.0\.1/);
});

test.serial('a changed host key of the bastion stops the hosts behind it before anything is sent', async (t) => {
  const lab = await labP;
  const kh = path.join(work, 'known_hosts_bad');
  const other = (await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(work, 'otherkey')]), readFileSync(path.join(work, 'otherkey.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' '));
  writeFileSync(kh, readFileSync(lab.knownHostsPath, 'utf8').split('\n').map((l) => (l.startsWith('kubemaster,') ? `${l.split(' ')[0]} ${other}` : l)).join('\n'));
  writeFileSync(path.join(work, 'badkh_config'), sshConfig(lab, lab.identityFile, true).replace(lab.knownHostsPath, kh));
  const file = operatorInventory(lab, path.join(work, 'badkh_config'), 'badkh.yaml');
  const r = await runScript('minions.ts', ['--inventory', file]);
  t.is(r.code, 1, r.all);
  t.regex(r.stdout, /kubeminion1 +FAILED .*jump host kubemaster: HOST KEY CHANGED for 127\.\d+\.0\.1: offered ssh-ed25519 SHA256:\S+, .*known_hosts_bad:1 has SHA256:/);
  t.notRegex(r.stdout, /\$ sftp put/);
});

test.serial('an encrypted key is used through ssh-agent; without an agent one line says what to do', async (t) => {
  const lab = await labP;
  const key = path.join(work, 'id_encrypted');
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'correct horse', '-f', key]);
  const pub = readFileSync(`${key}.pub`, 'utf8');
  for (const h of lab.hosts) await lab.exec(h.name, ['sh', '-c', `echo '${pub.trim()}' >> /root/.ssh/authorized_keys`]);
  writeFileSync(path.join(work, 'enc_config'), sshConfig(lab, key, true));
  const file = operatorInventory(lab, path.join(work, 'enc_config'), 'enc.yaml');

  const none = await runScript('verify.ts', ['--inventory', file], { SSH_AUTH_SOCK: '' });
  t.is(none.code, 1);
  t.regex(none.stdout, /identity file .*id_encrypted is encrypted and no ssh-agent is running \(SSH_AUTH_SOCK is not set\): run 'eval "\$\(ssh-agent\)"; ssh-add .*id_encrypted' first/);

  const sock = path.join(work, 'agent.sock');
  const agent = execa('ssh-agent', ['-D', '-a', sock]);
  agent.catch(() => undefined); // killed below on purpose
  try {
    for (let i = 0; i < 50; i++) { try { readFileSync(sock); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') break; } await new Promise((res) => setTimeout(res, 100)); }
    const askpass = path.join(work, 'askpass');
    writeFileSync(askpass, '#!/bin/sh\necho "correct horse"\n', { mode: 0o700 });
    const add = await execa('ssh-add', [key], { env: { SSH_AUTH_SOCK: sock, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: 'none' }, reject: false, stdin: 'ignore' });
    t.is(add.exitCode, 0, add.stderr);
    const r = await runScript('verify.ts', ['--inventory', file], { SSH_AUTH_SOCK: sock });
    t.is(r.code, 0, r.all);
    t.regex(r.stdout, /identity file .*id_encrypted is encrypted: using the keys in ssh-agent/);
  } finally {
    agent.kill();
  }
});
