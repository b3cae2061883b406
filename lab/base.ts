// The shared "base /etc" layer of a lab (built once per lab, the top layer under every host's root) and each host's
// own files. Users are added by writing passwd/shadow/group lines, not by running useradd 51 times.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kubernetesDefaults } from './defaults.ts';
import { VERSION_FILE, VERSION_OF, type Profile } from './versions.ts';

export interface LabHostAddr { name: string; address: string }

/** The id of NAME in a passwd or group file (the real machine's, or the systemd hosts' Debian tree), or undefined. */
function idOf(file: string, name: string): number | undefined {
  const line = readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  return line ? Number(line.split(':')[2]) : undefined;
}

/**
 * Pick UIDs that the real machine does not use: kube a system UID (≤ 999), jijisa a normal one (≥ 1000). etcd keeps
 * the machine's own ids when Debian's etcd-server made the user (the package's /var/lib/etcd, seen through every
 * host's /var/lib overlay, is owned by them); otherwise the next free system id below kube's.
 */
export function pickUids(roots: string[] = ['/']): { kubeUid: number; jijisaUid: number; etcdUid: number; etcdGid: number } {
  const used = new Set<number>();
  for (const f of roots.flatMap((r) => [join(r, 'etc/passwd'), join(r, 'etc/group')])) {
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      const id = Number(line.split(':')[2]);
      if (line && Number.isInteger(id)) used.add(id);
    }
  }
  let kubeUid = 999;
  while (used.has(kubeUid)) kubeUid--;
  let jijisaUid = 1000;
  while (used.has(jijisaUid)) jijisaUid++;
  // the last root decides etcd's ids: the tree the hosts run (whose etcd-server package made the user)
  const own = roots[roots.length - 1]!;
  let etcdUid = idOf(join(own, 'etc/passwd'), 'etcd');
  let etcdGid = idOf(join(own, 'etc/group'), 'etcd');
  if (etcdUid === undefined || etcdGid === undefined) {
    let free = kubeUid - 1;
    while (used.has(free)) free--;
    etcdUid ??= free;
    etcdGid ??= free;
  }
  return { kubeUid, jijisaUid, etcdUid, etcdGid };
}

/** Debian's /etc/default/etcd as the etcd-server package (3.4, bookworm) ships it: commented defaults only. */
export const DEBIAN_ETCD_DEFAULT = `## etcd(1) daemon options
## See "/usr/share/doc/etcd-server/op-guide/configuration.md.gz"
## for available options.
##
## Use environment to override, for example: ETCD_NAME=default
`;

function copyWith(src: string, dst: string, edit: (text: string) => string): void {
  const st = statSync(src);
  writeFileSync(dst, edit(readFileSync(src, 'utf8')), { mode: st.mode & 0o7777 });
  chmodSync(dst, st.mode & 0o7777);
  chownSync(dst, st.uid, st.gid);
}

const withLine = (text: string, line: string) => (text.endsWith('\n') || text === '' ? text : text + '\n') + line + '\n';
/** Add a line for NAME unless the file has one already (the machine's own etcd user). */
const withEntry = (text: string, name: string, line: string) => (text.split('\n').some((l) => l.startsWith(`${name}:`)) ? text : withLine(text, line));

export function hostsFile(hosts: LabHostAddr[]): string {
  return [
    '# written by kubetls lab: every lab name maps to its loopback address',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    ...hosts.map((h) => `${h.address}\t${h.name}`),
    '',
  ].join('\n');
}

export function writeBaseEtc(etc: string, opts: {
  name: string; profile: Profile; hosts: LabHostAddr[]; kubeUid: number; jijisaUid: number; etcdUid: number; etcdGid: number;
  /** the root whose passwd/group/shadow the hosts extend: the Debian tree's */
  from: string; version?: string;
}): void {
  const { kubeUid, jijisaUid, etcdUid, etcdGid } = opts;
  const from = opts.from;
  // modern: Debian's etcd-server user (etcd:etcd, home /var/lib/etcd), unless the machine's files have it already
  const modern = opts.profile === 'modern';
  const etcdUser = (t: string) => (modern ? withEntry(t, 'etcd', `etcd:x:${etcdUid}:${etcdGid}::/var/lib/etcd/:/usr/sbin/nologin`) : t);
  const etcdGroup = (t: string) => (modern ? withEntry(t, 'etcd', `etcd:x:${etcdGid}:`) : t);
  for (const d of ['sudoers.d', 'kubernetes', 'kubetls-lab']) mkdirSync(join(etc, d), { recursive: true, mode: 0o755 });
  copyWith(join(from, 'etc/passwd'), join(etc, 'passwd'), (t) =>
    etcdUser(withLine(withLine(t, `kube:x:${kubeUid}:65534:Kubernetes user:/nonexistent:/usr/sbin/nologin`),
      `jijisa:x:${jijisaUid}:${jijisaUid}:jijisa:/home/jijisa:/bin/bash`)));
  copyWith(join(from, 'etc/group'), join(etc, 'group'), (t) => etcdGroup(withLine(t, `jijisa:x:${jijisaUid}:`)));
  // UsePAM no: sshd refuses a locked account ("!" password) even for keys, so root and jijisa get "*" (no password)
  copyWith(join(from, 'etc/shadow'), join(etc, 'shadow'), (t) =>
    (modern ? (x: string) => withEntry(x, 'etcd', 'etcd:!:19000::::::') : (x: string) => x)(
      withLine(withLine(t.replace(/^root:[^:]*:/m, 'root:*:'), 'kube:!:19000::::::'), 'jijisa:*:19000:0:99999:7:::')));
  copyWith(join(from, 'etc/gshadow'), join(etc, 'gshadow'), (t) =>
    (modern ? (x: string) => withEntry(x, 'etcd', 'etcd:!::') : (x: string) => x)(withLine(t, 'jijisa:!::')));
  writeFileSync(join(etc, 'hosts'), hostsFile(opts.hosts), { mode: 0o644 });
  writeFileSync(join(etc, 'sudoers.d', 'jijisa'), 'jijisa ALL=(ALL:ALL) NOPASSWD: ALL\n', { mode: 0o440 });
  chmodSync(join(etc, 'sudoers.d', 'jijisa'), 0o440);
  writeFileSync(join(etc, VERSION_FILE.replace('/etc/', '')), (opts.version ?? VERSION_OF[opts.profile]) + '\n', { mode: 0o644 });
  writeFileSync(join(etc, 'kubetls-lab', 'lab'), `${opts.name}\n`, { mode: 0o644 });
  for (const [file, text] of Object.entries(kubernetesDefaults(opts.profile))) {
    writeFileSync(join(etc, 'kubernetes', file), text, { mode: 0o644 });
  }
  if (modern) {
    // the etcd unit's EnvironmentFile, as the package ships it (whatever the machine's own copy says)
    mkdirSync(join(etc, 'default'), { recursive: true, mode: 0o755 });
    writeFileSync(join(etc, 'default', 'etcd'), DEBIAN_ETCD_DEFAULT, { mode: 0o644 });
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

/** A host's own files, in the overlay upper of its root (DIR/hosts/H/upper). */
export function prepareHostDirs(hd: string, o: {
  name: string; address: string; hostKey: string; hostKeyPub: string; clientPub: string; jijisaUid: number;
  etcd?: { uid: number; gid: number };
}): void {
  const at = { etc: 'upper/etc', root: 'upper/root', home: 'upper/home', varLib: 'upper/var/lib', dirs: ['upper/etc/ssh', 'upper/var/lib', 'upper/srv'] };
  for (const d of at.dirs) mkdirSync(join(hd, d), { recursive: true, mode: 0o755 });
  const etc = join(hd, at.etc);
  const root = join(hd, at.root);
  const home = join(hd, at.home);
  mkdirSync(join(root, '.ssh'), { recursive: true, mode: 0o700 });
  chmodSync(root, 0o700);
  mkdirSync(join(home, 'jijisa', '.ssh'), { recursive: true, mode: 0o700 });
  writeFileSync(join(etc, 'hostname'), `${o.name}\n`, { mode: 0o644 });
  writeFileSync(join(etc, 'ssh', 'sshd_config'), sshdConfig(o.address), { mode: 0o644 });
  writeFileSync(join(etc, 'ssh', 'ssh_host_ed25519_key'), o.hostKey, { mode: 0o600 });
  writeFileSync(join(etc, 'ssh', 'ssh_host_ed25519_key.pub'), o.hostKeyPub, { mode: 0o644 });
  writeFileSync(join(root, '.ssh', 'authorized_keys'), o.clientPub, { mode: 0o600 });
  chmodSync(home, 0o755);
  const jh = join(home, 'jijisa');
  writeFileSync(join(jh, '.ssh', 'authorized_keys'), o.clientPub, { mode: 0o600 });
  chmodSync(jh, 0o750);
  for (const p of [jh, join(jh, '.ssh'), join(jh, '.ssh', 'authorized_keys')]) chownSync(p, o.jijisaUid, o.jijisaUid);
  // a machine id of its own: journald keeps one journal per id, and two hosts must not look like one machine
  writeFileSync(join(etc, 'machine-id'), randomBytes(16).toString('hex') + '\n', { mode: 0o444 });
  if (o.etcd) {
    // in the host's own /var/lib (overlay upper): etcd's data never lands in the machine's /var/lib/etcd
    mkdirSync(join(hd, at.varLib, 'etcd'), { recursive: true, mode: 0o700 });
    chmodSync(join(hd, at.varLib, 'etcd'), 0o700);
    chownSync(join(hd, at.varLib, 'etcd'), o.etcd.uid, o.etcd.gid);
  }
}
