// Shared by the stand-in binaries: version, flag parsing with cobra's errors, klog-ish logging, Go-like file errors.
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { VERSION_FILE } from '../versions.ts';
import { FlagError, flagSpec, parseFlags, type ParsedFlags } from './flags.ts';

export type Binary = Parameters<typeof flagSpec>[0];

export function emulatedVersion(): string {
  try {
    return readFileSync(VERSION_FILE, 'utf8').trim();
  } catch {
    return 'v1.4.2';
  }
}

function stamp(level: string): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${level}${p(d.getMonth() + 1)}${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.` +
    `${p(d.getMilliseconds(), 3)}000 ${String(process.pid).padStart(7)}`;
}

export function makeLog(binary: string) {
  return {
    info: (msg: string) => console.log(`${stamp('I')} ${binary}] ${msg}`),
    warn: (msg: string) => console.log(`${stamp('W')} ${binary}] ${msg}`),
    error: (msg: string) => console.log(`${stamp('E')} ${binary}] ${msg}`),
    /** Log and exit 1, the way the real binaries die on a bad config. */
    fatal: (msg: string): never => {
      console.log(`${stamp('F')} ${binary}] ${msg}`);
      process.exit(1);
    },
    /** Serving: our sd_notify(READY=1), the file the unit's ExecStartPost= waits for (lab/nspawn.ts WAIT_READY). */
    ready: () => {
      console.log(`Serving (pid ${process.pid})`);
      const dir = process.env.RUNTIME_DIRECTORY;
      if (dir) writeFileSync(`${dir}/ready`, `${process.pid}\n`);
    },
  };
}

/** Parse argv with the flags of this binary at the emulated version; on error print cobra's message and exit 1. */
export function parseOrDie(binary: Binary, argv = process.argv.slice(2)): { flags: ParsedFlags; version: string } {
  const version = emulatedVersion();
  try {
    const flags = parseFlags(argv, flagSpec(binary));
    if (flags.args.length > 0) {
      throw new FlagError(`"${binary}" does not take any arguments, got ${JSON.stringify(flags.args)}`);
    }
    return { flags, version };
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    console.log(`Error: ${e.message}`);
    console.log(`Usage:\n  ${binary} [flags]\n\n(kubetls lab stand-in for ${binary} ${version})`);
    process.exit(1);
  }
}

/** Go's *PathError wording: "open /srv/kubernetes/server.key: permission denied". */
export function goError(e: unknown, path: string): string {
  const code = (e as NodeJS.ErrnoException).code;
  const why = code === 'EACCES' ? 'permission denied'
    : code === 'ENOENT' ? 'no such file or directory'
    : code === 'EISDIR' ? 'is a directory'
    : (e as Error).message;
  return `open ${path}: ${why}`;
}

/** Read a file as the user this process runs as (the unit's User=), Go-style error on failure. */
export function readOrThrow(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(goError(e, path));
  }
}

/** This host's own lab address, from /etc/hosts (the lab maps every host name there). */
export function ownAddress(): string | undefined {
  const me = hostname();
  try {
    for (const line of readFileSync('/etc/hosts', 'utf8').split('\n')) {
      const [addr, ...names] = line.replace(/#.*/, '').trim().split(/\s+/);
      if (addr && names.includes(me) && addr.startsWith('127.')) return addr;
    }
  } catch {
    /* fall through */
  }
  return undefined;
}

export function onSignals(cleanup: () => void) {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      cleanup();
      process.exit(0);
    });
  }
}

/** Keep a daemon alive without busy work (a timer that does nothing; stopped by a signal). */
export function stayUp(): void {
  setInterval(() => {}, 1 << 30);
}
