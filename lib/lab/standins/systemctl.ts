// Stand-in for systemctl inside a lab host (systemd is not PID 1 here). Knows the five kubernetes units
// (../units.ts), and on a modern lab Debian's etcd unit (the real /usr/bin/etcd); reads their Environment= and
// EnvironmentFile=s, expands ExecStart= like systemd, runs the service as the unit's User= (setpriv --init-groups),
// detached, output appended to /var/log/kubetls-lab/<unit>.log, PID in /run/kubetls-lab/<unit>.pid. start/restart
// wait (≤ 10 s) for the stand-in's ready line (our sd_notify); for etcd (Type=notify) until etcd serves TLS on its
// client URLs after its "ready to serve client requests" (≤ 30 s), or exits.
// Every start/stop/restart/failure is appended to /var/log/kubetls-lab/journal.
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { hostname } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { parseEnvFile, expandExec } from '../envfile.ts';
import { formatJournalLine, parseJournal, type JournalEvent } from '../journal.ts';
import { JOURNAL, LOG_DIR, READY_MARKER, RUN_DIR, UNITS, etcdUnit, type Unit } from '../units.ts';
import { VERSION_FILE, isLegacy } from '../versions.ts';

const START_TIMEOUT_MS = Number(process.env.KUBETLS_LAB_START_TIMEOUT_MS ?? 10_000);
// etcd: shorter than systemd's 90 s default TimeoutStartSec, so that a hung test fails sooner. A first member of a
// new multi-member cluster is only ready once a quorum has joined: start the members together (as with systemd).
const ETCD_START_TIMEOUT_MS = Number(process.env.KUBETLS_LAB_ETCD_START_TIMEOUT_MS ?? 30_000);
const STOP_TIMEOUT_MS = 5_000;
const BIN_DIR = '/usr/local/sbin';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const pidFile = (u: Unit) => `${RUN_DIR}/${u.name}.pid`;
const failedFile = (u: Unit) => `${RUN_DIR}/${u.name}.failed`;
const logFile = (u: Unit) => `${LOG_DIR}/${u.name}.log`;

function journal(u: Unit, event: JournalEvent, pid: number) {
  appendFileSync(JOURNAL, formatJournalLine(u.name, event, pid));
}

/** The PID of the unit's main process if it is alive (not a zombie, still our binary). */
function mainPid(u: Unit): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile(u), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!alive(pid)) return undefined;
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(u.name)) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function readFrom(file: string, offset: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    if (size <= offset) return '';
    const buf = Buffer.alloc(size - offset);
    readSync(fd, buf, 0, buf.length, offset);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function tail(text: string, n: number): string[] {
  return text.split('\n').filter((l) => l.trim() && l.trim() !== READY_MARKER).slice(-n);
}

function loadEnv(u: Unit): Record<string, string> {
  const env: Record<string, string> = { ...u.environment };
  for (const f of u.environmentFiles) {
    if (!existsSync(f)) continue; // EnvironmentFile=-… : a missing file is fine
    Object.assign(env, parseEnvFile(readFileSync(f, 'utf8')));
  }
  return env;
}

async function stop(u: Unit): Promise<void> {
  const pid = mainPid(u);
  if (pid !== undefined) {
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    }
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (alive(pid) && Date.now() < deadline) await sleep(20);
    if (alive(pid)) {
      try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
      while (alive(pid) && Date.now() < deadline + 2000) await sleep(20);
    }
    journal(u, 'stop', pid);
  }
  rmSync(pidFile(u), { force: true });
  rmSync(failedFile(u), { force: true });
}

async function start(u: Unit, event: 'start' | 'restart', wait: boolean): Promise<boolean> {
  if (mainPid(u) !== undefined) return true;
  mkdirSync(RUN_DIR, { recursive: true });
  mkdirSync(LOG_DIR, { recursive: true });
  rmSync(failedFile(u), { force: true });
  // Fault injection for tests (no real systemd has this): the next start of UNIT fails once, as a service that
  // cannot come up does. Used to prove that renew.ts rolls a host back. `touch /etc/kubetls-lab/fail-next-start/UNIT`.
  const inject = `/etc/kubetls-lab/fail-next-start/${u.name}`;
  if (existsSync(inject)) {
    rmSync(inject, { force: true });
    journal(u, 'failed', 0);
    writeFileSync(failedFile(u), 'injected\n');
    console.error(`Job for ${u.name}.service failed because the control process exited with error code.`);
    console.error(`  (lab) start failure injected by ${inject}`);
    return false;
  }
  const env = loadEnv(u);
  const [binary, ...args] = expandExec(u.exec, env);
  const exe = binary!.startsWith('/') ? binary! : `${BIN_DIR}/${binary}`;
  const logFd = openSync(logFile(u), 'a');
  const offset = fstatSync(logFd).size;
  const home = u.user === 'root' ? '/root' : '/';
  const serviceEnv: Record<string, string> = {
    ...env, // systemd exports EnvironmentFile= variables to the service
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    LANG: 'C.UTF-8',
    HOME: home,
    USER: u.user,
    LOGNAME: u.user,
    INVOCATION_ID: Math.random().toString(16).slice(2),
  };
  for (const k of ['KUBETLS_LAB_PERIOD_MS']) if (process.env[k]) serviceEnv[k] = process.env[k]!;
  const argv = u.user === 'root' ? [exe, ...args]
    : ['/usr/bin/setpriv', `--reuid=${u.user}`, `--regid=${u.group ?? 'nogroup'}`, '--init-groups', '--', exe, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', logFd, logFd], env: serviceEnv, cwd: '/' });
  closeSync(logFd);
  const pid = child.pid!;
  let exited: number | null | undefined;
  child.on('exit', (code, signal) => (exited = code ?? (signal ? 128 : 1)));
  writeFileSync(pidFile(u), `${pid}\n`);
  journal(u, event, pid);
  if (!wait) {
    child.unref();
    return true;
  }
  const deadline = Date.now() + (u.ready === 'etcd' ? ETCD_START_TIMEOUT_MS : START_TIMEOUT_MS);
  let timedOut = false;
  for (;;) {
    const ready = u.ready === 'etcd'
      ? /ready to serve client requests/.test(readFrom(logFile(u), offset)) && (await etcdServing(env, args))
      : readFrom(logFile(u), offset).split('\n').some((l) => l.trim() === READY_MARKER);
    // etcd may fail right after its ready line (a client certificate it cannot load): alive is part of ready
    if (ready && exited === undefined && alive(pid)) {
      child.unref();
      return true;
    }
    if (exited !== undefined) break;
    if (Date.now() > deadline) {
      timedOut = true;
      try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
      break;
    }
    await sleep(25);
  }
  journal(u, 'failed', pid);
  rmSync(pidFile(u), { force: true });
  writeFileSync(failedFile(u), `${exited ?? 'timeout'}\n`);
  console.error(timedOut
    ? `Job for ${u.name}.service failed because a timeout was exceeded.`
    : `Job for ${u.name}.service failed because the control process exited with error code.`);
  console.error(`See "systemctl status ${u.name}.service" and "journalctl -xeu ${u.name}.service" for details.`);
  for (const line of tail(readFrom(logFile(u), offset), 8)) console.error(`  ${line}`);
  return false;
}

/** The units of this host: the five, and etcd on a modern lab where Debian's etcd-server is installed. */
function unitNamed(name: string): Unit | undefined {
  if (UNITS[name]) return UNITS[name];
  if (name !== 'etcd' && name !== 'etcd2') return undefined; // etcd2: the unit's Alias=
  let version = '';
  try {
    version = readFileSync(VERSION_FILE, 'utf8').trim();
  } catch { /* not a lab host */ }
  return version && !isLegacy(version) && existsSync('/usr/bin/etcd') ? etcdUnit(hostname()) : undefined;
}

/**
 * Our stand-in for etcd's sd_notify(READY=1): every client URL answers a TLS handshake (https) or a TCP connect
 * (http). etcd logs "ready to serve client requests" BEFORE it loads the client certificate, and exits a moment later
 * when it cannot (etcdmain: tls: private key does not match public key): a handshake that completes proves it loaded.
 * A TLS alert from the server (it wants a client certificate we do not send) counts as serving too.
 */
async function etcdServing(env: Record<string, string>, args: string[]): Promise<boolean> {
  const flag = args.map((a) => /^--?listen-client-urls=(.*)$/.exec(a)?.[1]).find((v) => v !== undefined);
  const urls = (flag ?? env.ETCD_LISTEN_CLIENT_URLS ?? 'http://localhost:2379').split(',').map((s) => s.trim()).filter(Boolean);
  const probe = (raw: string) => new Promise<boolean>((done) => {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return done(false);
    }
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || 2379);
    const tls = url.protocol === 'https:';
    const sock = tls ? tlsConnect({ host, port, rejectUnauthorized: false }) : netConnect({ host, port });
    const finish = (ok: boolean) => {
      sock.destroy();
      done(ok);
    };
    sock.setTimeout(1000, () => finish(false));
    sock.once(tls ? 'secureConnect' : 'connect', () => finish(true));
    sock.once('error', (e) => finish(/alert/i.test(e.message)));
  });
  return (await Promise.all(urls.map(probe))).every(Boolean);
}

function activeState(u: Unit): 'active' | 'failed' | 'inactive' {
  if (mainPid(u) !== undefined) return 'active';
  if (existsSync(failedFile(u))) return 'failed';
  // died on its own after a successful start: systemd would mark it failed
  return existsSync(pidFile(u)) ? 'failed' : 'inactive';
}

function status(u: Unit): number {
  const state = activeState(u);
  const pid = mainPid(u);
  const dot = state === 'active' ? '●' : state === 'failed' ? '×' : '○';
  const lines = parseJournal(readFrom(JOURNAL, 0)).filter((l) => l.unit === u.name);
  const since = lines.length ? ` since ${lines[lines.length - 1]!.time}` : '';
  console.log(`${dot} ${u.name}.service - ${u.description}`);
  console.log(`     Loaded: loaded (${u.path ?? `/usr/lib/systemd/system/${u.name}.service`}; enabled; preset: enabled)`);
  console.log(`     Active: ${state}${state === 'active' ? ' (running)' : state === 'failed' ? ' (Result: exit-code)' : ' (dead)'}${since}`);
  if (pid !== undefined) console.log(`   Main PID: ${pid} (${u.name})`);
  console.log('');
  for (const line of tail(readFrom(logFile(u), 0), 10)) console.log(line);
  return state === 'active' ? 0 : 3;
}

async function main(argv: string[]): Promise<number> {
  const opts = argv.filter((a) => a.startsWith('-'));
  const words = argv.filter((a) => !a.startsWith('-'));
  const quiet = opts.includes('-q') || opts.includes('--quiet');
  const noBlock = opts.includes('--no-block');
  const [verb, ...names] = words;
  if (!verb) {
    console.error('systemctl (kubetls lab stand-in): usage: systemctl start|stop|restart|status|is-active|daemon-reload UNIT…');
    return 1;
  }
  if (verb === 'daemon-reload') return 0;
  const mutating = ['start', 'stop', 'restart', 'try-restart', 'reload-or-restart', 'enable', 'disable'];
  const verbs = [...mutating, 'status', 'is-active', 'is-failed', 'is-enabled', 'show'];
  if (!verbs.includes(verb)) {
    console.error(`Unknown command verb ${verb}.`);
    return 1;
  }
  if (names.length === 0) {
    console.error(`Too few arguments.`);
    return 1;
  }
  let rc = 0;
  for (const raw of names) {
    const name = raw.replace(/\.service$/, '');
    const u = unitNamed(name);
    if (!u) {
      if (verb === 'is-active' || verb === 'is-failed') {
        if (!quiet) console.log('inactive');
        rc = Math.max(rc, 3);
        continue;
      }
      if (verb === 'status') {
        console.error(`Unit ${name}.service could not be found.`);
        rc = Math.max(rc, 4);
        continue;
      }
      const word = verb === 'reload-or-restart' || verb === 'try-restart' ? 'restart' : verb;
      console.error(`Failed to ${word} ${name}.service: Unit ${name}.service not found.`);
      return 5;
    }
    if (mutating.includes(verb) && process.getuid?.() !== 0) {
      console.error(`Failed to ${verb} ${name}.service: Interactive authentication required.`);
      console.error(`See system logs and 'systemctl status ${name}.service' for details.`);
      return 1;
    }
    switch (verb) {
      case 'start':
        if (!(await start(u, 'start', !noBlock))) rc = 1;
        break;
      case 'stop':
        await stop(u);
        break;
      case 'restart':
      case 'reload-or-restart':
        await stop(u);
        if (!(await start(u, 'restart', !noBlock))) rc = 1;
        break;
      case 'try-restart':
        if (mainPid(u) !== undefined) {
          await stop(u);
          if (!(await start(u, 'restart', !noBlock))) rc = 1;
        }
        break;
      case 'enable':
      case 'disable':
        break;
      case 'is-enabled':
        if (!quiet) console.log('enabled');
        break;
      case 'is-active': {
        const s = activeState(u);
        if (!quiet) console.log(s);
        if (s !== 'active') rc = Math.max(rc, 3);
        break;
      }
      case 'is-failed': {
        const s = activeState(u);
        if (!quiet) console.log(s);
        if (s !== 'failed') rc = Math.max(rc, 1);
        break;
      }
      case 'status':
        rc = Math.max(rc, status(u));
        break;
      case 'show':
        // the two properties kubetls's restart gate reads (the stand-in never restarts a unit by itself)
        console.log(`MainPID=${mainPid(u) ?? 0}\nNRestarts=0`);
        break;
    }
  }
  return rc;
}

process.exitCode = await main(process.argv.slice(2));
