// The shared "base /etc" layer of a lab (built once per lab, under every host's /etc overlay) and each host's
// own folders. Users are added by writing passwd/shadow/group lines, not by running useradd 51 times.
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kubernetesDefaults } from './defaults.ts';
import { VERSION_FILE, VERSION_OF, type Profile } from './versions.ts';

export interface LabHostAddr { name: string; address: string }

/** Pick UIDs that the real machine does not use: kube a system UID (≤ 999), jijisa a normal one (≥ 1000). */
export function pickUids(): { kubeUid: number; jijisaUid: number } {
  const used = new Set<number>();
  for (const f of ['/etc/passwd', '/etc/group']) {
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      const id = Number(line.split(':')[2]);
      if (line && Number.isInteger(id)) used.add(id);
    }
  }
  let kubeUid = 999;
  while (used.has(kubeUid)) kubeUid--;
  let jijisaUid = 1000;
  while (used.has(jijisaUid)) jijisaUid++;
  return { kubeUid, jijisaUid };
}

function copyWith(src: string, dst: string, edit: (text: string) => string): void {
  const st = statSync(src);
  writeFileSync(dst, edit(readFileSync(src, 'utf8')), { mode: st.mode & 0o7777 });
  chmodSync(dst, st.mode & 0o7777);
  chownSync(dst, st.uid, st.gid);
}

const withLine = (text: string, line: string) => (text.endsWith('\n') || text === '' ? text : text + '\n') + line + '\n';

export function hostsFile(hosts: LabHostAddr[]): string {
  return [
    '# written by kubetls lab: every lab name maps to its loopback address',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    ...hosts.map((h) => `${h.address}\t${h.name}`),
    '',
  ].join('\n');
}

export function writeBaseEtc(etc: string, opts: { name: string; profile: Profile; hosts: LabHostAddr[]; kubeUid: number; jijisaUid: number }): void {
  const { kubeUid, jijisaUid } = opts;
  for (const d of ['sudoers.d', 'kubernetes', 'kubetls-lab']) mkdirSync(join(etc, d), { recursive: true, mode: 0o755 });
  copyWith('/etc/passwd', join(etc, 'passwd'), (t) =>
    withLine(withLine(t, `kube:x:${kubeUid}:65534:Kubernetes user:/nonexistent:/usr/sbin/nologin`),
      `jijisa:x:${jijisaUid}:${jijisaUid}:jijisa:/home/jijisa:/bin/bash`));
  copyWith('/etc/group', join(etc, 'group'), (t) => withLine(t, `jijisa:x:${jijisaUid}:`));
  // UsePAM no: sshd refuses a locked account ("!" password) even for keys, so root and jijisa get "*" (no password)
  copyWith('/etc/shadow', join(etc, 'shadow'), (t) =>
    withLine(withLine(t.replace(/^root:[^:]*:/m, 'root:*:'), 'kube:!:19000::::::'), 'jijisa:*:19000:0:99999:7:::'));
  copyWith('/etc/gshadow', join(etc, 'gshadow'), (t) => withLine(t, 'jijisa:!::'));
  writeFileSync(join(etc, 'hosts'), hostsFile(opts.hosts), { mode: 0o644 });
  writeFileSync(join(etc, 'sudoers.d', 'jijisa'), 'jijisa ALL=(ALL:ALL) NOPASSWD: ALL\n', { mode: 0o440 });
  chmodSync(join(etc, 'sudoers.d', 'jijisa'), 0o440);
  writeFileSync(join(etc, VERSION_FILE.replace('/etc/', '')), VERSION_OF[opts.profile] + '\n', { mode: 0o644 });
  writeFileSync(join(etc, 'kubetls-lab', 'lab'), `${opts.name}\n`, { mode: 0o644 });
  for (const [file, text] of Object.entries(kubernetesDefaults(opts.profile))) {
    writeFileSync(join(etc, 'kubernetes', file), text, { mode: 0o644 });
  }
}

export function sshdConfig(address: string): string {
  return `# kubetls lab sshd for ${address}: key-only, loopback only
ListenAddress ${address}:22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
# parallel SSH from the tool (and 50 hosts at once) must not be dropped
MaxStartups 200:30:400
MaxSessions 100
LoginGraceTime 30
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
`;
}

/** A host's own folders: overlay uppers for /etc and /var/lib, and the bind sources for /srv /home /root /var/log. */
export function prepareHostDirs(hd: string, o: { name: string; address: string; hostKey: string; hostKeyPub: string; clientPub: string; jijisaUid: number }): void {
  for (const d of ['etc/ssh', 'var-lib/kubelet', 'work/etc', 'work/var-lib', 'srv', 'log/kubetls-lab']) {
    mkdirSync(join(hd, d), { recursive: true, mode: 0o755 });
  }
  mkdirSync(join(hd, 'root', '.ssh'), { recursive: true, mode: 0o700 });
  chmodSync(join(hd, 'root'), 0o700);
  mkdirSync(join(hd, 'home', 'jijisa', '.ssh'), { recursive: true, mode: 0o700 });
  writeFileSync(join(hd, 'etc', 'hostname'), `${o.name}\n`, { mode: 0o644 });
  writeFileSync(join(hd, 'etc', 'ssh', 'sshd_config'), sshdConfig(o.address), { mode: 0o644 });
  writeFileSync(join(hd, 'etc', 'ssh', 'ssh_host_ed25519_key'), o.hostKey, { mode: 0o600 });
  writeFileSync(join(hd, 'etc', 'ssh', 'ssh_host_ed25519_key.pub'), o.hostKeyPub, { mode: 0o644 });
  writeFileSync(join(hd, 'root', '.ssh', 'authorized_keys'), o.clientPub, { mode: 0o600 });
  chmodSync(join(hd, 'home'), 0o755);
  const jh = join(hd, 'home', 'jijisa');
  writeFileSync(join(jh, '.ssh', 'authorized_keys'), o.clientPub, { mode: 0o600 });
  chmodSync(jh, 0o750);
  for (const p of [jh, join(jh, '.ssh'), join(jh, '.ssh', 'authorized_keys')]) chownSync(p, o.jijisaUid, o.jijisaUid);
}
