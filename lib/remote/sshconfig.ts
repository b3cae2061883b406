/**
 * The operator's OpenSSH client configuration (`~/.ssh/config`, or `ssh.config_file` in cluster.yaml), read with the
 * `ssh-config` package (it implements OpenSSH's first-match-wins `Host`/`Match` evaluation, wildcards and negation,
 * which a hand-written parser would get subtly wrong). Precedence, as docs/ssh.md says: a value written in cluster.yaml
 * wins, then ssh_config, then kubetls's default (user root, port 22, ~/.ssh/id_ed25519, ~/.ssh/known_hosts).
 * Understood: HostName, User, Port, IdentityFile (several), UserKnownHostsFile, GlobalKnownHostsFile, BindAddress,
 * ProxyJump (a chain, `none`). Not followed: Include (said once), ProxyCommand (refused: kubetls runs no local shell).
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import SSHConfig from 'ssh-config';
import type { Host, Inventory } from '../inventory.ts';
import { log } from '../log.ts';

/** Where and how to reach one SSH endpoint, and through which jump hosts. */
export interface SshTarget {
  name: string; // the name looked up (inventory name, or the jump's name)
  address: string;
  port: number;
  user: string;
  identityFiles: string[];
  knownHosts: string[]; // checked in order; the first is where --accept-new-host-keys adds
  bindAddress?: string;
  jumps: SshTarget[]; // outermost first
}

const cache = new Map<string, SSHConfig | undefined>();
function load(file: string | undefined): SSHConfig | undefined {
  if (!file) return undefined;
  if (!cache.has(file)) {
    let cfg: SSHConfig | undefined;
    if (existsSync(file)) {
      const text = readFileSync(file, 'utf8');
      if (/^\s*include\s/im.test(text)) log.warn(`${file}: Include is not followed by kubetls; put what it needs in this file or in cluster.yaml`);
      cfg = SSHConfig.parse(text);
    }
    cache.set(file, cfg);
  }
  return cache.get(file);
}

const tilde = (p: string) => (p === '~' ? homedir() : p.startsWith('~/') ? path.join(homedir(), p.slice(2)) : p);
const list = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : String(v).split(/\s+/)).filter(Boolean);

/** What ssh_config says for `name` (keys lower-cased). */
function lookup(inv: Inventory, name: string): Record<string, unknown> {
  return (load(inv.ssh.configFile)?.compute(name, { ignoreCase: true, matchExec: false }) ?? {}) as Record<string, unknown>;
}

/** A jump `[user@]host[:port]` resolved like a host of its own (its HostName, Port, User, keys from ssh_config). */
function jumpTarget(inv: Inventory, spec: string, depth: number): SshTarget {
  const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(spec.trim());
  if (!m) throw new Error(`ProxyJump ${spec}: expected [user@]host[:port]`);
  const name = m[2].replace(/^\[|\]$/g, '');
  return resolve(inv, name, { user: m[1], port: m[3] ? Number(m[3]) : undefined }, depth + 1);
}

function resolve(inv: Inventory, name: string, given: { address?: string; port?: number; user?: string }, depth: number): SshTarget {
  if (depth > 8) throw new Error(`ProxyJump: more than 8 jumps to reach ${name} (a loop in ssh_config?)`);
  const c = lookup(inv, name);
  if (c.proxycommand && String(c.proxycommand) !== 'none') throw new Error(`ssh_config gives ${name} a ProxyCommand: kubetls runs no local shell command; use ProxyJump`);
  const jumpSpec = String(c.proxyjump ?? 'none');
  const jumps = jumpSpec === 'none' ? [] : jumpSpec.split(',').map((s) => jumpTarget(inv, s, depth));
  return {
    name,
    address: given.address ?? (c.hostname ? String(c.hostname).replace(/%h/g, name) : name),
    port: given.port ?? (c.port ? Number(c.port) : 22),
    user: given.user ?? (c.user ? String(c.user) : inv.ssh.user),
    identityFiles: inv.ssh.explicit.identityFile ? [inv.ssh.identityFile] : [...list(c.identityfile).map(tilde), inv.ssh.identityFile],
    knownHosts: [...(inv.ssh.explicit.knownHosts ? [inv.ssh.knownHosts] : [...list(c.userknownhostsfile).map(tilde), inv.ssh.knownHosts]),
      ...(list(c.globalknownhostsfile).length ? list(c.globalknownhostsfile).map(tilde) : ['/etc/ssh/ssh_known_hosts'])]
      .filter((f, i, all) => f !== '/dev/null' && all.indexOf(f) === i),
    bindAddress: c.bindaddress ? String(c.bindaddress) : undefined,
    jumps: jumps.flatMap((j) => [...j.jumps, { ...j, jumps: [] }]),
  };
}

/** How to reach an inventory host: its own explicit values first, then ssh_config, then the defaults. */
export function sshTarget(inv: Inventory, host: Host): SshTarget {
  return resolve(inv, host.name, {
    address: host.explicit.address ? host.address : undefined,
    port: host.explicit.port ? host.port : undefined,
    user: host.explicit.user ? host.user : undefined,
  }, 0);
}
