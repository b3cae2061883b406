// What the lab needs on this machine, made ready once and cached: `npm run demo` and `npm test` run it first
// (`npx zx scripts/lab.ts prepare`), so that the README's two commands work on a fresh Debian machine.
//
//   1. root and Linux (the hosts are containers on loopback addresses)
//   2. the system packages the lab and the tests use (apt-get install, only what is missing)
//   3. systemd-nspawn, after that install
//   4. the inotify limits systemd hosts need (sysctl -w, only when lower)
//   5. the Debian 12 tree every host boots (rootfs.sh: debootstrap, about a minute, once per machine)
//   6. with `kube`: the real Kubernetes v1.37.2 binaries (kube/build.sh: about 10 to 15 minutes on 2 cores, once)
//
// Each step looks first and does nothing when its part is ready: a second run costs about a second. A step that cannot
// be done here throws PrepareError, whose message is one line saying why (the caller exits 2); the long steps print
// their progress (the step's own lines, and the time spent every 15 s) so that a person can follow them.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { INOTIFY_NEEDED, inotifyTooLow } from './nspawn.ts';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const run = promisify(execFile);

/**
 * The Debian packages the lab and the tests use: openssl (the PKI), openssh-server/-client (the hosts' sshd, ssh,
 * ssh-keyscan), sudo (the recipe's sudo flow), curl (the recipe's checks), util-linux (unshare, nsenter), bsdutils
 * (script(1): a terminal for the NO_COLOR test), procps, etcd-server/etcd-client (the modern lab's etcd, etcdctl), strace
 * (counts the programs the remote scripts run), prometheus (promtool) and prometheus-node-exporter (the real consumers of
 * status.ts --prometheus), systemd-container (systemd-nspawn) and debootstrap (every host boots the real systemd), socat
 * (the loopback bridge of a modern minion's own network namespace).
 */
export const PACKAGES = ['openssl', 'openssh-server', 'openssh-client', 'sudo', 'curl', 'util-linux', 'bsdutils', 'procps', 'etcd-server', 'etcd-client',
  'prometheus', 'prometheus-node-exporter', 'strace', 'systemd-container', 'debootstrap', 'socat'];

export class PrepareError extends Error {}

export interface PrepareOptions {
  /** also the Kubernetes build (the modern profile, and the tests) */
  kube?: boolean;
  /** where progress lines go (default: stderr) */
  say?: (line: string) => void;
}

/** Make every part ready; returns what was done (empty when everything was already there). */
export async function prepareLab(o: PrepareOptions = {}): Promise<string[]> {
  const say = o.say ?? ((l: string) => process.stderr.write(`${l}\n`));
  const done: string[] = [];
  if (process.platform !== 'linux') throw new PrepareError(`the lab needs Linux (its hosts are systemd-nspawn containers); this is ${process.platform}`);
  if (process.getuid?.() !== 0) throw new PrepareError('the lab needs root (its hosts are systemd-nspawn containers on loopback addresses, with overlay mounts): run it as root');
  const missing = await missingPackages();
  if (missing.length) {
    await installPackages(missing, say);
    done.push(`installed ${missing.join(' ')}`);
  }
  if (!await onPath('systemd-nspawn')) throw new PrepareError('no systemd-nspawn after installing systemd-container: the lab\'s hosts cannot boot here');
  const low = inotifyTooLow();
  if (low) {
    for (const [k, v] of Object.entries(INOTIFY_NEEDED)) {
      const file = `/proc/sys/fs/inotify/${k}`;
      if (Number(readFileSync(file, 'utf8').trim()) >= v) continue;
      say(`$ sysctl -w fs.inotify.${k}=${v}   # systemd hosts and the real kubelet take many inotify instances`);
      try { writeFileSync(file, `${v}\n`); } catch (e) { throw new PrepareError(`sysctl -w fs.inotify.${k}=${v} failed (${(e as NodeJS.ErrnoException).code}): ${low}`); }
    }
    done.push('raised the inotify limits');
  }
  if (!existsSync(join(await printed('rootfs.sh'), '.kubetls-rootfs'))) {
    await long('the Debian 12 tree the lab\'s hosts boot (debootstrap, about a minute, once per machine)', 'bash', [join(HERE, 'rootfs.sh')], say);
    done.push('made the Debian tree');
  }
  if (o.kube) {
    if (!await onPath('go')) throw new PrepareError('no Go toolchain (go, Go 1.26) to build the Kubernetes binaries: install it, or put /usr/local/go/bin on PATH');
    if (!existsSync(join(await printed(join('kube', 'build.sh')), '.complete'))) {
      await long('the real Kubernetes v1.37.2 binaries from the Go module proxy (about 10 to 15 minutes on 2 cores, once per machine)',
        'bash', [join(HERE, 'kube', 'build.sh')], say);
      done.push('built the Kubernetes binaries');
    }
  }
  return done;
}

/** The packages of PACKAGES that dpkg does not have installed (all of them when there is no dpkg: not Debian). */
async function missingPackages(): Promise<string[]> {
  if (!await onPath('dpkg-query')) throw new PrepareError('the lab needs a Debian or Ubuntu machine (apt and dpkg): no dpkg-query here');
  const r = await run('dpkg-query', ['-W', '-f=${Package} ${Status}\\n', ...PACKAGES]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  const ok = new Set(r.stdout.split('\n').filter((l) => l.endsWith(' ok installed')).map((l) => l.split(' ')[0]));
  return PACKAGES.filter((p) => !ok.has(p));
}

async function installPackages(pkgs: string[], say: (l: string) => void): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!await onPath('apt-get')) throw new PrepareError(`the lab needs ${pkgs.join(' ')}, and there is no apt-get here to install them`);
  try {
    await long('the package lists', 'apt-get', ['update', '-q'], say, env);
  } catch (e) {
    throw new PrepareError(`no network to the package mirror: apt-get update failed (${(e as Error).message}); the lab needs ${pkgs.join(' ')}`);
  }
  try {
    await long(`${pkgs.length} Debian package(s) the lab and the tests use`, 'apt-get', ['install', '-y', '-q', ...pkgs], say, env);
  } catch (e) {
    throw new PrepareError(`apt-get install ${pkgs.join(' ')} failed: ${(e as Error).message}`);
  }
}

/** The folder a cache script (rootfs.sh, kube/build.sh) makes its part in, built or not. */
async function printed(script: string): Promise<string> {
  return (await run('bash', [join(HERE, script), '--print'], { env: withGo() })).stdout.trim();
}

async function onPath(program: string): Promise<boolean> {
  return (process.env.PATH ?? '').split(delimiter).concat('/usr/local/go/bin', '/usr/sbin', '/sbin').some((d) => existsSync(join(d, program)));
}

/** The Go toolchain's usual place (/usr/local/go/bin) on PATH, for kube/build.sh. */
function withGo(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, PATH: [env.PATH ?? '/usr/bin:/bin', '/usr/local/go/bin'].join(delimiter) };
}

/**
 * A long step, shown as it goes: `== preparing <what>`, the step's own lines as they come (its routine ones, apt's
 * downloads and go's, only counted), a line with the time spent after 15 s without one, and `done in N s`. Fails with
 * the step's last lines.
 */
function long(what: string, cmd: string, args: string[], say: (l: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  say(`== preparing ${what}`);
  say(`$ ${[cmd, ...args].join(' ')}`);
  const t0 = Date.now();
  const secs = () => Math.round((Date.now() - t0) / 1000);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: withGo(env), stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    let quiet = Date.now();
    let busy = 0; // lines of routine progress not shown one by one (apt's Get:/Unpacking, go's module downloads)
    const line = (l: string) => {
      if (!l.trim()) return;
      tail.push(l);
      if (tail.length > 5) tail.shift();
      if (/^(go: downloading|Get:|Hit:|Ign:|Reading|Building|Selecting|Preparing|Unpacking|Processing|Fetched|W: |debconf: )/.test(l)) { busy++; return; }
      quiet = Date.now();
      say(`  ${l.length > 150 ? `${l.slice(0, 147)}...` : l}`);
    };
    for (const s of [child.stdout, child.stderr]) {
      let buf = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => { buf += d; const ls = buf.split('\n'); buf = ls.pop() ?? ''; ls.forEach(line); });
    }
    const ticker = setInterval(() => {
      if (Date.now() - quiet < 15_000) return;
      say(`  … ${secs()} s${busy ? ` (${busy} lines of progress)` : ''}`);
      quiet = Date.now();
    }, 1000);
    child.on('error', (e) => { clearInterval(ticker); reject(e); });
    child.on('close', (code) => {
      clearInterval(ticker);
      if (code === 0) { say(`  done in ${secs()} s`); resolve(); } else reject(new Error(`exit ${code}: ${tail.join(' | ').slice(-400)}`));
    });
  });
}
