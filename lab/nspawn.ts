// Lab hosts boot a real systemd (Debian 12's) with `systemd-nspawn -b`, for both profiles.
//
// Each host is the cached Debian tree (rootfs.sh) under an overlay of its own:
//   lowerdir = DIR/base/layer (the lab's shared files: users, sudoers, /etc/kubernetes/*, the kube-* unit files)
//            : ROOTFS (read-only, shared by every host of every lab)
//   upperdir = DIR/hosts/H/upper (the host's own: hostname, host key, sshd_config, /var/lib, /var/log/journal, …)
// mounted inside a private mount namespace (`unshare --mount`), so nothing is mounted on the real machine, then booted:
//   systemd-nspawn -b --register=no --keep-unit -D DIR/hosts/H/root -M H --bind-ro=…
// What is bound read-only onto /usr/bin: the modern profile, the six real programs lab/kube/build.sh built; the
// legacy profile, the 1.4 stand-ins (lab/standins, bundled into DIR/bin at lab up: DIR/bin is bound as
// /usr/local/sbin, each wrapper as /usr/bin/NAME) and this machine's node, which runs them.
// The master and etcd hosts share the machine's network namespace and every service binds the host's own 127.N.0.i
// address (sshd's ListenAddress, etcd's URLs, the apiserver's --bind-address). nspawn drops CAP_NET_ADMIN there, so
// nothing in such a host can change the machine's routes or netfilter rules. A modern minion has a network namespace
// of its own, bridged to loopback (startBridge below): the real kube-proxy needs CAP_NET_ADMIN over its own rules.
// The lab folder is not inside the host's root: a process in a host does not see the client key or the local PKI. The
// hosts are test fixtures, not a sandbox: root in one keeps CAP_SYS_ADMIN without a user namespace (lab/README.md).
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, realpathSync, rmdirSync, writeFileSync, chmodSync, chownSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { pidAlive } from './state.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HERE = fileURLToPath(new URL('.', import.meta.url));

/** The six programs built by kube/build.sh, bound read-only into /usr/bin of every systemd host. */
export const KUBE_PROGRAMS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'kubelet', 'kubeadm'];

/** The folder of the built Kubernetes binaries, or a one-line reason why there is none (build.sh not run yet). */
export function kubeBinDir(): { dir?: string; why?: string } {
  const dir = execFileSync('bash', [join(HERE, 'kube', 'build.sh'), '--print'], { encoding: 'utf8' }).trim();
  if (!existsSync(join(dir, '.complete'))) return { why: `lab: the Kubernetes binaries are not built (run: npx zx scripts/lab.ts prepare --profile modern, ~10-15 min once per machine; npm test runs it)` };
  return { dir };
}

/** The cached Debian tree, or a one-line reason why there is none. */
export function rootfsDir(): { dir?: string; why?: string } {
  const dir = execFileSync('bash', [join(HERE, 'rootfs.sh'), '--print'], { encoding: 'utf8' }).trim();
  if (!existsSync(join(dir, '.kubetls-rootfs'))) return { why: `lab: no Debian tree for the systemd hosts (run: npx zx scripts/lab.ts prepare, ~1 min once per machine; npm test and npm run demo run it)` };
  return { dir };
}

/**
 * The machine-wide inotify limits systemd hosts need (per user: every host's systemd, journald, the real kubelet and
 * cAdvisor are root's). Debian's default of 128 instances ran out with two labs side by side: a container's systemd
 * then exits at boot with `Failed to create control group inotify object: Too many open files`. kind documents the
 * same fix. labUp does not change the machine's settings itself: it says what to run (lab/prepare.ts, which
 * `npm test` and `npm run demo` run first, raises both).
 */
export const INOTIFY_NEEDED = { max_user_instances: 8192, max_user_watches: 524288 };
export function inotifyTooLow(read = (k: string) => readFileSync(`/proc/sys/fs/inotify/${k}`, 'utf8')): string | undefined {
  for (const [k, want] of Object.entries(INOTIFY_NEEDED)) {
    let have = Infinity;
    try { have = Number(read(k).trim()); } catch { /* no such limit here */ }
    if (have < want) return `lab: fs.inotify.${k} is ${have}, systemd hosts need ${want} (each host's systemd and kubelet take inotify instances): run sysctl -w fs.inotify.${k}=${want} first`;
  }
  return undefined;
}

/** One line saying why the hosts cannot boot here, or undefined (the modern profile also needs the built binaries). */
export function systemdUnavailable(profile: 'legacy' | 'modern' = 'modern'): string | undefined {
  if (!existsSync('/usr/bin/systemd-nspawn')) return 'lab: the hosts need systemd-nspawn: apt-get install -y systemd-container';
  return rootfsDir().why ?? (profile === 'modern' ? kubeBinDir().why : undefined) ?? inotifyTooLow();
}

/**
 * The cgroups a host's nspawn runs in, one per hierarchy systemd uses here: the name=systemd hierarchy of cgroup v1
 * and the unified (cgroup2) one of a hybrid machine, or the unified one alone. One per host in EACH of them: nspawn
 * puts its container under its own cgroup of the unified hierarchy, so a host that joined only the v1 one had all its
 * processes in /payload, shared by every container of every lab (the containers' systemd then failed to kill their
 * units' cgroups: `Failed to kill control group /system.slice/kube-proxy.service, ignoring: Input/output error`).
 * `down` finds every process by them. The first is the name=systemd one (the bench reads it).
 */
export function cgroupsOf(lab: string, host: string): string[] {
  const v1 = '/sys/fs/cgroup/systemd';
  const hybrid = '/sys/fs/cgroup/unified';
  const roots = existsSync(join(v1, 'cgroup.procs'))
    ? [v1, ...(existsSync(join(hybrid, 'cgroup.procs')) ? [hybrid] : [])]
    : ['/sys/fs/cgroup'];
  return roots.map((r) => join(r, 'kubetls-lab', `${lab}-${host}`));
}
export const cgroupOf = (lab: string, host: string): string => cgroupsOf(lab, host)[0]!;

/** Every PID in a host's cgroup (and its children), or [] when it has none. */
export function cgroupPids(cg: string): number[] {
  let out: number[] = [];
  try {
    out = readFileSync(join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    for (const sub of execFileSync('find', [cg, '-mindepth', '1', '-maxdepth', '1', '-type', 'd'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n').filter(Boolean)) {
      out.push(...cgroupPids(sub));
    }
  } catch { /* gone */ }
  return out;
}

/**
 * Remove a host's cgroup folders (deepest first); they must be empty. A folder whose last process is still exiting is
 * busy for a moment: each is retried (bounded: 50 × 20 ms) before it is left, and `down`'s test checks none is left.
 */
export function removeCgroup(cg: string): void {
  let dirs: string[] = [];
  try {
    dirs = execFileSync('find', [cg, '-depth', '-type', 'd'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n').filter(Boolean);
  } catch { /* gone */ }
  for (const d of dirs) {
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(d);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EBUSY') break;
        execFileSync('sleep', ['0.02']);
      }
    }
  }
}

export interface NspawnHost {
  lab: string; dir: string; name: string; rootfs: string;
  /** what is bound read-only into the host: [source on the machine, path inside] (programsFor) */
  binds: [string, string][];
  /** a network namespace of its own (minions: the real kube-proxy needs CAP_NET_ADMIN, which nspawn keeps only there) */
  privateNetwork?: boolean;
}

/**
 * Boot one host; resolves with the PIDs: `unsharePid` the systemd-nspawn process, `pid` the container's PID 1 (real
 * systemd) as seen from here — what `nsenter -t` and /proc/PID/root use, and what SIGKILL ends the host with.
 */
export async function launchNspawn(h: NspawnHost): Promise<{ unsharePid: number; pid: number }> {
  const hd = join(h.dir, 'hosts', h.name);
  const root = join(hd, 'root');
  for (const d of ['upper', 'work', 'root']) mkdirSync(join(hd, d), { recursive: true, mode: 0o755 });
  const cgs = cgroupsOf(h.lab, h.name);
  for (const cg of cgs) mkdirSync(cg, { recursive: true });
  const binds = h.binds.flatMap(([from, to]) => ['--bind-ro', `${from}:${to}`]);
  const lower = `${join(h.dir, 'base', 'layer')}:${h.rootfs}`;
  // `$1` … are argv, never spliced into the script: the folders come from the lab's options.
  // $1 is the host's cgroups, ':'-separated (a lab or host name has no ':'): the shell joins each before nspawn starts
  const script = 'for c in $(echo "$1" | tr : " "); do echo $$ > "$c/cgroup.procs" || exit 1; done && mount -t overlay kubetls-lab -o "lowerdir=$2,upperdir=$3/upper,workdir=$3/work" "$4" && shift 4 && exec systemd-nspawn "$@"';
  const console = openSync(join(hd, 'console.log'), 'a');
  const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', cgs.join(':'), lower, hd, root,
    '--boot', '--register=no', '--keep-unit', '--console=passive', '--directory', root, '--machine', h.name, '--hostname', h.name,
    ...(h.privateNetwork ? ['--private-network'] : []), ...binds], { detached: true, stdio: ['ignore', console, console], cwd: '/' });
  closeSync(console);
  child.unref();
  const nspawnPid = child.pid!;
  // generous: 51 hosts booting at once on 2 busy cores take their time to fork the container
  const deadline = Date.now() + 60000;
  for (;;) {
    let kids = '';
    try {
      kids = readFileSync(`/proc/${nspawnPid}/task/${nspawnPid}/children`, 'utf8').trim();
    } catch { /* not yet, or gone */ }
    for (const k of kids.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        const status = readFileSync(`/proc/${k}/status`, 'utf8');
        // the container's PID 1: PID 1 in its own PID namespace
        if (/^NSpid:\s+\d+\s+1$/m.test(status)) return { unsharePid: nspawnPid, pid: k };
      } catch { /* gone */ }
    }
    if (!pidAlive(nspawnPid) || Date.now() > deadline) {
      throw new Error(`lab: ${h.name}: systemd-nspawn did not start a container (see ${join(hd, 'console.log')})`);
    }
    await sleep(20);
  }
}

/**
 * The programs a host runs, as read-only binds: the modern profile's six real binaries; the legacy profile's stand-ins
 * (DIR/bin as /usr/local/sbin, each wrapper as /usr/bin/NAME, where the units' ExecStart= looks) and node to run them.
 */
export function programsFor(profile: 'legacy' | 'modern', o: { kubeDir?: string; binDir?: string }): [string, string][] {
  // the machine's kubectl, a real client for a test run on a host (as an operator has it on a node), when there is one
  const kubectl: [string, string][] = existsSync('/usr/bin/kubectl') ? [[realpathSync('/usr/bin/kubectl'), '/usr/bin/kubectl']] : [];
  if (profile === 'modern') return [...KUBE_PROGRAMS.map((p): [string, string] => [join(o.kubeDir!, p), `/usr/bin/${p}`]), ...kubectl];
  return [
    ...kubectl,
    [o.binDir!, '/usr/local/sbin'],
    ...STANDIN_PROGRAMS.map((p): [string, string] => [join(o.binDir!, p), `/usr/bin/${p}`]),
    [realpathSync(process.execPath), '/usr/bin/node'],
  ];
}

/** The legacy profile's five 1.4 programs (lab/standins), as units and as /usr/bin names. */
export const STANDIN_PROGRAMS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy'];

/** Wait (bounded) until the host's systemd reached its default target (running or degraded) and sshd is active. */
export async function waitBooted(pid: number, name: string, timeoutMs = 60000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      last = execFileSync('nsenter', ['-t', String(pid), '-m', '-u', '-p', '--', 'systemctl', 'is-system-running'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 }).trim();
    } catch (e) {
      last = String((e as { stdout?: string }).stdout ?? '').trim() || 'not answering';
    }
    if (last === 'running' || last === 'degraded') return;
    if (!pidAlive(pid)) throw new Error(`lab: ${name}: its systemd died while booting`);
    if (Date.now() > deadline) throw new Error(`lab: ${name}: systemd is '${last}' after ${timeoutMs} ms`);
    await sleep(200);
  }
}

// ---- the shared layer and each host's own files -------------------------------------------------------------------

/**
 * The kube-* units as the distro packages ship them (Fedora's kubernetes and Debian's contrib packages): every option
 * comes from /etc/kubernetes/config and /etc/kubernetes/<name> through EnvironmentFile=-, which is what kubetls edits.
 * Modern: the apiserver is Type=notify (kube-apiserver tells systemd when it serves), as in those packages; the kubelet
 * wants containerd and the sandbox drop-ins (sandboxUnitFiles).
 * Legacy: the same units run the 1.4 stand-ins, which cannot send sd_notify (node has no unix datagram socket, and a
 * `systemd-notify` child races systemd's lookup of its sender). So each is Type=simple with an ExecStartPost= that
 * waits (≤ 90 s) for the stand-in's ready file in its RuntimeDirectory=, or fails when the program exited first: a
 * `systemctl restart` waits for it and fails as it would for a Type=notify service that died before READY=1.
 * And StartLimitIntervalSec=0: a stand-in restarts in ~0.1 s and the tests restart it back to back (a fault test's
 * run, its rollback, the next run), where systemd's default limit (5 starts in 10 s, measured here: `Job for
 * kube-scheduler.service failed because start of the service was attempted too often.`) refused a rollback's restart.
 */
export function kubeUnitFiles(profile: 'legacy' | 'modern' = 'modern'): Record<string, string> {
  const legacy = profile === 'legacy';
  const unit = (name: string, desc: string, after: string, user: string, env: string, exec: string, notify = false) => `[Unit]
Description=${desc}
After=${after}
${legacy ? 'StartLimitIntervalSec=0\n' : ''}
[Service]
EnvironmentFile=-/etc/kubernetes/config
EnvironmentFile=-/etc/kubernetes/${env}
${user === 'root' ? '' : `User=${user}\n`}ExecStart=/usr/bin/${exec}
${legacy ? `RuntimeDirectory=kubetls-lab-${name}\nExecStartPre=+${FAIL_NEXT_START} ${name}\nExecStartPost=${WAIT_READY} ${name}\n` : notify ? 'Type=notify\n' : ''}Restart=on-failure
RestartSec=5
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`;
  const sandbox = legacy ? '' : ' $KUBELET_SANDBOX_ARGS';
  const units: Record<string, string> = {
    'kube-apiserver.service': unit('kube-apiserver', 'Kubernetes API Server', 'network.target etcd.service', 'kube', 'apiserver',
      'kube-apiserver $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBE_ETCD_SERVERS $KUBE_API_ADDRESS $KUBE_API_PORT $KUBELET_PORT $KUBE_ALLOW_PRIV $KUBE_SERVICE_ADDRESSES $KUBE_ADMISSION_CONTROL $KUBE_API_ARGS', true),
    'kube-controller-manager.service': unit('kube-controller-manager', 'Kubernetes Controller Manager', 'kube-apiserver.service', 'kube', 'controller-manager',
      'kube-controller-manager $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBE_MASTER $KUBE_CONTROLLER_MANAGER_ARGS'),
    'kube-scheduler.service': unit('kube-scheduler', 'Kubernetes Scheduler Plugin', 'kube-apiserver.service', 'kube', 'scheduler',
      'kube-scheduler $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBE_MASTER $KUBE_SCHEDULER_ARGS'),
    'kubelet.service': unit('kubelet', 'Kubernetes Kubelet Server', legacy ? 'docker.service' : 'containerd.service', 'root', 'kubelet',
      `kubelet $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBELET_API_SERVER $KUBELET_ADDRESS $KUBELET_PORT $KUBELET_HOSTNAME $KUBE_ALLOW_PRIV $KUBELET_ARGS${sandbox}`),
    'kube-proxy.service': unit('kube-proxy', 'Kubernetes Kube-Proxy Server', 'network.target', 'root', 'proxy',
      `kube-proxy $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBE_MASTER $KUBE_PROXY_ARGS${legacy ? '' : ' $KUBE_PROXY_SANDBOX_ARGS'}`),
  };
  if (legacy) return units;
  // the kubelet needs its container runtime (containerd, from the Debian tree): Wants=, as a distro unit has it
  units['kubelet.service'] = units['kubelet.service']!.replace('After=containerd.service', 'After=containerd.service\nWants=containerd.service');
  return { ...units, ...sandboxUnitFiles() };
}

/** Where the legacy units' ExecStartPost= script lives inside a host (written into the lab's shared layer). */
export const WAIT_READY = '/usr/local/lib/kubetls-lab/wait-ready';
/** The legacy units' ExecStartPre= (as root, `+`): fault injection for the tests, which no real unit has. */
export const FAIL_NEXT_START = '/usr/local/lib/kubetls-lab/fail-next-start';
/**
 * fail-next-start UNIT: after `touch /etc/kubetls-lab/fail-next-start/UNIT` inside a legacy host, the next start of
 * UNIT fails once, as a service that cannot come up does (the tests prove renew.ts and master.ts roll a host back).
 */
export const FAIL_NEXT_START_SCRIPT = `#!/bin/sh
# kubetls lab: fault injection of a legacy stand-in's unit (lab/nspawn.ts kubeUnitFiles)
f="/etc/kubetls-lab/fail-next-start/$1"
[ -e "$f" ] || exit 0
rm -f "$f"
echo "lab: start failure injected by $f"
exit 1
`;
/**
 * wait-ready UNIT: until the stand-in wrote $RUNTIME_DIRECTORY/ready (lab/standins/common.ts, once it serves),
 * exit 0; when the unit has no main process any more, exit 1 (the start fails). Bounded twice: systemd's default
 * TimeoutStartSec (90 s, what a Type=notify service gets) ends it, and the script gives up after 3600 polls anyway.
 * A stand-in takes ~0.1 s to start on an idle machine, longer while the full suite boots real clusters beside it (an
 * earlier 10 s bound is the suspected, not measured, cause of one failed restart there).
 */
export const WAIT_READY_SCRIPT = `#!/bin/sh
# kubetls lab: the ready wait of a legacy stand-in's unit (lab/nspawn.ts kubeUnitFiles)
i=0
while [ ! -e "$RUNTIME_DIRECTORY/ready" ]; do
  pid=$(systemctl show --property=MainPID --value "$1.service")
  [ "$pid" != 0 ] && [ -n "$pid" ] || exit 1
  i=$((i + 1))
  [ "$i" -le 3600 ] || exit 1
  sleep 0.025
done
`;

export const writeMode = (file: string, text: string, mode: number, uid = 0, gid = 0) => {
  writeFileSync(file, text, { mode });
  chmodSync(file, mode);
  chownSync(file, uid, gid);
};

// ---- minions: a network namespace of their own, bridged to loopback ---------------------------------------------------

/** A second cgroup per host for the bridge's socat processes (machine side), so `down` and `stopHost` find them. */
export const netCgroupOf = (lab: string, host: string) => `${cgroupOf(lab, host)}-net`;

/**
 * A minion's address as its Node reports it (InternalIP). The kubelet picks a non-loopback address on the interface of
 * the default route; inside the minion's own network namespace that is a veth pair whose both ends stay inside it,
 * addressed from TEST-NET-2 (RFC 5737): nothing is ever sent there, nothing leaves the namespace through it.
 */
export const nodeIpOf = (address: string) => `198.51.100.${address.split('.')[3]}`;

export interface Bridge {
  /** ports of the host's own address reachable from the machine (sshd, the kubelet's API) */
  inbound: number[];
  /** address:port pairs on the machine the host reaches (the apiserver) */
  outbound: { address: string; port: number }[];
}

/**
 * Connect a host that has a network namespace of its own (nspawn --private-network) with the machine's loopback, TCP
 * over unix sockets in DIR/hosts/H/net (0700, root's): for an inbound port, a listener on ADDRESS:PORT on the machine
 * and, inside the host's namespace, a connector to ADDRESS:PORT; outbound the other way round. Every socat runs on the
 * machine side (the inner ones entered into the host's network namespace only, `nsenter --net`), in the host's
 * `-net` cgroup. Then the node address: a veth pair inside the namespace with the default route on it.
 */
export async function startBridge(o: { lab: string; dir: string; name: string; pid: number; address: string; bridge: Bridge }): Promise<void> {
  const sock = join(o.dir, 'hosts', o.name, 'net');
  mkdirSync(sock, { recursive: true, mode: 0o700 });
  chmodSync(sock, 0o700);
  const cg = netCgroupOf(o.lab, o.name);
  mkdirSync(cg, { recursive: true });
  const inNs = ['nsenter', `--net=/proc/${o.pid}/ns/net`, '--'];
  const netns = (argv: string[]) => execFileSync(inNs[0]!, [...inNs.slice(1), ...argv], { stdio: 'pipe', timeout: 10000 });
  netns(['ip', 'link', 'set', 'lo', 'up']);
  netns(['ip', 'link', 'add', 'kubetls0', 'type', 'veth', 'peer', 'name', 'kubetls1']);
  netns(['ip', 'addr', 'add', `${nodeIpOf(o.address)}/24`, 'dev', 'kubetls0']);
  netns(['ip', 'link', 'set', 'kubetls0', 'up']);
  netns(['ip', 'link', 'set', 'kubetls1', 'up']);
  netns(['ip', 'route', 'add', 'default', 'dev', 'kubetls0']);
  const run = (argv: string[]) => {
    // `$1` is the cgroup, the rest is argv: nothing is spliced into the script
    const child = spawn('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', 'sh', cg, ...argv],
      { detached: true, stdio: 'ignore', cwd: '/' });
    child.unref();
  };
  const wantSockets: string[] = [];
  for (const port of o.bridge.inbound) {
    const s = join(sock, `in-${port}.sock`);
    run([...inNs, 'socat', `UNIX-LISTEN:${s},fork,unlink-early,mode=600`, `TCP:${o.address}:${port}`]);
    run(['socat', `TCP-LISTEN:${port},bind=${o.address},reuseaddr,fork`, `UNIX-CONNECT:${s}`]);
    wantSockets.push(s);
  }
  for (const { address, port } of o.bridge.outbound) {
    const s = join(sock, `out-${address}-${port}.sock`);
    run(['socat', `UNIX-LISTEN:${s},fork,unlink-early,mode=600`, `TCP:${address}:${port}`]);
    run([...inNs, 'socat', `TCP-LISTEN:${port},bind=${address},reuseaddr,fork`, `UNIX-CONNECT:${s}`]);
    wantSockets.push(s);
  }
  const deadline = Date.now() + 10000;
  while (!wantSockets.every((s) => existsSync(s))) {
    if (Date.now() > deadline) throw new Error(`lab: ${o.name}: the loopback bridge did not start (socat: apt-get install -y socat)`);
    await sleep(20);
  }
}

/**
 * What the lab adds around the real kubelet and kube-proxy because a container cannot do what they do on a machine of
 * their own (each refusal is the binary's own, quoted in lab/README.md). kubetls writes none of this: these are
 * the lab's drop-ins, the way an operator adds a drop-in for a host's peculiarities, and `$KUBELET_ARGS` /
 * `$KUBE_PROXY_ARGS` (kubetls's) stay as they are.
 *  - kubelet: cgroup v1 on this machine (`--fail-cgroupv1=false`; 1.37 refuses v1 by default), no QoS or node
 *    allocatable cgroups of its own, swap allowed;
 *  - kubetls-lab-sandbox.service (before the kubelet): /dev/kmsg as kind makes it (a link to /dev/console: the kubelet
 *    opens it for its OOM watcher), and the three sysctls the kubelet insists on setting (vm.overcommit_memory=1,
 *    kernel.panic=10, kernel.panic_on_oops=1) shown with those values through files bound over them, inside this
 *    container's mount namespace only: /proc/sys is read-only here, and the machine's kernel settings are not the
 *    lab's to change;
 *  - kube-proxy: leave the machine-wide conntrack sysctls alone (0 = as they are).
 */
export function sandboxUnitFiles(): Record<string, string> {
  const sysctls = [['vm/overcommit_memory', '1'], ['kernel/panic', '10'], ['kernel/panic_on_oops', '1']];
  const script = [
    '[ -e /dev/kmsg ] || ln -s /dev/console /dev/kmsg',
    'mkdir -p /run/kubetls-lab/sysctl',
    ...sysctls.map(([k, v]) => {
      const f = `/run/kubetls-lab/sysctl/${k!.replace('/', '.')}`;
      return `echo ${v} > ${f} && { grep -q " /proc/sys/${k} " /proc/self/mountinfo || mount --bind ${f} /proc/sys/${k}; }`;
    }),
  ].join('; ');
  return {
    'kubetls-lab-sandbox.service': `[Unit]
Description=kubetls lab: what the kubelet needs from a machine of its own (see lab/nspawn.ts)
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c '${script}'
`,
    'kubelet.service.d/10-lab-sandbox.conf': `# kubetls lab: a kubelet inside a container (lab/nspawn.ts sandboxUnitFiles)
[Unit]
Requires=kubetls-lab-sandbox.service
After=kubetls-lab-sandbox.service

[Service]
Environment="KUBELET_SANDBOX_ARGS=--fail-cgroupv1=false --cgroups-per-qos=false --enforce-node-allocatable= --fail-swap-on=false"
`,
    'kube-proxy.service.d/10-lab-sandbox.conf': `# kubetls lab: kube-proxy inside a container (lab/nspawn.ts sandboxUnitFiles)
[Service]
Environment="KUBE_PROXY_SANDBOX_ARGS=--conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0"
`,
  };
}
