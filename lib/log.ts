/**
 * Every step is logged as its shell equivalent, so that a cron mail can be replayed by hand:
 *   2026-11-28T22:00:00Z $ openssl genrsa -out pki/ca.key 4096
 *   2026-11-28T22:00:02Z [kubeminion1] $ sftp put pki/kubeminion1.key → /srv/kubernetes/kubeminion1.key (root:root 0600)
 * On a TTY the timestamp is dropped and host names are coloured; under cron (no TTY) lines are plain.
 * Secrets (the token) are registered once and masked here, the one place every line passes through.
 */
import path from 'node:path';
import { command } from './sh.ts';

type Level = 'cmd' | 'info' | 'warn' | 'error';
export interface Line { level: Level; host?: string; text: string }

const secrets = new Set<string>();
let sink: (line: string, l: Line) => void = (s, l) => (l.level === 'error' || l.level === 'warn' ? process.stderr : process.stdout).write(`${s}\n`);
let tty = Boolean(process.stdout.isTTY) && !process.env.CI;
/** https://no-color.org: on a terminal, NO_COLOR keeps the terminal layout (progress, no timestamps) without escapes. */
const color = () => tty && !process.env.NO_COLOR;
let buffer: { s: string; l: Line }[] | null = null;

/** Never print this string again: every line is masked before it leaves. */
export function registerSecret(secret: string): void {
  if (secret.length >= 8) secrets.add(secret);
}

export function mask(text: string): string {
  for (const s of secrets) text = text.split(s).join('***');
  return text;
}

/** Paths inside the current folder are shown relative to it, as a person would type them. */
export function shown(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p;
}

function emit(l: Line): void {
  const host = l.host ? (color() ? `\x1b[36m[${l.host}]\x1b[0m ` : `[${l.host}] `) : '';
  const tag = l.level === 'error' ? 'ERROR: ' : l.level === 'warn' ? 'WARNING: ' : '';
  const stamp = tty ? '' : `${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} `;
  const s = mask(`${stamp}${host}${tag}${l.text}`);
  if (buffer) buffer.push({ s, l });
  else sink(s, l);
}

export const log = {
  /** `$ argv…` — a command we run (or would run, with --dry-run). Paths are shown relative to the cwd. */
  cmd(argv: readonly string[], host?: string) {
    emit({ level: 'cmd', host, text: `$ ${command(argv.map((a) => (a.startsWith('/') ? shown(a) : a)))}` });
  },
  /** `$ text` — an action with no exact argv (sftp put, a file write), already phrased as a shell line. */
  action(text: string, host?: string) {
    emit({ level: 'cmd', host, text: `$ ${text}` });
  },
  info(text: string, host?: string) { emit({ level: 'info', host, text }); },
  warn(text: string, host?: string) { emit({ level: 'warn', host, text }); },
  error(text: string, host?: string) { emit({ level: 'error', host, text }); },
  /** A phase header (renew: check → renew → restart → verify). */
  phase(title: string) { emit({ level: 'info', text: color() ? `\x1b[1m== ${title}\x1b[0m` : `== ${title}` }); },
  /** Table and summary output: printed as is, masked, never timestamped. */
  print(text: string) {
    const s = mask(text);
    if (buffer) buffer.push({ s, l: { level: 'info', text } });
    else sink(s, { level: 'info', text });
  },
  get tty() { return tty; },
};

/** For tests and --quiet: send lines elsewhere, force TTY style on or off. */
export function configureLog(o: { sink?: (line: string, l: Line) => void; tty?: boolean }): void {
  if (o.sink) sink = o.sink;
  if (o.tty !== undefined) tty = o.tty;
}

/** --quiet: hold every line back; `release(true)` prints them, `release(false)` drops them. */
export function holdLog(): void { buffer = []; }
export function releaseLog(print: boolean): void {
  const held = buffer ?? [];
  buffer = null;
  if (print) for (const { s, l } of held) sink(s, l);
}
