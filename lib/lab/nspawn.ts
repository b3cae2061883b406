// Lab hosts that boot a real systemd (Debian 12's) with `systemd-nspawn -b`, for the modern profile with `systemd: true`.
//
// Each host is the cached Debian tree (rootfs.sh) under an overlay of its own:
//   lowerdir = DIR/base/layer (the lab's shared files: users, sudoers, /etc/kubernetes/*, the kube-* unit files)
//            : ROOTFS (read-only, shared by every host of every lab)
//   upperdir = DIR/hosts/H/upper (the host's own: hostname, host key, sshd_config, /var/lib, /var/log/journal, …)
// mounted inside a private mount namespace (`unshare --mount`), so nothing is mounted on the real machine, then booted:
//   systemd-nspawn -b --register=no --keep-unit -D DIR/hosts/H/root -M H --bind-ro=KUBE/kube-apiserver:/usr/bin/… 
// No --private-network: the hosts share the machine's network namespace and every service binds the host's own
// 127.N.0.i address (sshd's ListenAddress, etcd's URLs, the apiserver's --bind-address, the kubelet's --address).
// The container has no CAP_NET_ADMIN there (nspawn drops it without a private network), so nothing in a host can
// change the machine's routes or netfilter rules: kube-proxy's rule sync fails, which lib/lab/README.md quotes.
// The lab folder is not inside the host's root: a host cannot read the client key or the local PKI.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmdirSync, writeFileSync, chmodSync, chownSync, existsSync } from 'node:fs';
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
  if (!existsSync(join(dir, '.complete'))) return { why: `lab: the Kubernetes binaries are not built (run: bash lib/lab/kube/build.sh, ~15 min once per machine; .ci/run does it)` };
  return { dir };
}

/** The cached Debian tree, or a one-line reason why there is none. */
export function rootfsDir(): { dir?: string; why?: string } {
  const dir = execFileSync('bash', [join(HERE, 'rootfs.sh'), '--print'], { encoding: 'utf8' }).trim();
  if (!existsSync(join(dir, '.kubetls-rootfs'))) return { why: `lab: no Debian tree for the systemd hosts (run: bash lib/lab/rootfs.sh, ~1 min once per machine; .ci/run does it)` };
  return { dir };
}

/** One line saying why systemd hosts cannot run here, or undefined. */
export function systemdUnavailable(): string | undefined {
  if (!existsSync('/usr/bin/systemd-nspawn')) return 'lab: systemd hosts need systemd-nspawn: apt-get install -y systemd-container';
  return rootfsDir().why ?? kubeBinDir().why;
}

/**
 * The cgroup a host's nspawn runs in (the name=systemd hierarchy of cgroup v1, or the unified one): one per host, so
 * two containers never share the cgroup nspawn manages with --keep-unit, and `down` finds every process by it.
 */
export function cgroupOf(lab: string, host: string): string {
  const v1 = '/sys/fs/cgroup/systemd';
  const root = existsSync(join(v1, 'cgroup.procs')) ? v1 : '/sys/fs/cgroup';
  return join(root, 'kubetls-lab', `${lab}-${host}`);
}

/** Every PID in a host's cgroup (and its children), or [] when it has none. */
export function cgroupPids(cg: string): number[] {
  let out: number[] = [];
  try {
    out = readFileSync(join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    for (const sub of execFileSync('find', [cg, '-mindepth', '1', '-maxdepth', '1', '-type', 'd'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
      out.push(...cgroupPids(sub));
    }
  } catch { /* gone */ }
  return out;
}

/** Remove a host's cgroup folders (deepest first); they must be empty. */
export function removeCgroup(cg: string): void {
  try {
    const dirs = execFileSync('find', [cg, '-depth', '-type', 'd'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const d of dirs) {
      try { rmdirSync(d); } catch { /* busy or gone */ }
    }
  } catch { /* gone */ }
}

export interface NspawnHost { lab: string; dir: string; name: string; rootfs: string; kubeDir: string }

/**
 * Boot one host; resolves with the PIDs: `unsharePid` the systemd-nspawn process, `pid` the container's PID 1 (real
 * systemd) as seen from here — what `nsenter -t` and /proc/PID/root use, and what SIGKILL ends the host with.
 */
export async function launchNspawn(h: NspawnHost): Promise<{ unsharePid: number; pid: number }> {
  const hd = join(h.dir, 'hosts', h.name);
  const root = join(hd, 'root');
  for (const d of ['upper', 'work', 'root']) mkdirSync(join(hd, d), { recursive: true, mode: 0o755 });
  const cg = cgroupOf(h.lab, h.name);
  mkdirSync(cg, { recursive: true });
  const binds = KUBE_PROGRAMS.flatMap((p) => ['--bind-ro', `${join(h.kubeDir, p)}:/usr/bin/${p}`]);
  const lower = `${join(h.dir, 'base', 'layer')}:${h.rootfs}`;
  // `$1` … are argv, never spliced into the script: the folders come from the lab's options.
  const script = 'echo $$ > "$1/cgroup.procs" && mount -t overlay kubetls-lab -o "lowerdir=$2,upperdir=$3/upper,workdir=$3/work" "$4" && shift 4 && exec systemd-nspawn "$@"';
  const console = openSync(join(hd, 'console.log'), 'a');
  const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', cg, lower, hd, root,
    '--boot', '--register=no', '--keep-unit', '--console=passive', '--directory', root, '--machine', h.name, '--hostname', h.name,
    ...binds], { detached: true, stdio: ['ignore', console, console], cwd: '/' });
  closeSync(console);
  child.unref();
  const nspawnPid = child.pid!;
  const deadline = Date.now() + 15000;
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
 * The apiserver is Type=notify (kube-apiserver tells systemd when it serves), as in those packages.
 */
export function kubeUnitFiles(): Record<string, string> {
  const unit = (desc: string, after: string, user: string, env: string, exec: string, notify = false) => `[Unit]
Description=${desc}
After=${after}

[Service]
EnvironmentFile=-/etc/kubernetes/config
EnvironmentFile=-/etc/kubernetes/${env}
${user === 'root' ? '' : `User=${user}\n`}ExecStart=/usr/bin/${exec}
${notify ? 'Type=notify\n' : ''}Restart=on-failure
RestartSec=5
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`;
  return {
    'kube-apiserver.service': unit('Kubernetes API Server', 'network.target etcd.service', 'kube', 'apiserver',
      'kube-apiserver $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBE_ETCD_SERVERS $KUBE_API_ADDRESS $KUBE_API_PORT $KUBELET_PORT $KUBE_ALLOW_PRIV $KUBE_SERVICE_ADDRESSES $KUBE_ADMISSION_CONTROL $KUBE_API_ARGS', true),
    'kube-controller-manager.service': unit('Kubernetes Controller Manager', 'kube-apiserver.service', 'kube', 'controller-manager',
      'kube-controller-manager $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBE_MASTER $KUBE_CONTROLLER_MANAGER_ARGS'),
    'kube-scheduler.service': unit('Kubernetes Scheduler Plugin', 'kube-apiserver.service', 'kube', 'scheduler',
      'kube-scheduler $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBE_MASTER $KUBE_SCHEDULER_ARGS'),
    'kubelet.service': unit('Kubernetes Kubelet Server', 'containerd.service', 'root', 'kubelet',
      'kubelet $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBELET_API_SERVER $KUBELET_ADDRESS $KUBELET_PORT $KUBELET_HOSTNAME $KUBE_ALLOW_PRIV $KUBELET_ARGS'),
    'kube-proxy.service': unit('Kubernetes Kube-Proxy Server', 'network.target', 'root', 'proxy',
      'kube-proxy $KUBE_LOGTOSTDERR $KUBE_LOG_LEVEL $KUBE_MASTER $KUBE_PROXY_ARGS'),
  };
}

export const writeMode = (file: string, text: string, mode: number, uid = 0, gid = 0) => {
  writeFileSync(file, text, { mode });
  chmodSync(file, mode);
  chownSync(file, uid, gid);
};
