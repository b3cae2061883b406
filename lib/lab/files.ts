// What `lab up` writes into DIR for the tool and for humans: cluster.yaml, known_hosts, ssh_config, bin wrappers.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BINARIES } from './units.ts';
import type { Profile } from './versions.ts';

export interface AddrHost { name: string; address: string; role: 'master' | 'minion' | 'etcd' }

/** The inventory, in the exact format lib/inventory.ts validates (paths relative to this file). */
export function clusterYaml(name: string, profile: Profile, hosts: AddrHost[]): string {
  const master = hosts.find((h) => h.role === 'master')!;
  const minions = hosts.filter((h) => h.role === 'minion');
  const members = hosts.filter((h) => h.role === 'etcd');
  // etcd.members only when there is more than the master: one member is the inventory's default, and a file without
  // the key stays the one a test may extend with its own etcd section.
  const etcd = members.length === 0 ? '' : `etcd:
  members:
${[master, ...members].map((m) => `    - { name: ${m.name}, address: ${m.address} }`).join('\n')}
`;
  return `# written by \`scripts/lab.ts up\` for lab ${name}
cluster: debian-cluster
profile: ${profile}
pki:
  dir: pki
  remote_dir: /srv/kubernetes
  key: rsa
  ca_bits: 4096
  bits: 2048
  ca_days: 3650
  days: 365
  renew_before_days: 30
apiserver:
  cn: kubernetes.default.svc
  dns: [kubernetes.default.svc, ${master.name}]
  ip: [10.24.0.1, ${master.address}]
  port: 6443
cluster_dns: 10.24.0.10
cluster_domain: kubic.local
ssh:
  user: root
  port: 22
  identity_file: id_ed25519
  known_hosts: known_hosts
  sudo: false
  config_file: ssh_config     # the lab's own, not the machine's ~/.ssh/config: the tests see the same hosts everywhere
master: { name: ${master.name}, address: ${master.address} }
minions:
${minions.map((m) => `  - { name: ${m.name}, address: ${m.address} }`).join('\n')}
${etcd}`;
}

export function knownHosts(hosts: { name: string; address: string; hostKeyPub: string }[]): string {
  return hosts.map((h) => {
    const [type, key] = h.hostKeyPub.trim().split(/\s+/);
    return `${h.name},${h.address} ${type} ${key}\n`;
  }).join('');
}

export function sshConfig(dir: string, hosts: AddrHost[]): string {
  return hosts.map((h) => `Host ${h.name} ${h.address}
  HostName ${h.address}
  Port 22
  User root
  IdentityFile ${join(dir, 'id_ed25519')}
  IdentitiesOnly yes
  UserKnownHostsFile ${join(dir, 'known_hosts')}
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
  LogLevel ERROR
`).join('\n');
}

/**
 * The checkout this code runs from, and where every host sees it: bound at CODE_MOUNT by host-init.sh, because the
 * checkout's own path may be hidden inside a host (a clone under /tmp, /root, /home, /srv or /var/lib). The wrappers
 * name tsx's loader and the stand-ins by that path (the checkout must be world-readable: services run as kube).
 */
export const CODE_DIR = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
export const CODE_MOUNT = '/run/kubetls-lab/code';
const inHost = (p: string) => (p.startsWith(`${CODE_DIR}/`) ? `${CODE_MOUNT}${p.slice(CODE_DIR.length)}` : p);
export const TSX_LOADER = inHost(fileURLToPath(import.meta.resolve('tsx')));
export const STANDINS_DIR = inHost(fileURLToPath(new URL('./standins/', import.meta.url)));
/** tsx caches compiled files under os.tmpdir(); hosts have a private /tmp, so share one cache folder. */
export const TSX_CACHE_DIR = '/var/tmp/kubetls-lab-tsx';

export function writeBinWrappers(bin: string): void {
  for (const name of ['systemctl', ...BINARIES]) {
    const file = join(bin, name);
    writeFileSync(file, `#!/bin/sh
# kubetls lab stand-in for ${name} (the real one does not run here): lib/lab/standins/${name}.ts
TMPDIR=${TSX_CACHE_DIR} exec /usr/bin/node --import=${TSX_LOADER} ${join(STANDINS_DIR, `${name}.ts`)} "$@"
`, { mode: 0o755 });
    chmodSync(file, 0o755);
  }
}
