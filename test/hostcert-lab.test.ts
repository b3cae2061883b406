/**
 * Host certificates end to end: the lab master's real sshd serves a certificate (HostCertificate) made
 * with the real ssh-keygen by a test CA; known_hosts holds ONLY an `@cert-authority` line. kubetls connects (the
 * certificate fetched with the real ssh-keyscan, checked by lib/remote/hostcert.ts); another CA, a @revoked CA, and a host
 * behind a jump host are refused with one line saying why. The certificate checks one by one: hostcert.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { loadInventory } from '../lib/inventory/load.ts';
import { configureLog } from '../lib/log.ts';
import { connect } from '../lib/remote/connect.ts';
import { fingerprint } from '../lib/remote/knownhosts.ts';
import { useLab } from './helpers/lab.ts';

const labP = useLab(test, { minions: 1, profile: 'legacy' });
type Lab = Awaited<typeof labP>;
const work = mkdtempSync(path.join(tmpdir(), 'kubetls-hostcert-lab-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));
const w = (f: string) => path.join(work, f);
const pub = (f: string) => readFileSync(w(f), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');

const logged: string[] = [];
configureLog({ sink: (line) => { logged.push(line); } });

/** The master's sshd presents a certificate by the CA `ca` for its ed25519 host key (principals: its name and address). */
const setup = (async () => {
  const lab = await labP;
  for (const ca of ['ca', 'other_ca']) await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', ca, '-f', w(ca)]);
  const m = lab.master;
  writeFileSync(w('host.pub'), lab.readFile(m.name, '/etc/ssh/ssh_host_ed25519_key.pub'));
  await execa('ssh-keygen', ['-q', '-s', w('ca'), '-h', '-I', m.name, '-n', `${m.name},${m.address}`, '-V', '-5m:+1h', w('host.pub')]);
  lab.writeFile(m.name, '/etc/ssh/ssh_host_ed25519_key-cert.pub', readFileSync(w('host-cert.pub')), { mode: 0o644 });
  const r = await lab.exec(m.name, ['sh', '-c', 'echo "HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub" >> /etc/ssh/sshd_config']);
  if (r.exitCode !== 0) throw new Error(r.stderr);
  await lab.stopHost(m.name, { sshdOnly: true });
  await lab.startHost(m.name);
  return lab;
})();

/** An inventory of the lab whose known_hosts is `lines` only (and ssh_config `config`, or none). */
function inventory(lab: Lab, name: string, lines: string[], config?: string) {
  const doc = parse(readFileSync(lab.inventoryPath, 'utf8')) as Record<string, any>;
  writeFileSync(w(`${name}.known_hosts`), `${lines.join('\n')}\n`);
  if (config) writeFileSync(w(`${name}.ssh_config`), config);
  doc.ssh = { ...doc.ssh, identity_file: lab.identityFile, known_hosts: w(`${name}.known_hosts`), config_file: config ? w(`${name}.ssh_config`) : 'none' };
  doc.pki.dir = path.join(lab.dir, 'pki');
  writeFileSync(w(`${name}.yaml`), stringify(doc));
  return loadInventory(w(`${name}.yaml`));
}

test.serial('the lab sshd serves the certificate, and kubetls connects with only an @cert-authority line in known_hosts', async (t) => {
  const lab = await setup;
  const scan = await execa('ssh-keyscan', ['-c', '-t', 'ed25519', lab.master.address]);
  t.regex(scan.stdout, /ssh-ed25519-cert-v01@openssh\.com /, 'sshd serves the certificate');
  const inv = inventory(lab, 'good', [`@cert-authority kubemaster,${lab.master.address} ${pub('ca.pub')}`]);
  const before = readFileSync(w('good.known_hosts'), 'utf8');
  const r = await connect(inv, inv.master, { attempts: 1 });
  try {
    t.is((await r.run(['hostname'], { quiet: true })).stdout.trim(), 'kubemaster');
  } finally {
    await r.close();
  }
  const hostKey = Buffer.from(readFileSync(w('host.pub'), 'utf8').split(/\s+/)[1], 'base64');
  t.true(logged.some((l) => l.includes(`host key ssh-ed25519 ${fingerprint(hostKey)} for ${lab.master.address} accepted by its host certificate (@cert-authority ${w('good.known_hosts')}:1)`)), logged.join('\n'));
  t.is(readFileSync(w('good.known_hosts'), 'utf8'), before, 'nothing is added to known_hosts');
});

test.serial('with the @cert-authority line of another CA the host is refused, saying the certificate is not signed by it', async (t) => {
  const lab = await setup;
  const inv = inventory(lab, 'other', [`@cert-authority * ${pub('other_ca.pub')}`]);
  const e = await t.throwsAsync(connect(inv, inv.master, { attempts: 1 }));
  t.regex(e!.message, new RegExp(`^host key ssh-ed25519 SHA256:\\S+ for ${lab.master.address.replace(/\./g, '\\.')} is not in \\S+other\\.known_hosts or /etc/ssh/ssh_known_hosts; `
    + 'its host certificate was not accepted: it is signed by ssh-ed25519 SHA256:\\S+, not by a @cert-authority key for \\S+ or kubemaster: check it, then add it'));
  t.false(e!.message.includes('\n'));
  // as OpenSSH does (a certificate that fails falls back to the plain key), --accept-new-host-keys adds the plain key, saying why
  const r = await connect(inv, inv.master, { attempts: 1, acceptNewHostKeys: true });
  await r.close();
  t.regex(readFileSync(w('other.known_hosts'), 'utf8'), /^\|1\|\S+ ssh-ed25519 \S+$/m);
  t.true(logged.some((l) => /added host key ssh-ed25519 .*; its host certificate was not accepted: it is signed by/.test(l)));
});

test.serial('a certificate signed by a @revoked CA key is refused even with --accept-new-host-keys', async (t) => {
  const lab = await setup;
  const inv = inventory(lab, 'revoked', [`@cert-authority * ${pub('ca.pub')}`, `@revoked * ${pub('ca.pub')}`]);
  const e = await t.throwsAsync(connect(inv, inv.master, { attempts: 1, acceptNewHostKeys: true }));
  t.regex(e!.message, /^host certificate for \S+ refused: it is signed by the CA key ssh-ed25519 SHA256:\S+, which is @revoked \(\S+revoked\.known_hosts:2\)$/);
  t.is(readFileSync(w('revoked.known_hosts'), 'utf8').split('\n').filter(Boolean).length, 2, 'nothing added');
});

test.serial('through a jump host: the jump host is accepted by its certificate, the host behind it is refused saying why', async (t) => {
  const lab = await setup;
  const m = lab.minions[0];
  const config = `Host kubeminion1\n  HostName ${m.address}\n  ProxyJump kubemaster\nHost kubemaster\n  HostName ${lab.master.address}\n`;
  const inv = inventory(lab, 'jump', [`@cert-authority kube*,127.* ${pub('ca.pub')}`], config);
  const e = await t.throwsAsync(connect(inv, inv.minions[0], { attempts: 1 }));
  t.regex(e!.message, /^host key ssh-ed25519 SHA256:\S+ for 127\.\d+\.0\.2 is not in .*; its host certificate was not accepted: host certificates are not fetched through a jump host \(ssh-keyscan cannot use ProxyJump\), so this host key must be in known_hosts: check it/);
  t.true(logged.some((l) => l.includes(`for ${lab.master.address} accepted by its host certificate`)), 'the jump host itself was accepted by its certificate');
});
