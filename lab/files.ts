// What `lab up` writes into DIR for the tool and for humans: cluster.yaml, known_hosts, ssh_config, bin wrappers.
import { buildSync } from 'esbuild';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { STANDIN_PROGRAMS } from './nspawn.ts';
import type { Profile } from './versions.ts';

export interface AddrHost { name: string; address: string; role: 'master' | 'minion' | 'etcd' | 'lb' }

/** The inventory, in the exact format lib/inventory.ts validates (paths relative to this file). */
export function clusterYaml(name: string, profile: Profile, hosts: AddrHost[]): string {
  const masters = hosts.filter((h) => h.role === 'master');
  const master = masters[0]!;
  const lb = hosts.find((h) => h.role === 'lb');
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
${lb ? `  endpoint: { name: ${lb.name}, address: ${lb.address}, drain_seconds: 8 }   # the lab's haproxy (lab/haproxy.ts): down after 6 s
` : ''}cluster_dns: 10.24.0.10
cluster_domain: kubic.local
ssh:
  user: root
  port: 22
  identity_file: id_ed25519
  known_hosts: known_hosts
  sudo: false
  config_file: ssh_config     # the lab's own, not the machine's ~/.ssh/config: the tests see the same hosts everywhere
${masters.length === 1 ? `master: { name: ${master.name}, address: ${master.address} }` : `masters:
${masters.map((m) => `  - { name: ${m.name}, address: ${m.address} }`).join('\n')}`}
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

/** The stand-ins' sources (each runs as its own program inside a host). */
export const STANDINS_SRC = fileURLToPath(new URL('./standins/', import.meta.url));
/** Where the bundles land, in DIR/bin (a legacy host sees DIR/bin as /usr/local/sbin, services run as kube: 0755/0644). */
const JS_DIR = '.js';

/**
 * Every stand-in bundled into one plain JavaScript file (esbuild, the bundler tsx itself runs on), so that starting one
 * costs a bare `node` start (tens of milliseconds of CPU), as a real service manager's restart costs an exec, instead
 * of loading tsx and compiling TypeScript on every start (≈ 0.3 s of CPU per restart, which dominated every lab
 * rollout and hid kubetls's own cost in the benchmarks). The code that runs is the same source: only how it is
 * loaded changes, so the stand-ins fail exactly as they did. Built once per `lab up`, in about 0.2 s.
 */
export function writeBinWrappers(bin: string): void {
  const names = STANDIN_PROGRAMS;
  buildSync({
    entryPoints: names.map((n) => ({ in: join(STANDINS_SRC, `${n}.ts`), out: n })),
    outdir: join(bin, JS_DIR), outExtension: { '.js': '.mjs' },
    bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'error', legalComments: 'none',
    // a CommonJS dependency bundled into an ES module still calls require() for node's own modules
    banner: { js: "import { createRequire as __kubetlsRequire } from 'node:module'; const require = __kubetlsRequire(import.meta.url);" },
  });
  chmodSync(join(bin, JS_DIR), 0o755);
  for (const name of names) {
    chmodSync(join(bin, JS_DIR, `${name}.mjs`), 0o644);
    const file = join(bin, name);
    writeFileSync(file, `#!/bin/sh
# kubetls lab stand-in for ${name} (the real one does not run here): lab/standins/${name}.ts, bundled at lab up
exec /usr/bin/node /usr/local/sbin/${JS_DIR}/${name}.mjs "$@"
`, { mode: 0o755 });
    chmodSync(file, 0o755);
  }
}
