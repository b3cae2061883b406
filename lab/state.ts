// What `lab up` records: DIR/state.json, and a machine-wide registry of the 127.N.0.0/24 blocks in use
// (/run/kubetls-lab/blocks/N, created with O_EXCL so two labs starting at once cannot take the same block).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Profile } from './versions.ts';

export interface HostState {
  name: string;
  /** etcd: an etcd member of its own (kubeetcd2..N, modern only); lb: the haproxy in front of an HA lab's masters */
  role: 'master' | 'minion' | 'etcd' | 'lb';
  address: string;
  /** host PID of the container's PID 1 (its systemd); 0 when the host is stopped */
  pid: number;
  /** host PID of the container's `systemd-nspawn` (started through `unshare --mount`) */
  unsharePid: number;
}

export interface LabState {
  name: string;
  dir: string;
  block: number;
  profile: Profile;
  version: string;
  kubeUid: number;
  jijisaUid: number;
  /** the etcd user inside the hosts (the machine's own when Debian's etcd-server is installed); absent in old labs */
  etcdUid?: number;
  etcdGid?: number;
  createdAt: string;
  /** the process that ran `up` (a test worker keeps its lab; the CLI exits at once) */
  ownerPid: number;
  hosts: HostState[];
}

export const REGISTRY = '/run/kubetls-lab/blocks';
export const STATE_FILE = 'state.json';
export const MARKER_FILE = '.kubetls-lab';

export function readState(dir: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

export function writeState(state: LabState): void {
  writeFileSync(join(state.dir, STATE_FILE), JSON.stringify(state, null, 2) + '\n');
}

/** A PID that exists and is not a zombie (an orphaned `unshare` waits for the machine's PID 1 to reap it). */
export function pidAlive(pid: number): boolean {
  if (!(pid > 0)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** N in 10..250 from the lab name (stable), probing upward past blocks in use. */
export function preferredBlock(name: string): number {
  const h = createHash('sha256').update(name).digest().readUInt32BE(0);
  return 10 + (h % 241);
}

interface RegistryEntry { name: string; dir: string; pids: number[] }

export function readRegistry(): Map<number, RegistryEntry> {
  const out = new Map<number, RegistryEntry>();
  let files: string[] = [];
  try {
    files = readdirSync(REGISTRY);
  } catch {
    return out;
  }
  for (const f of files) {
    try {
      out.set(Number(f), JSON.parse(readFileSync(join(REGISTRY, f), 'utf8')));
    } catch { /* half-written or foreign: ignore */ }
  }
  return out;
}

/** Blocks with a TCP listener anywhere in 127.N.0.0/24 (from /proc/net/tcp: we share the network namespace). */
export function blocksWithListeners(): Set<number> {
  const used = new Set<number>();
  try {
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] !== '0A') continue; // LISTEN
      const hex = f[1]!.split(':')[0]!; // little-endian u32
      const b = [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16));
      if (b[0] === 127 && b[2] === 0) used.add(b[1]!);
    }
  } catch { /* no procfs: rely on the registry */ }
  return used;
}

/** Take a block for this lab: the name's own block unless another live lab (or any listener) has it. */
export function claimBlock(name: string, dir: string): number {
  mkdirSync(REGISTRY, { recursive: true });
  const listening = blocksWithListeners();
  const first = preferredBlock(name);
  for (let k = 0; k < 241; k++) {
    const n = 10 + ((first - 10 + k) % 241);
    const file = join(REGISTRY, String(n));
    if (existsSync(file)) {
      let entry: RegistryEntry | undefined;
      try {
        entry = JSON.parse(readFileSync(file, 'utf8'));
      } catch { /* unreadable: treat as stale */ }
      const live = entry?.pids.some(pidAlive);
      if (live) continue;
      rmSync(file, { force: true }); // stale: its lab is gone
    }
    if (listening.has(n)) continue;
    try {
      writeFileSync(file, JSON.stringify({ name, dir, pids: [] }), { flag: 'wx' });
      return n;
    } catch {
      continue; // another lab took it a moment ago
    }
  }
  throw new Error('lab: no free 127.N.0.0/24 block (10..250) left');
}

export function updateRegistry(state: LabState): void {
  writeFileSync(join(REGISTRY, String(state.block)),
    JSON.stringify({ name: state.name, dir: state.dir, pids: state.hosts.flatMap((h) => [h.pid, h.unsharePid]).filter(Boolean) }));
}

export function releaseBlock(block: number, dir: string): void {
  const file = join(REGISTRY, String(block));
  try {
    const entry = JSON.parse(readFileSync(file, 'utf8')) as RegistryEntry;
    if (entry.dir !== dir) return;
  } catch { /* missing or broken */ }
  rmSync(file, { force: true });
}
