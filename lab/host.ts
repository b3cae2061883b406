// One lab host: waiting for its sshd, killing it, running commands inside it (nsenter).
import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { pidAlive } from './state.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Addresses with a listener on port 22, from /proc/net/tcp. */
function listening22(): Set<string> {
  const out = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] !== '0A') continue;
    const [hex, port] = f[1]!.split(':') as [string, string];
    if (port !== '0016') continue;
    out.add([6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.'));
  }
  return out;
}

/** Wait (bounded) until sshd listens on every address, or is gone from every one (up = false). */
export async function waitSshd(addresses: string[], up = true, timeoutMs = 15000, alive?: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const l = listening22();
    const pending = addresses.filter((a) => l.has(a) !== up);
    if (pending.length === 0) return;
    const dead = alive?.();
    if (dead) throw new Error(dead);
    if (Date.now() > deadline) {
      throw new Error(`lab: sshd ${up ? 'not listening' : 'still listening'} on ${pending.slice(0, 5).join(', ')}${pending.length > 5 ? ', …' : ''} after ${timeoutMs} ms`);
    }
    await sleep(up ? 10 : 5);
  }
}

/** SIGKILL each namespace's PID 1: the kernel then kills every process of that PID namespace. `unshare` reaps it
 * and exits by itself (SIGKILLed too if it lingers). Waits until all are gone (a zombie counts as gone). */
export async function killHost(initPids: number[], unsharePids: number[] = [], timeoutMs = 5000): Promise<void> {
  const kill = (pid: number) => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch { /* already gone */ }
  };
  initPids.filter(pidAlive).forEach(kill);
  const deadline = Date.now() + timeoutMs;
  const lingerUntil = Date.now() + 1000;
  let unshareKilled = false;
  while ([...initPids, ...unsharePids].some(pidAlive)) {
    if (!unshareKilled && (Date.now() > lingerUntil || !initPids.some(pidAlive))) {
      if (Date.now() > lingerUntil) {
        unsharePids.filter(pidAlive).forEach(kill);
        unshareKilled = true;
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`lab: processes ${[...initPids, ...unsharePids].filter(pidAlive).join(' ')} survived SIGKILL`);
    }
    await sleep(5);
  }
}

export interface ExecResult { stdout: string; stderr: string; exitCode: number }
export interface ExecOptions { input?: string; user?: string; timeoutMs?: number; env?: Record<string, string> }

/** Run argv inside a host's mount, UTS and PID namespaces (nsenter), optionally as another user (runuser). */
export async function nsExec(pid: number, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const inner = opts.user && opts.user !== 'root' ? ['runuser', '-u', opts.user, '--', ...argv] : argv;
  // -n too: a modern minion has a network namespace of its own (lab/nspawn.ts); the others share the machine's
  const r = await execa('nsenter', ['-t', String(pid), '-m', '-u', '-n', '-p', '--', ...inner], {
    reject: false,
    cwd: '/',
    input: opts.input ?? '',
    timeout: opts.timeoutMs ?? 30000,
    extendEnv: false,
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8', ...opts.env },
    stripFinalNewline: false,
  });
  return { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? (r.timedOut ? 124 : 1) };
}
