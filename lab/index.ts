// kubetls lab: a master and K minions, each a container booting Debian 12's real systemd (systemd-nspawn) on a
// loopback address with a real sshd, for end-to-end tests and the demo. `scripts/lab.ts` is the CLI; this is the API.
//
//   const lab = await labUp({ name: 'e2e', minions: 2, profile: 'modern' });
//   await lab.exec('kubemaster', ['ls', '/srv/kubernetes']);   // inside the host, no SSH
//   lab.inventoryPath                                           // DIR/cluster.yaml for the tool
//   await lab.down();
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { pickUids, prepareHostDirs, writeBaseEtc } from './base.ts';
import { clusterYaml, knownHosts, sshConfig, writeBinWrappers } from './files.ts';
import { haproxyConfig } from './haproxy.ts';
import { killHost, nsExec, waitSshd, type ExecOptions, type ExecResult } from './host.ts';
import { downWindows, parseSystemdJournal, restartStops, type JournalLine } from './journal.ts';
import {
  FAIL_NEXT_START, FAIL_NEXT_START_SCRIPT, WAIT_READY, WAIT_READY_SCRIPT, cgroupsOf, cgroupPids, kubeBinDir, kubeUnitFiles, launchNspawn, netCgroupOf, programsFor, removeCgroup,
  rootfsDir, startBridge, systemdUnavailable, waitBooted,
} from './nspawn.ts';
import { ed25519KeyPair } from './sshkey.ts';
import {
  MARKER_FILE, claimBlock, pidAlive, readRegistry, readState, releaseBlock, updateRegistry, writeState,
  type HostState, type LabState,
} from './state.ts';
import { ALL_UNIT_NAMES } from './units.ts';
import { VERSION_OF, type Profile } from './versions.ts';

export type { ExecOptions, ExecResult, HostState, JournalLine, LabState, Profile };
export { pidAlive } from './state.ts';

export interface LabOptions {
  name?: string;
  minions?: number;
  /** state folder; default `.lab/NAME` relative to the current directory */
  out?: string;
  profile?: Profile;
  /** modern: how many etcd members (default 1, the master); members 2..N are hosts kubeetcd2..kubeetcdN of their own */
  etcdMembers?: number;
  /**
   * modern: how many masters (1, or an odd 3..9). More than one: kubemaster, kubemaster2..N, each running stacked etcd,
   * behind a real haproxy on a host of its own (kubelb, lab/haproxy.ts), the inventory's apiserver.endpoint.
   */
  masters?: number;
}

export class LabError extends Error {}

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,40}$/;
export const defaultDir = (name: string) => resolve('.lab', name);

/** One line saying why the lab cannot run here, or undefined when it can (root + mount/UTS/PID namespaces). */
export function labUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'lab: needs Linux namespaces (this is ' + process.platform + ')';
  if (process.getuid?.() !== 0) return 'lab: needs root (unshare --mount --uts --pid, overlay mounts)';
  try {
    execFileSync('unshare', ['--mount', '--uts', '--pid', '--fork', '--mount-proc', 'true'], { stdio: 'pipe', timeout: 5000 });
  } catch (e) {
    const why = String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim().split('\n')[0];
    return `lab: needs Linux namespaces, unshare failed: ${why}`;
  }
  return undefined;
}

export class Lab {
  constructor(public state: LabState) {}

  get name() { return this.state.name; }
  get dir() { return this.state.dir; }
  get block() { return this.state.block; }
  get profile() { return this.state.profile; }
  get version() { return this.state.version; }
  get inventoryPath() { return join(this.dir, 'cluster.yaml'); }
  get sshConfigPath() { return join(this.dir, 'ssh_config'); }
  get knownHostsPath() { return join(this.dir, 'known_hosts'); }
  get identityFile() { return join(this.dir, 'id_ed25519'); }
  get pkiDir() { return join(this.dir, 'pki'); }
  get hosts(): HostState[] { return this.state.hosts; }
  get master(): HostState { return this.state.hosts.find((h) => h.role === 'master')!; }
  /** Every master in inventory order (kubemaster, then kubemaster2..N in an HA lab). */
  get masters(): HostState[] { return this.state.hosts.filter((h) => h.role === 'master'); }
  /** The HA lab's haproxy host (undefined with one master). */
  get lb(): HostState | undefined { return this.state.hosts.find((h) => h.role === 'lb'); }
  get minions(): HostState[] { return this.state.hosts.filter((h) => h.role === 'minion'); }
  /** The etcd members in cluster order: the masters (stacked), then kubeetcd2..N (modern; the legacy lab has none). */
  get etcdMembers(): HostState[] {
    return this.profile === 'modern' ? [...this.masters, ...this.state.hosts.filter((h) => h.role === 'etcd')] : [];
  }
  /** UIDs inside the hosts (the real machine has no such users). */
  get uids() {
    return { kube: this.state.kubeUid, jijisa: this.state.jijisaUid, nogroup: 65534, etcd: this.state.etcdUid ?? 0, etcdGid: this.state.etcdGid ?? 0 };
  }

  host(name: string): HostState {
    const h = this.state.hosts.find((x) => x.name === name || x.address === name);
    if (!h) throw new LabError(`lab ${this.name}: no host ${name} (hosts: ${this.hosts.map((x) => x.name).join(', ')})`);
    return h;
  }

  /** Run argv inside the host's namespaces (nsenter, as root unless opts.user). Never throws on a non-zero exit. */
  async exec(host: string, argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    const h = this.host(host);
    if (!h.pid || !pidAlive(h.pid)) throw new LabError(`lab ${this.name}: ${h.name} is not running`);
    return nsExec(h.pid, argv, opts);
  }

  /** The argv to reach a host over real SSH with the lab's config: ['ssh', '-F', …, host, …command]. */
  sshArgv(host: string, command: string[] = [], user?: string): string[] {
    return ['ssh', '-F', this.sshConfigPath, ...(user ? ['-l', user] : []), this.host(host).name, ...command];
  }

  /** Path on the real machine of a file as a running host sees it (through /proc/PID/root: its mounts). */
  hostPath(host: string, path: string): string {
    const h = this.host(host);
    if (!h.pid || !pidAlive(h.pid)) throw new LabError(`lab ${this.name}: ${h.name} is not running`);
    return join(`/proc/${h.pid}/root`, path);
  }

  /**
   * Write a file inside a host with an owner and mode (numeric ids: see `uids`), creating parent folders. Done by a
   * process INSIDE the host (nsenter), never through /proc/PID/root: there, an absolute symlink planted in the host
   * (the attacker tests plant `-> /etc/shadow`) would resolve against the real machine's root and overwrite its files.
   */
  writeFile(host: string, path: string, data: string | Buffer, opts: { mode?: number; uid?: number; gid?: number } = {}): void {
    const h = this.host(host);
    if (!h.pid || !pidAlive(h.pid)) throw new LabError(`lab ${this.name}: ${h.name} is not running`);
    const mode = (opts.mode ?? 0o644).toString(8);
    execFileSync('nsenter', ['-t', String(h.pid), '-m', '-u', '-p', '--', 'sh', '-c',
      // parents as `mkdir -p` makes them (0755: a service user must traverse /srv/kubernetes); the file itself 077
      'mkdir -p -- "$(dirname -- "$1")" && umask 077 && rm -f -- "$1" && cat > "$1" && chown "$2" "$1" && chmod "$3" "$1"',
      'sh', path, `${opts.uid ?? 0}:${opts.gid ?? 0}`, mode], { input: data, stdio: ['pipe', 'ignore', 'pipe'] });
  }

  /** A file as the host sees it, read by a process inside the host (see writeFile: never through /proc/PID/root). */
  readFile(host: string, path: string): string {
    const h = this.host(host);
    if (!h.pid || !pidAlive(h.pid)) throw new LabError(`lab ${this.name}: ${h.name} is not running`);
    return execFileSync('nsenter', ['-t', String(h.pid), '-m', '-u', '-p', '--', 'cat', '--', path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  }

  /** A command inside a running host, synchronously (for the journal readers below); '' when the host is down. */
  private execSync(host: string, argv: string[]): string {
    const h = this.host(host);
    if (!h.pid || !pidAlive(h.pid)) return '';
    try {
      return execFileSync('nsenter', ['-t', String(h.pid), '-m', '-u', '-n', '-p', '--', ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20, timeout: 30000 });
    } catch (e) {
      return String((e as { stdout?: string }).stdout ?? '');
    }
  }

  /**
   * Every start/restart/stop/failed of a unit on a host, read from its real journal (systemd's own job messages,
   * journalctl -o json).
   */
  journal(host: string): JournalLine[] {
    return parseSystemdJournal(this.execSync(host, ['journalctl', '--no-pager', '-o', 'json', '_PID=1']));
  }

  /** When `unit` was down on a host (each stop or restart, from its real journal: "Stopping" to "Started"). */
  downWindows(host: string, unit: string): { from: string; to: string }[] {
    return downWindows(this.execSync(host, ['journalctl', '--no-pager', '-o', 'json', '_PID=1']), unit);
  }

  /** When a restart stopped a unit on a host (its real journal's "Stopped UNIT." of each restart job). */
  restartStops(host: string, unit: string): string[] {
    return restartStops(this.execSync(host, ['journalctl', '--no-pager', '-o', 'json', '_PID=1']), unit);
  }

  /** A unit's log: its journal (`journalctl -u UNIT -o cat`). */
  unitLog(host: string, unit: string): string {
    return this.execSync(host, ['journalctl', '--no-pager', '-o', 'cat', '-u', unit]);
  }

  /** The kube units and etcd running on a host: unit → MainPID inside the host (systemd's answer). */
  services(host: string): Record<string, number> {
    const h = this.host(host);
    const out: Record<string, number> = {};
    if (!h.pid || !pidAlive(h.pid)) return out;
    const text = this.execSync(h.name, ['systemctl', 'show', '--property=Id,MainPID,ActiveState', ...ALL_UNIT_NAMES.map((u) => `${u}.service`)]);
    for (const block of text.split('\n\n')) {
      const kv = Object.fromEntries(block.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      if (kv.ActiveState === 'active' && Number(kv.MainPID) > 0) out[String(kv.Id).replace(/\.service$/, '')] = Number(kv.MainPID);
    }
    return out;
  }

  /** Simulate a down host: the whole host (all its processes die, like a power cut), or only its sshd. */
  async stopHost(name: string, opts: { sshdOnly?: boolean } = {}): Promise<void> {
    const h = this.host(name);
    if (opts.sshdOnly) {
      // the host's systemd stops it: a stop is no failure, so Restart=on-failure leaves it stopped
      await this.exec(h.name, ['systemctl', 'stop', 'ssh.service']);
      await waitSshd([h.address], false, 5000);
      return;
    }
    await killHost([h.pid], [h.unsharePid]);
    // what the host's cgroups still hold: the bridge of a minion (lab/nspawn.ts startBridge)
    for (const cg of [...cgroupsOf(this.name, h.name), netCgroupOf(this.name, h.name)]) await killHost(cgroupPids(cg));
    h.pid = 0;
    h.unsharePid = 0;
    this.save();
  }

  /** Bring a host back with the same host key, address and files (/run starts empty, as after a reboot). */
  async startHost(name: string): Promise<void> {
    const h = this.host(name);
    if (h.pid && pidAlive(h.pid)) {
      const r = await this.exec(h.name, ['systemctl', 'start', 'ssh.service']);
      if (r.exitCode !== 0) throw new LabError(`lab ${this.name}: ${h.name}: sshd did not start: ${r.stderr.trim()}`);
    } else {
      Object.assign(h, await this.launch(h.name));
      this.save();
      await waitBooted(h.pid, h.name);
    }
    await waitSshd([h.address], true, 10000, () => (pidAlive(h.pid) ? undefined : `lab: ${h.name} died: ${this.consoleTail(h.name)}`));
  }

  /** Boot one host's systemd container. */
  async launch(name: string): Promise<{ unsharePid: number; pid: number }> {
    const why = systemdUnavailable(this.profile);
    if (why) throw new LabError(why);
    const rootfs = rootfsDir().dir!;
    const binds = programsFor(this.profile, { kubeDir: kubeBinDir().dir, binDir: join(this.dir, 'bin') });
    // a modern minion has a network namespace of its own (the real kube-proxy's rules stay in it), bridged to loopback:
    // sshd and the kubelet's API in, the apiserver out (lab/nspawn.ts startBridge). The legacy stand-ins change no
    // rules: their minions share the machine's network like the master.
    const h = this.host(name);
    const bridged = h.role === 'minion' && this.profile === 'modern';
    const ids = await launchNspawn({ lab: this.name, dir: this.dir, name, rootfs, binds, privateNetwork: bridged });
    if (bridged) {
      await startBridge({ lab: this.name, dir: this.dir, name, pid: ids.pid, address: h.address,
        // out: the apiserver the minion's clients name, the balancer in an HA lab
        bridge: { inbound: [22, 10250], outbound: [{ address: (this.lb ?? this.master).address, port: 6443 }] } });
    }
    return ids;
  }

  consoleTail(host: string): string {
    try {
      return readFileSync(join(this.dir, 'hosts', host, 'console.log'), 'utf8').trim().split('\n').slice(-3).join(' | ');
    } catch {
      return '(no console.log)';
    }
  }

  save(): void {
    writeState(this.state);
    updateRegistry(this.state);
  }

  async down(): Promise<void> {
    await labDown(this.dir);
  }
}

/** Bring a lab up. Throws LabError with the reason (no root, block exhausted, host did not start …). */
export async function labUp(opts: LabOptions = {}): Promise<Lab> {
  const name = opts.name ?? 'lab';
  const minions = opts.minions ?? 3;
  const profile = opts.profile ?? 'legacy';
  const etcdMembers = opts.etcdMembers ?? 1;
  const masters = opts.masters ?? 1;
  if (!NAME_RE.test(name)) throw new LabError(`lab: bad name ${JSON.stringify(name)} (lowercase letters, digits, -)`);
  if (!Number.isInteger(minions) || minions < 0 || minions > 250) throw new LabError(`lab: --minions must be 0..250, got ${minions}`);
  if (profile !== 'legacy' && profile !== 'modern') throw new LabError(`lab: --profile must be legacy or modern, got ${profile}`);
  if (!Number.isInteger(etcdMembers) || etcdMembers < 1 || minions + etcdMembers > 254) {
    throw new LabError(`lab: --etcd-members must be 1..${254 - Math.min(minions, 250)} (with ${minions} minions), got ${etcdMembers}`);
  }
  if (etcdMembers > 1 && profile !== 'modern') throw new LabError('lab: --etcd-members needs --profile modern (the legacy lab has no etcd)');
  if (etcdMembers % 2 === 0) throw new LabError(`lab: --etcd-members must be odd (kubetls refuses an even etcd cluster), got ${etcdMembers}`);
  if (!Number.isInteger(masters) || masters < 1 || masters > 9 || (masters > 1 && masters % 2 === 0)) throw new LabError(`lab: --masters must be 1, 3, 5, 7 or 9 (an odd number: etcd is stacked on them), got ${masters}`);
  if (masters > 1 && profile !== 'modern') throw new LabError('lab: --masters needs --profile modern (the recipe\'s 1.4 cluster has one master)');
  if (masters > 1 && etcdMembers > 1) throw new LabError('lab: --masters and --etcd-members cannot be used together (with more than one master, etcd is stacked on the masters)');
  if (minions + etcdMembers + masters + (masters > 1 ? 1 : 0) > 255) throw new LabError(`lab: too many hosts for one 127.N.0.0/24 block`);
  // every host boots the real systemd (lab/nspawn.ts); the modern profile runs the real binaries, the legacy
  // profile's 1.4 programs cannot be built here: they are stand-ins (lab/README.md)
  const why = labUnavailable() ?? systemdUnavailable(profile);
  if (why) throw new LabError(why);
  const rootfs = rootfsDir().dir!;
  const dir = resolve(opts.out ?? defaultDir(name));
  if (/[:,\s]/.test(dir)) throw new LabError(`lab: the lab folder must not contain ':', ',' or spaces: ${dir}`);
  const old = readState(dir);
  if (old && old.hosts.some((h) => pidAlive(h.pid))) {
    throw new LabError(`lab ${old.name} is already up in ${dir} (run \`lab.ts down --out ${dir}\` first)`);
  }
  if (old) await labDown(dir); // leftovers of a lab that died
  if (existsSync(dir) && readdirSync(dir).length > 0 && !existsSync(join(dir, MARKER_FILE))) {
    throw new LabError(`lab: ${dir} exists and is not a lab folder; refusing to use it`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  writeFileSync(join(dir, MARKER_FILE), `kubetls lab ${name}\n`);
  const block = claimBlock(name, dir);
  // ids free on the machine AND in the Debian tree (one kernel: a uid inside is the same uid outside)
  const { kubeUid, jijisaUid, etcdUid, etcdGid } = pickUids(['/', rootfs]);
  const hosts: HostState[] = [
    { name: 'kubemaster', role: 'master' as const, address: `127.${block}.0.1`, pid: 0, unsharePid: 0 },
    ...Array.from({ length: minions }, (_, i) => ({
      name: `kubeminion${i + 1}`, role: 'minion' as const, address: `127.${block}.0.${i + 2}`, pid: 0, unsharePid: 0,
    })),
    // etcd members of their own come after the minions: kubeetcd2 is member 2 (the master is member 1)
    ...Array.from({ length: etcdMembers - 1 }, (_, i) => ({
      name: `kubeetcd${i + 2}`, role: 'etcd' as const, address: `127.${block}.0.${minions + 2 + i}`, pid: 0, unsharePid: 0,
    })),
    // HA: masters 2..N after the minions (kubemaster keeps .1), then the balancer
    ...Array.from({ length: masters - 1 }, (_, i) => ({
      name: `kubemaster${i + 2}`, role: 'master' as const, address: `127.${block}.0.${minions + 1 + i + 1}`, pid: 0, unsharePid: 0,
    })),
    ...(masters > 1 ? [{ name: 'kubelb', role: 'lb' as const, address: `127.${block}.0.${minions + masters + 1}`, pid: 0, unsharePid: 0 }] : []),
  ];
  const state: LabState = {
    name, dir, block, profile, version: VERSION_OF[profile], kubeUid, jijisaUid, etcdUid, etcdGid, createdAt: new Date().toISOString(),
    ownerPid: process.pid, hosts,
  };
  const lab = new Lab(state);
  try {
    const client = ed25519KeyPair(`kubetls-lab-${name}`);
    writeFileSync(join(dir, 'id_ed25519'), client.privateKey, { mode: 0o600 });
    writeFileSync(join(dir, 'id_ed25519.pub'), client.publicKey, { mode: 0o644 });
    // one shared layer under every host's root: users, sudoers, /etc/kubernetes/*, the kube-* units
    const layer = join(dir, 'base', 'layer');
    const etc = join(layer, 'etc');
    writeBaseEtc(etc, { name, profile, hosts, kubeUid, jijisaUid, etcdUid, etcdGid, from: rootfs, version: state.version });
    mkdirSync(join(etc, 'systemd', 'system'), { recursive: true, mode: 0o755 });
    for (const [file, text] of Object.entries(kubeUnitFiles(profile))) {
      mkdirSync(dirname(join(etc, 'systemd', 'system', file)), { recursive: true, mode: 0o755 });
      writeFileSync(join(etc, 'systemd', 'system', file), text, { mode: 0o644 });
    }
    if (profile === 'legacy') {
      // the 1.4 stand-ins, bundled (DIR/bin is bound into each host), and their units' ready wait
      mkdirSync(join(dir, 'bin'), { recursive: true, mode: 0o755 });
      writeBinWrappers(join(dir, 'bin'));
      mkdirSync(dirname(join(layer, WAIT_READY)), { recursive: true, mode: 0o755 });
      writeFileSync(join(layer, WAIT_READY), WAIT_READY_SCRIPT, { mode: 0o755 });
      writeFileSync(join(layer, FAIL_NEXT_START), FAIL_NEXT_START_SCRIPT, { mode: 0o755 });
      // the recipe's 1.4 master ran no etcd kubetls manages: the tree's etcd unit is masked on the legacy hosts
      symlinkSync('/dev/null', join(etc, 'systemd', 'system', 'etcd.service'));
    }
    const hostKeys = new Map<string, string>();
    for (const h of hosts) {
      const key = ed25519KeyPair(`root@${h.name}`);
      hostKeys.set(h.name, key.publicKey);
      prepareHostDirs(join(dir, 'hosts', h.name), {
        name: h.name, address: h.address, hostKey: key.privateKey, hostKeyPub: key.publicKey, clientPub: client.publicKey, jijisaUid,
        // etcd's data folder (/var/lib/etcd, 0700 etcd:etcd as the package makes it) on the hosts that may run it
        etcd: profile === 'modern' && (h.role === 'master' || h.role === 'etcd') ? { uid: etcdUid, gid: etcdGid } : undefined,
      });
    }
    const lb = hosts.find((h) => h.role === 'lb');
    if (lb) {
      // the balancer host: haproxy's configuration, and its unit enabled there only (the tree has it disabled)
      const upper = join(dir, 'hosts', lb.name, 'upper', 'etc');
      mkdirSync(join(upper, 'haproxy'), { recursive: true, mode: 0o755 });
      writeFileSync(join(upper, 'haproxy', 'haproxy.cfg'), haproxyConfig({ address: lb.address, port: 6443 }, hosts.filter((h) => h.role === 'master'), 6443), { mode: 0o644 });
      mkdirSync(join(upper, 'systemd', 'system', 'multi-user.target.wants'), { recursive: true, mode: 0o755 });
      symlinkSync('/lib/systemd/system/haproxy.service', join(upper, 'systemd', 'system', 'multi-user.target.wants', 'haproxy.service'));
    }
    writeFileSync(join(dir, 'known_hosts'), knownHosts(hosts.map((h) => ({ ...h, hostKeyPub: hostKeys.get(h.name)! }))), { mode: 0o644 });
    writeFileSync(join(dir, 'ssh_config'), sshConfig(dir, hosts), { mode: 0o644 });
    writeFileSync(join(dir, 'cluster.yaml'), clusterYaml(name, profile, hosts), { mode: 0o644 });
    // recorded before anything starts, so that a failure below finds every host's cgroups (systemd: the containers and
    // a minion's bridge); and every launch is let finish before the first failure is thrown: a launch still in flight
    // when the cleanup ran would have left its host running with its folder gone
    lab.save();
    const launched = await Promise.allSettled(hosts.map(async (h) => Object.assign(h, await lab.launch(h.name))));
    lab.save();
    const failed = launched.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed) throw failed.reason;
    await Promise.all(hosts.map((h) => waitBooted(h.pid, h.name)));
    await waitSshd(hosts.map((h) => h.address), true, 15000, () => {
      const dead = hosts.find((h) => !pidAlive(h.pid));
      return dead ? `lab: ${dead.name} died while starting: ${lab.consoleTail(dead.name)}` : undefined;
    });
  } catch (e) {
    await labDown(dir).catch(() => {});
    throw e instanceof LabError ? e : new LabError((e as Error).message);
  }
  return lab;
}

/** The lab recorded in a folder, or undefined. */
export function openLab(dirOrName: string): Lab | undefined {
  const state = readState(resolveLabDir(dirOrName));
  return state ? new Lab(state) : undefined;
}

/** A name (no '/') means the running lab registered under that name, else `.lab/NAME`; anything else is a folder. */
export function resolveLabDir(dirOrName: string): string {
  if (dirOrName.includes('/') || dirOrName.startsWith('.')) return resolve(dirOrName);
  for (const entry of readRegistry().values()) if (entry.name === dirOrName && existsSync(entry.dir)) return entry.dir;
  return defaultDir(dirOrName);
}

/** Kill every process of the lab (by PID), check nothing stays mounted, remove its folder. Safe to run twice. */
export async function labDown(dirOrName: string): Promise<boolean> {
  const dir = resolveLabDir(dirOrName);
  const state = readState(dir);
  const registered = [...readRegistry().entries()].filter(([, e]) => e.dir === dir);
  const inits = new Set<number>();
  const unshares = new Set<number>();
  for (const h of state?.hosts ?? []) {
    if (h.pid) inits.add(h.pid);
    if (h.unsharePid) unshares.add(h.unsharePid);
  }
  for (const [, e] of registered) for (const p of e.pids) if (!unshares.has(p)) inits.add(p);
  await killHost([...inits], [...unshares]);
  // anything left in a host's cgroups (nothing should be: SIGKILL of PID 1 ends its PID namespace; a minion's bridge)
  if (state) {
    for (const h of state.hosts) {
      for (const cg of [...cgroupsOf(state.name, h.name), netCgroupOf(state.name, h.name)]) {
        await killHost(cgroupPids(cg));
        removeCgroup(cg);
      }
    }
  }
  // Nothing is mounted outside the namespaces; anything under DIR found here is a bug: detach it before removing.
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4]).filter((m): m is string => !!m && (m === dir || m.startsWith(dir + '/')));
  for (const m of mounts.reverse()) {
    try { execFileSync('umount', ['-l', m], { stdio: 'pipe' }); } catch { /* already gone */ }
  }
  if (state) releaseBlock(state.block, dir);
  for (const [n] of registered) releaseBlock(n, dir);
  if (!existsSync(dir)) return !!state;
  const cwd = process.cwd();
  if (!existsSync(join(dir, MARKER_FILE))) {
    if (state) throw new LabError(`lab: ${dir} has no ${MARKER_FILE}; not removing it`);
    return false;
  }
  if (dir === '/' || cwd === dir || !relative(dir, cwd).startsWith('..')) {
    throw new LabError(`lab: refusing to remove ${dir}: it holds the current directory`);
  }
  rmSync(dir, { recursive: true, force: true });
  return true;
}

export interface HostStatus { name: string; address: string; pid: number; up: boolean; services: Record<string, number> }

export function labStatus(dirOrName: string): { lab: Lab; hosts: HostStatus[] } | undefined {
  const lab = openLab(dirOrName);
  if (!lab) return undefined;
  return {
    lab,
    hosts: lab.hosts.map((h) => ({ name: h.name, address: h.address, pid: h.pid, up: pidAlive(h.pid), services: lab.services(h.name) })),
  };
}
