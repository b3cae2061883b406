/**
 * One SSH connection per host (ssh2 through ssh2-sftp-client), used for SFTP and exec alike.
 *
 *   const r = await connect(inv, host, { acceptNewHostKeys })
 *   await r.write('/srv/kubernetes/ca.crt', bytes, masterPki, 'pki/ca.crt')   // atomic, backed up, skipped if equal
 *   await r.run(['systemctl', 'restart', 'kube-apiserver'])
 *   await r.close()
 *
 * Commands are strings for the remote login shell, built only with lib/sh.ts quoting. With `ssh.sudo: true` the
 * user is not root: files are staged in ~/.kubetls-staging (0700, files 0600) and installed by one `sudo -n` command.
 * `dryRemote(host)` has the same interface, logs every action as a shell line and connects nowhere.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import SftpClient from 'ssh2-sftp-client';
import ssh2, { type Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import { BACKUPS_KEPT, type FileMode } from '../config/files.ts';
import { faultIs, faultPoint } from './fault.ts';
import type { Host, Inventory } from './inventory.ts';
import * as hostCert from './hostcert.ts';
import * as knownHosts from './knownhosts.ts';
import { log } from './log.ts';
import { sshTarget, type SshTarget } from './sshconfig.ts';
import { command, quote } from './sh.ts';

export interface ExecResult { code: number; stdout: string; stderr: string }
/** What is at a remote path. `kind` is from lstat: a symlink is reported as one, never followed. */
export interface FileState { kind: 'file' | 'link' | 'other'; owner: string; group: string; mode: number; size: number; sha256: string }
/** A write done in this run: what to put back if the host must be rolled back. */
export interface Written { path: string; backup?: string }

export interface Remote {
  readonly host: Host;
  readonly writes: Written[];
  /** True for --dry-run: nothing is read or sent, so callers need not prepare content. */
  readonly dry: boolean;
  /** Run an argv (quoted for sh, with sudo when needed); logs it; throws RemoteError on a non-zero exit unless `ok` allows it. */
  run(argv: string[], o?: { ok?: number[]; quiet?: boolean; timeoutMs?: number }): Promise<ExecResult>;
  /** lstat + sha256 of each path (undefined when absent), in one round trip. Symlinks are reported, not followed. */
  inspect(paths: string[]): Promise<Map<string, FileState | undefined>>;
  /** The content of a regular file (undefined when absent); refuses a symlink or anything else. */
  read(file: string): Promise<Buffer | undefined>;
  /**
   * Make sure `dir` is a folder that only root can change, all the way from `/` (see `dirProblem`), creating it
   * root-owned with `m.mode` when missing. An existing folder's owner and mode are never changed, except `takeOver`:
   * the recipe's own `chown -R kube:nogroup /srv/kubernetes` left pki.remote_dir owned by the service account, which
   * could then plant links where root writes; that one folder is given back to root (a tightening only).
   * Returns true when something was created or changed.
   */
  ensureDir(dir: string, m: FileMode, takeOver?: string): Promise<boolean>;
  /** Refuse a folder that exists and is not root's only (dirProblem); a missing one is fine. Creates nothing. */
  proveDir(dir: string): Promise<void>;
  /**
   * Everything a rollout needs to know about a host, in ONE round trip: the folders' ownership from `/` down (judged
   * by the next `ensureDir` of each, which then costs nothing), temp files a killed run left there, lstat + sha256 of
   * `paths`, the contents of `read` (regular files only, at most MAX_READ bytes) and the names in `list`.
   */
  survey(q: SurveyQuery): Promise<Survey>;
  /** Write unless content, owner and mode already match. Returns true when written. */
  write(file: string, content: Buffer, m: FileMode, label: string, known?: FileState): Promise<boolean>;
  /**
   * Write several files: every upload first, then one command installs them all, in order, each exactly as `write`
   * does (verified, backed up, renamed); it stops at the first that fails. Returns how many were written.
   */
  writeAll(items: WriteItem[]): Promise<number>;
  /** Put back what this run replaced on this host (newest first): the backup, or remove a file that was new. */
  rollback(): Promise<void>;
  close(): Promise<void>;
}

export interface SurveyQuery { dirs: { dir: string; takeOver?: string }[]; paths: string[]; read: string[]; list?: string }
export interface Survey { states: Map<string, FileState | undefined>; contents: Map<string, Buffer | undefined>; listing: string[]; deferred: boolean }
/** `known`: what a survey saw at `file` (null: nothing there); undefined: not looked at yet, writeAll looks first. */
export interface WriteItem { file: string; content: Buffer; mode: FileMode; label: string; known?: FileState | null }

/** The largest file `read`/`survey` return (env files and kubeconfigs are a few KiB): a planted huge file is refused. */
export const MAX_READ = 1024 * 1024;

export class RemoteError extends Error {
  constructor(readonly host: string, message: string, readonly retriable = false) {
    super(message);
    this.name = 'RemoteError';
  }
}

export interface ConnectOptions {
  acceptNewHostKeys?: boolean;
  /** ssh2's readyTimeout: from the TCP connect to the end of authentication (default 10 s) */
  readyTimeoutMs?: number;
  /** how long a jump host may take to open the channel to the next hop (default: readyTimeoutMs) */
  channelTimeoutMs?: number;
  attempts?: number;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The longest a remote command may run: above systemd's default start timeout (90 s), so a slow restart still fits. */
export const EXEC_TIMEOUT_MS = 120_000;

/** `<file>.bak-20261128T220000Z`: the UTC time of this run, so a run's backups sort together and after older ones. */
export const backupStamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

const modeStr = (m: number) => m.toString(8).padStart(4, '0');
const describeMode = (m: FileMode) => `${m.owner}:${m.group} ${modeStr(m.mode)}`;

/** Exit code of our install script when the staged file is not what was sent (full disk, a failed write). */
const SHORT_WRITE = 97;

// ---- scripts run on the far side (POSIX sh; every value passes through quote()) ---------------------------------------

/**
 * What is at each path, in a constant number of processes whatever the number of paths (the survey runs on every host
 * on every run): `path<TAB>-` (absent), `path<TAB>L` (symlink), `path<TAB>O` (not a regular file) from shell builtins,
 * then for the regular files one `stat` (`S<TAB>path<TAB>owner:group:mode:size`) and one `sha256sum`, both in the same
 * order. lstat semantics throughout: a symlink is reported, never followed.
 */
export function inspectScript(paths: string[]): string {
  const list = paths.map(quote).join(' ');
  return [
    `for f in ${list}; do if [ -L "$f" ]; then printf '%s\\tL\\n' "$f"; elif [ -f "$f" ]; then :; elif [ -e "$f" ]; then printf '%s\\tO\\n' "$f"; else printf '%s\\t-\\n' "$f"; fi; done`,
    `regs() { for f in ${list}; do if [ ! -L "$f" ] && [ -f "$f" ]; then printf '%s\\0' "$f"; fi; done; }`,
    `regs | xargs -0r stat --printf 'S\\t%n\\t%U:%G:%a:%s\\n' --`,
    'regs | xargs -0r sha256sum --',
  ].join('\n');
}

export function parseInspect(paths: string[], stdout: string): Map<string, FileState | undefined> {
  const out = new Map<string, FileState | undefined>(paths.map((p) => [p, undefined]));
  const stats = new Map<string, string>();
  const hashes = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    // sha256sum: `HASH  NAME`, or `\HASH  NAME` with `\\` and `\n` escaped when the name holds either
    const hash = /^(\\?)([0-9a-f]{64}) {2}(.*)$/.exec(line);
    if (hash) { hashes.set(hash[1] ? hash[3]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)) : hash[3]!, hash[2]!); continue; }
    const [f, st, third] = line.split('\t');
    if (f === 'S' && st !== undefined && third !== undefined) { stats.set(st, third); continue; }
    if (!f || !out.has(f) || (st !== 'L' && st !== 'O')) continue;
    out.set(f, { kind: st === 'L' ? 'link' : 'other', owner: '?', group: '?', mode: 0, size: 0, sha256: '' });
  }
  // stat and sha256sum ran one after the other: a file that came or went in between has one answer, not both (and a
  // name swapped in between would have the other's hash): refuse the answer; the caller fails the host, the next run
  // looks again
  const odd = [...stats.keys()].filter((f) => !hashes.has(f)).concat([...hashes.keys()].filter((f) => !stats.has(f)));
  if (odd.length) throw new Error(`files changed while being inspected (${odd.join(', ')}): run again`);
  for (const [f, st] of stats) {
    if (!out.has(f)) continue;
    const [owner, group, mode, size] = st.split(':');
    out.set(f, { kind: 'file', owner: owner!, group: group!, mode: parseInt(mode!, 8), size: Number(size), sha256: hashes.get(f)! });
  }
  return out;
}

/**
 * For each folder: lstat of every prefix, from `/` down (stopping at the first missing one), then the same for its
 * realpath when that differs (a root-owned symlink such as /var/run → /run is fine if where it leads is root's too).
 * Lines: `D|<dir>`, `R|<realpath>`, `<uid>|<gid>|<octal mode>|<type>|<path>` or `-|-|-|missing|<path>`.
 */
export function dirScript(dirs: string[]): string {
  return [
    // one pass of shell builtins finds the existing prefixes (and whether any is a link), one `stat` reports them all
    'chk() {',
    '  o=$IFS; IFS=/; set -f; set -- $1; IFS=$o; set +f',
    '  p=; m=; n=0; link=',
    '  for c; do [ -n "$c" ] || continue; p="$p/$c"; if [ -L "$p" ]; then link=1; elif [ ! -e "$p" ]; then m=$p; break; fi; n=$((n+1)); done',
    `  { printf '/\\0'; p=; i=0; for c; do [ -n "$c" ] || continue; [ $i -lt $n ] || break; p="$p/$c"; printf '%s\\0' "$p"; i=$((i+1)); done; } | xargs -0 stat -c '%u|%g|%a|%F|%n' --`,
    `  [ -z "$m" ] || printf '%s\\n' "-|-|-|missing|$m"`,
    '}',
    // realpath -m: also for a folder still to be made, so that `install -d` can never create or chmod through a link;
    // asked only when a prefix is a link or the path has . or .. or // in it (otherwise it is its own realpath)
    `for d in ${dirs.map(quote).join(' ')}; do printf 'D|%s\\n' "$d"; chk "$d"; case "$d" in */./*|*/../*|*/.|*/..|*//*) link=1;; esac; if [ -n "$link" ]; then r=$(realpath -m -- "$d" 2>/dev/null) && [ "$r" != "$d" ] && { printf 'R|%s\\n' "$r"; chk "$r"; }; fi; done; true`,
  ].join('\n');
}

interface DirEntry { uid: string; gid: string; mode: number; type: string; path: string }

/**
 * Why root must not write below `dir` (undefined: it may). Every existing prefix must be root's: a folder owned by
 * uid 0 that no other user can write to (group-writable only for gid 0), or a symlink owned by root; the folder's
 * realpath must pass the same test. `takeOver` names the one user allowed to own the last component (see ensureDir).
 */
export function dirProblem(dir: string, entries: DirEntry[], real: DirEntry[], takeOver?: { uid: string }): { problem?: string; missing: boolean; takeOver: boolean } {
  let missing = false;
  let over = false;
  const judge = (list: DirEntry[], leaf: string, mayTakeOver: boolean): string | undefined => {
    for (const e of list) {
      if (e.type === 'missing') { missing = true; return undefined; }
      const isLeaf = e.path === leaf;
      if (e.type === 'symbolic link') {
        if (e.uid !== '0') return `${e.path} is a symlink owned by uid ${e.uid}, not root`;
        continue;
      }
      if (e.type !== 'directory') return `${e.path} is a ${e.type}, not a folder`;
      if (e.uid !== '0') {
        if (isLeaf && mayTakeOver && takeOver && e.uid === takeOver.uid) { over = true; continue; }
        return `${e.path} belongs to uid ${e.uid}: a folder root writes into must belong to root`;
      }
      if (e.mode & 0o002 || (e.mode & 0o020 && e.gid !== '0')) return `${e.path} is writable by others (mode ${modeStr(e.mode)}): another user could plant links where root writes`;
    }
    return undefined;
  };
  const problem = judge(entries, dir, true) ?? (real.length ? judge(real, real.at(-1)!.path, false) : undefined);
  return { problem, missing, takeOver: over };
}

export function parseDirs(stdout: string): Map<string, { entries: DirEntry[]; real: DirEntry[] }> {
  const out = new Map<string, { entries: DirEntry[]; real: DirEntry[] }>();
  let cur: { entries: DirEntry[]; real: DirEntry[] } | undefined;
  let list: DirEntry[] = [];
  for (const line of stdout.split('\n')) {
    if (!line) continue;
    if (line.startsWith('D|')) { cur = { entries: [], real: [] }; out.set(line.slice(2), cur); list = cur.entries; continue; }
    if (line.startsWith('R|')) { if (cur) list = cur.real; continue; }
    const [uid, gid, mode, type, ...rest] = line.split('|');
    list.push({ uid, gid, mode: parseInt(mode, 8) || 0, type, path: rest.join('|') });
  }
  return out;
}

/**
 * The survey (see Remote.survey) as one sh script. Every section starts with a marker line `@@<nonce>:<name>`, the
 * nonce fresh for each survey (128 random bits), so that nothing on the host (a file name with newlines in it, a
 * file's content) can start, end or repeat a section; names are listed escaped (`ls -b`, `find` without control
 * characters) and file contents travel as base64.
 * The files themselves (inspect, read) are opened only when each folder holding them is, at that moment, root's all
 * the way from `/` with no symlink on the way (the `safe` function: the gist of dirProblem, in shell builtins plus one
 * `stat`); otherwise the section says `deferred` and the caller asks again once ensureDir has proven or taken back the
 * folder: root never opens a name in a folder another user can change (a link swapped in could point at a FIFO or
 * /dev/zero, or at a root-only file whose hash would then be read).
 */
export function surveyScript(q: SurveyQuery, nonce: string): string {
  const users = [...new Set(q.dirs.flatMap((d) => (d.takeOver ? [d.takeOver] : [])))];
  const dirs = q.dirs.map((d) => d.dir);
  const holders = [...new Set([...q.paths, ...q.read].map((f) => path.posix.dirname(f)))];
  const mark = (name: string) => `echo @@${nonce}:${name}`;
  return [
    mark('users'),
    // every data line of these sections starts with `=`
    ...users.map((u) => `printf '=%s|%s\\n' ${quote(u)} "$(id -u -- ${quote(u)} 2>/dev/null)"`),
    mark('dirs'),
    ...(dirs.length ? [dirScript(dirs)] : []),
    mark('tmp'),
    // only listed here; removed by ensureDir once the folder is proven root's (-H: a folder that is a root-owned link)
    ...(dirs.length ? [`for d in ${dirs.map(quote).join(' ')}; do [ -d "$d" ] && find -H "$d" -mindepth 1 -maxdepth 1 -name '.*.kubetls-tmp' ! -name '*[[:cntrl:]]*' -type f -printf '=%p\\n' 2>/dev/null; done; true`] : []),
    'safe() {',
    '  o=$IFS; IFS=/; set -f; set -- $1; IFS=$o; set +f',
    `  { printf '/\\0'; p=; for c; do [ -n "$c" ] || continue; p="$p/$c"; printf '%s\\0' "$p"; done; } | xargs -0 stat -c '%u %g %a %F' -- 2>/dev/null | {`,
    '    n=0; while read -r u g m t; do n=$((n+1)); [ "$u" = 0 ] && [ "$t" = directory ] && [ $((0$m & 2)) -eq 0 ] && { [ $((0$m & 16)) -eq 0 ] || [ "$g" = 0 ]; } || exit 1; done',
    '    [ $n -eq $# ]; }',
    '}',
    `ok=1; for d in ${holders.map(quote).join(' ') || '/'}; do safe "$d" || ok=; done`,
    'if [ -z "$ok" ]; then',
    mark('deferred'),
    'else',
    mark('inspect'),
    ...(q.paths.length ? [inspectScript(q.paths)] : []),
    ...q.read.map((f) => `${mark('read')}; if [ -L ${quote(f)} ]; then echo LINK; elif [ -f ${quote(f)} ]; then echo FILE; head -c ${MAX_READ + 1} < ${quote(f)} | base64; elif [ -e ${quote(f)} ]; then echo OTHER; else echo MISSING; fi`),
    'fi',
    mark('list'),
    ...(q.list ? [`ls -1Ab -- ${quote(q.list)} 2>/dev/null | sed 's/^/=/'; true`] : []),
  ].join('\n');
}

export interface SurveyedDir { entries: DirEntry[]; real: DirEntry[]; uid?: string; leftovers: string[] }

/**
 * The survey's output, parsed. A read path that is a link or not a regular file throws, as `read` does. `deferred`:
 * a folder holding the files was not root's when surveyed, so no file was opened (see surveyScript).
 */
export function parseSurvey(q: SurveyQuery, stdout: string, host: string, nonce: string): Survey & { dirs: Map<string, SurveyedDir> } {
  const sections: { name: string; lines: string[] }[] = [];
  const marker = `@@${nonce}:`;
  for (const line of stdout.split('\n')) {
    if (line.startsWith(marker)) sections.push({ name: line.slice(marker.length), lines: [] });
    else sections.at(-1)?.lines.push(line);
  }
  const get = (name: string) => sections.filter((x) => x.name === name);
  for (const name of new Set(sections.map((x) => x.name))) {
    if (name !== 'read' && get(name).length > 1) throw new RemoteError(host, `survey: section ${name} twice in the answer`);
  }
  const need = (name: string) => { const x = get(name)[0]; if (!x) throw new RemoteError(host, `survey: no ${name} section in the answer`); return x.lines; };
  const data = (name: string) => need(name).filter((l) => l.startsWith('=')).map((l) => l.slice(1));
  const uids = new Map(data('users').map((l) => { const i = l.lastIndexOf('|'); return [l.slice(0, i), l.slice(i + 1) || undefined] as const; }));
  const parsed = parseDirs(need('dirs').join('\n'));
  const tmp = data('tmp');
  const dirs = new Map<string, SurveyedDir>(q.dirs.map((d) => [d.dir, {
    ...(parsed.get(d.dir) ?? { entries: [], real: [] }),
    uid: d.takeOver ? uids.get(d.takeOver) : undefined,
    leftovers: tmp.filter((f) => path.posix.dirname(f) === d.dir),
  }]));
  const listing = data('list');
  if (get('deferred').length) return { dirs, states: new Map(), contents: new Map(), listing, deferred: true };
  let states: Map<string, FileState | undefined>;
  try { states = parseInspect(q.paths, need('inspect').join('\n')); } catch (e) { throw new RemoteError(host, (e as Error).message); }
  const reads = get('read');
  if (reads.length !== q.read.length) throw new RemoteError(host, `survey: ${reads.length} of ${q.read.length} files read`);
  const contents = new Map<string, Buffer | undefined>();
  q.read.forEach((f, i) => {
    const [what, ...b64] = reads[i]!.lines;
    if (what === 'LINK' || what === 'OTHER') throw new RemoteError(host, `${f} is ${what === 'LINK' ? 'a symlink' : 'not a regular file'}: kubetls reads and writes only regular files there; remove it`);
    const bytes = what === 'FILE' ? Buffer.from(b64.join(''), 'base64') : undefined;
    if (bytes && bytes.length > MAX_READ) throw new RemoteError(host, `${f} is larger than ${MAX_READ} bytes: not a file kubetls wrote; move it away`);
    contents.set(f, bytes);
  });
  return { dirs, states, contents, listing, deferred: false };
}

/**
 * Install a staged file: check it is exactly what was sent (size and sha256: a full disk or a failed write leaves a
 * short file, and ssh2's put can resolve anyway), give it its owner and mode (`chown -h`: never through a link), back
 * up the current file (a hard link: same inode, owner and mode; since every upload is verified first, a failed run
 * installs nothing and so rotates no good backup away), keep the newest BACKUPS_KEPT but never the one just made,
 * and rename it over the target (atomic: the file is old or new).
 * `tmp` lives in the target's own folder, which dirProblem has proven only root can write to.
 * With sudo the upload went to the user's staging folder first (`from`); `install` copies it to `tmp` as root, and the
 * staged copy is removed whatever happens (a key must not linger in a home folder).
 */
export function installScript(tmp: string, file: string, backup: string | undefined, m: FileMode, size: number, hash: string, from?: string): string {
  const q = quote;
  const dir = path.posix.dirname(file);
  return [
    'set -e',
    ...(from ? [`staged=${q(from)}`, `trap 'rm -f -- "$staged"' EXIT`, `rm -f -- ${q(tmp)}`, `install -o ${q(m.owner)} -g ${q(m.group)} -m ${modeStr(m.mode)} -- ${q(from)} ${q(tmp)}`] : []),
    `if [ -L ${q(tmp)} ] || [ ! -f ${q(tmp)} ]; then echo 'staged file is not a regular file' >&2; exit ${SHORT_WRITE}; fi`,
    `got=$(stat -c %s -- ${q(tmp)})`,
    `if [ "$got" != ${size} ] || [ "$(sha256sum < ${q(tmp)} | cut -d' ' -f1)" != ${hash} ]; then rm -f -- ${q(tmp)}; echo "landed $got of ${size} bytes; free: $(df -Pk -- ${q(dir)} | awk 'NR==2 {print $4}') KiB" >&2; exit ${SHORT_WRITE}; fi`,
    ...(from ? [] : [`chown -h ${q(`${m.owner}:${m.group}`)} -- ${q(tmp)}`, `chmod ${modeStr(m.mode)} -- ${q(tmp)}`]),
    ...(backup ? [`if [ -f ${q(file)} ] && [ ! -L ${q(file)} ]; then ln -fPT -- ${q(file)} ${q(backup)}; fi`] : []),
    // keep the newest BACKUPS_KEPT backups of kubetls's own stamp shape, and never the one just made
    `set -- ${q(file)}.bak-[0-9]*T[0-9]*Z; [ -e "$1" ] || set --; while [ $# -gt ${BACKUPS_KEPT} ]; do [ "$1" = ${q(backup ?? '')} ] || rm -f -- "$1"; shift; done`,
    // on disk before the rename: a power cut right after it must not leave an empty file (XFS, ext4 noauto_da_alloc)
    `sync -- ${q(tmp)}`,
    `mv -fT -- ${q(tmp)} ${q(file)}`,
    `sync -- ${q(dir)} 2>/dev/null || true`,
  ].join('\n');
}

// ---- the real thing --------------------------------------------------------------------------------------------------

class SshRemote implements Remote {
  readonly writes: Written[] = [];
  readonly dry = false;
  private staging?: string;
  /** Folders proven root-only in this connection (dirProblem), so each is checked once per run. */
  private safe = new Set<string>();
  /** Folders proven in this run that hold no temp file of ours: an upload there needs no `rm -f` first. */
  private clean = new Set<string>();
  /** What the last survey saw of each folder, used (once) by ensureDir instead of asking again. */
  private surveyed = new Map<string, SurveyedDir>();
  private uploads = 0;
  constructor(readonly host: Host, private sftp: SftpClient, private sudo: boolean, private jumps: Client[] = []) {}

  private exec(script: string, asRoot = true, timeoutMs = EXEC_TIMEOUT_MS): Promise<ExecResult> {
    // always POSIX sh, whatever root's login shell is (zsh splits words differently), in the C locale (stat's %F)
    const wrapped = `LC_ALL=C; export LC_ALL\n${script}`;
    const cmd = asRoot && this.sudo ? `sudo -n sh -c ${quote(wrapped)}` : `sh -c ${quote(wrapped)}`;
    return new Promise((resolve, reject) => {
      const client = (this.sftp as unknown as { client: Client }).client;
      if (!client) return reject(new RemoteError(this.host.name, 'exec: the connection is gone'));
      try {
        client.exec(cmd, (err: Error | undefined, stream: ClientChannel) => {
          if (err) return reject(new RemoteError(this.host.name, `exec: ${err.message}`));
          // a command that never ends (a hung `systemctl restart`) must not hold a cron run forever
          const timer = setTimeout(() => {
            reject(new RemoteError(this.host.name, `no answer after ${timeoutMs / 1000} s from: ${script.slice(0, 120)}`));
            stream.close();
          }, timeoutMs);
          const out: Buffer[] = [];
          const errs: Buffer[] = [];
          stream.on('data', (d: Buffer) => out.push(d));
          stream.stderr.on('data', (d: Buffer) => errs.push(d));
          stream.on('close', (code: number | null) => {
            clearTimeout(timer);
            const stderr = Buffer.concat(errs).toString();
            if (this.sudo && asRoot && /a password is required|a terminal is required/.test(stderr)) {
              return reject(new RemoteError(this.host.name, `sudo asks for a password for ${this.host.user}: allow it with NOPASSWD in sudoers (kubetls runs 'sudo -n')`));
            }
            resolve({ code: code ?? 255, stdout: Buffer.concat(out).toString(), stderr });
          });
        });
      } catch (e) {
        reject(new RemoteError(this.host.name, `exec: ${(e as Error).message}`)); // ssh2 throws when the connection is gone
      }
    });
  }

  async run(argv: string[], o: { ok?: number[]; quiet?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
    if (!o.quiet) log.cmd(this.sudo ? ['sudo', '-n', ...argv] : argv, this.host.name);
    const r = await this.exec(command(argv), true, o.timeoutMs);
    if (!(o.ok ?? [0]).includes(r.code)) {
      throw new RemoteError(this.host.name, `${command(argv)} exited ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-4).join(' | ')}`);
    }
    return r;
  }

  async inspect(paths: string[]): Promise<Map<string, FileState | undefined>> {
    if (!paths.length) return new Map();
    const r = await this.exec(inspectScript(paths));
    if (r.code !== 0) throw new RemoteError(this.host.name, `inspect ${paths.join(' ')}: ${r.stderr.trim()}`);
    try { return parseInspect(paths, r.stdout); } catch (e) { throw new RemoteError(this.host.name, (e as Error).message); }
  }

  async read(file: string): Promise<Buffer | undefined> {
    const r = await this.exec(`if [ -L ${quote(file)} ]; then echo LINK; elif [ -f ${quote(file)} ]; then base64 < ${quote(file)}; elif [ -e ${quote(file)} ]; then echo OTHER; else echo MISSING; fi`);
    if (r.code !== 0) throw new RemoteError(this.host.name, `read ${file}: ${r.stderr.trim()}`);
    const o = r.stdout.trim();
    if (o === 'LINK' || o === 'OTHER') throw new RemoteError(this.host.name, `${file} is ${o === 'LINK' ? 'a symlink' : 'not a regular file'}: kubetls reads and writes only regular files there; remove it`);
    return o === 'MISSING' ? undefined : Buffer.from(r.stdout.replace(/\s/g, ''), 'base64');
  }

  async survey(q: SurveyQuery): Promise<Survey> {
    const nonce = randomBytes(16).toString('hex');
    const r = await this.exec(surveyScript(q, nonce));
    if (r.code !== 0) throw new RemoteError(this.host.name, `survey: ${r.stderr.trim() || `exit ${r.code}`}`);
    const { dirs, ...rest } = parseSurvey(q, r.stdout, this.host.name, nonce);
    for (const [d, e] of dirs) if (!this.safe.has(d)) this.surveyed.set(d, e);
    return rest;
  }

  async proveDir(dir: string): Promise<void> {
    if (this.safe.has(dir)) return;
    const pre = this.surveyed.get(dir);
    let e = pre;
    if (!e) {
      const r = await this.exec(dirScript([dir]));
      if (r.code !== 0) throw new RemoteError(this.host.name, `check ${dir}: ${r.stderr.trim()}`);
      e = { ...(parseDirs(r.stdout).get(dir) ?? { entries: [], real: [] }), leftovers: [] };
    }
    const v = dirProblem(dir, e.entries, e.real);
    if (v.problem) throw new RemoteError(this.host.name, `refusing to use ${dir}: ${v.problem}`);
  }

  async ensureDir(dir: string, m: FileMode, takeOver?: string): Promise<boolean> {
    if (this.safe.has(dir)) return false;
    const look = async () => {
      const r = await this.exec(dirScript([dir]));
      if (r.code !== 0) throw new RemoteError(this.host.name, `check ${dir}: ${r.stderr.trim()}`);
      const e = parseDirs(r.stdout).get(dir) ?? { entries: [], real: [] };
      return e;
    };
    // what a survey just saw, if there was one (the common case: no round trip at all for a folder already right)
    const pre = this.surveyed.get(dir);
    this.surveyed.delete(dir);
    let uid: string | undefined;
    if (pre) uid = pre.uid;
    else if (takeOver) uid = (await this.exec(`id -u ${quote(takeOver)} 2>/dev/null || true`)).stdout.trim() || undefined;
    const e = pre ?? await look();
    const v = dirProblem(dir, e.entries, e.real, uid ? { uid } : undefined);
    if (v.problem) throw new RemoteError(this.host.name, `refusing to write below ${dir}: ${v.problem}`);
    let changed = false;
    if (v.missing) {
      await this.run(['install', '-d', '-o', 'root', '-g', 'root', '-m', modeStr(m.mode), '--', dir]);
      changed = true;
    } else if (v.takeOver) {
      log.warn(`${dir} belongs to ${takeOver} (the recipe's chown -R): giving the folder back to root so that ${takeOver} cannot plant links where root writes; its files keep their owner`, this.host.name);
      await this.run(['chown', '-h', 'root:root', '--', dir]);
      await this.run(['chmod', modeStr(m.mode), '--', dir]);
      // and whatever that user left at the names kubetls writes (temp files, backups) goes, if it is not a plain file
      await this.run(['find', dir, '-mindepth', '1', '-maxdepth', '1', '(', '-name', '.*.kubetls-tmp', '-o', '-name', '*.bak-*', ')', '(', '-type', 'l', '-o', '!', '-user', 'root', ')', '-delete']);
      changed = true;
    }
    if (changed) {
      const again = await look();
      const w = dirProblem(dir, again.entries, again.real);
      if (w.problem || w.missing) throw new RemoteError(this.host.name, `refusing to write below ${dir}: ${w.problem ?? 'still missing'}`);
    }
    this.safe.add(dir);
    // temp files a killed or cut-off run left here (the folder is root's now, so they can only be ours): no stray key
    // copies. A survey that saw none (the folder was already root's) saves the round trip.
    if (!pre || pre.leftovers.length || changed) {
      await this.exec(`find -H ${quote(dir)} -mindepth 1 -maxdepth 1 -name '.*.kubetls-tmp' -type f -delete 2>/dev/null; true`);
    }
    this.clean.add(dir);
    return changed;
  }

  async write(file: string, content: Buffer, m: FileMode, label: string, known?: FileState): Promise<boolean> {
    return (await this.writeAll([{ file, content, mode: m, label, known }])) > 0;
  }

  async writeAll(items: WriteItem[]): Promise<number> {
    const todo: { it: WriteItem; tmp: string; backup?: string; staged?: string; hash: string }[] = [];
    for (const it of items) {
      const { file, content, mode: m } = it;
      const state = it.known !== undefined ? it.known ?? undefined : (await this.inspect([file])).get(file);
      const hash = sha256(content);
      if (state?.kind === 'file' && state.sha256 === hash && state.owner === m.owner && state.group === m.group && state.mode === m.mode) continue;
      if (state && state.kind !== 'file') throw new RemoteError(this.host.name, `${file} is ${state.kind === 'link' ? 'a symlink' : 'not a regular file'}: refusing to write through it; remove it`);
      const dir = path.posix.dirname(file);
      if (!this.safe.has(dir)) await this.ensureDir(dir, { owner: 'root', group: 'root', mode: 0o755 });
      todo.push({ it, hash, tmp: `${dir}/.${path.posix.basename(file)}.kubetls-tmp`, backup: state ? `${file}.bak-${backupStamp}` : undefined });
    }
    if (!todo.length) return 0;
    // every upload first (each one verified by the install command below, so a short upload is caught there)
    for (const w of todo) {
      const { file, content, mode: m, label } = w.it;
      const dir = path.posix.dirname(file);
      log.action(`sftp put ${label} → ${file} (${describeMode(m)}${w.backup ? `, old one kept as ${path.posix.basename(w.backup)}` : ''})`, this.host.name);
      try {
        if (this.sudo) {
          // unique per upload: two files of one batch may share a base name (the kubelet's and kube-proxy's kubeconfig)
          w.staged = `${await this.stagingDir()}/${path.posix.basename(file)}.${process.pid}.${++this.uploads}`;
          await this.sftp.put(content, w.staged, { writeStreamOptions: { mode: 0o600, flags: 'w' } });
        } else {
          // O_EXCL: never open through a name someone else made (the folder is root's, so only a leftover of ours,
          // which ensureDir removed; the rm below is for a folder this run already wrote to and failed in)
          if (!this.clean.has(dir)) {
            const rm = await this.exec(`rm -f -- ${quote(w.tmp)}`);
            if (rm.code !== 0) throw new RemoteError(this.host.name, `${w.tmp} is in the way (${rm.stderr.trim()}): remove it`);
          }
          await this.sftp.put(content, w.tmp, { writeStreamOptions: { mode: 0o600, flags: 'wx' as 'w' } });
        }
      } catch (e) {
        this.clean.delete(dir);
        await this.discard(todo);
        if (e instanceof RemoteError) throw e;
        const into = w.staged ? path.posix.dirname(w.staged) : dir;
        const full = await this.freeKiB(into, !w.staged);
        if (full !== undefined && full * 1024 < content.length) throw new RemoteError(this.host.name, `no space left on ${into}: ${file} was not replaced`);
        const code = (e as { code?: number }).code;
        throw new RemoteError(this.host.name, `upload ${file}: ${(e as Error).message.replace(/^_?\w+: /, '')}${code ? ` (sftp code ${code})` : ''}; ${file} was not replaced`);
      }
      if (faultIs('disconnect')) (this.sftp as unknown as { client: Client }).client.end();
    }
    // then one command installs them in order, each in a subshell of its own; `@@ok i` after each one that landed
    const batches = faultIs('wrote-1') && todo.length > 1 ? [todo.slice(0, 1), todo.slice(1)] : [todo];
    let done = 0;
    for (const batch of batches) {
      const script = batch.map((w, i) => `(\n${installScript(w.tmp, w.it.file, w.backup, w.it.mode, w.it.content.length, w.hash, w.staged)}\n); rc=$?; [ $rc -eq 0 ] || exit $rc; echo @@ok ${i}`).join('\n');
      let r: ExecResult;
      try {
        r = await this.exec(script);
      } catch (e) {
        // no answer (a timeout, a lost connection): any of the batch may have landed, so every one goes on the rollback
        // list (putting back a file that was never replaced only fails, harmlessly, on a backup that does not exist)
        for (const w of batch) this.writes.push({ path: w.it.file, backup: w.backup });
        await this.discard(todo.slice(done));
        throw e;
      }
      const landed = r.stdout.split('\n').filter((l) => l.startsWith('@@ok ')).length;
      for (const w of batch.slice(0, landed)) this.writes.push({ path: w.it.file, backup: w.backup });
      done += landed;
      if (r.code !== 0) {
        const failed = batch[landed]!;
        await this.discard(todo.slice(done)); // the failed one too: its temp copy may still be there
        const { file, content } = failed.it;
        const dir = path.posix.dirname(file);
        this.clean.delete(dir);
        if (r.code === SHORT_WRITE) {
          const got = /landed (\d+) of/.exec(r.stderr)?.[1];
          const free = Number(/free: (\d+) KiB/.exec(r.stderr)?.[1] ?? NaN);
          const why = free * 1024 < content.length ? `no space left on ${dir}` : `the upload to ${dir} failed`;
          throw new RemoteError(this.host.name, `${why}: ${got ?? '?'} of ${content.length} bytes of ${path.posix.basename(file)} landed; ${file} was not replaced`);
        }
        throw new RemoteError(this.host.name, `install ${file}: ${r.stderr.trim() || `exit ${r.code}`}`);
      }
      if (batch !== batches.at(-1)) faultPoint('wrote-1');
    }
    return done;
  }

  /** Remove the uploads that will not be installed (a key must not linger in a temp or staging name). */
  private async discard(items: { tmp: string; staged?: string }[]): Promise<void> {
    const staged = items.flatMap((w) => (w.staged ? [w.staged] : []));
    const tmps = items.filter((w) => !w.staged).map((w) => w.tmp);
    if (staged.length) await this.exec(`rm -f -- ${staged.map(quote).join(' ')}`, false).catch(() => undefined);
    if (tmps.length) await this.exec(`rm -f -- ${tmps.map(quote).join(' ')}`).catch(() => undefined);
  }

  /** sudo mode: remove what an earlier run left in ~/.kubetls-staging (it holds only kubetls's staged copies). */
  async cleanStaging(): Promise<void> {
    await this.exec('d="$HOME/.kubetls-staging"; [ -d "$d" ] && [ ! -L "$d" ] && find "$d" -mindepth 1 -maxdepth 1 -type f -delete; true', false);
  }

  /** Free space of the file system holding `dir`, in KiB (undefined when df cannot tell). */
  private async freeKiB(dir: string, asRoot: boolean): Promise<number | undefined> {
    const r = await this.exec(`df -Pk -- ${quote(dir)} | awk 'NR==2 {print $4}'`, asRoot).catch(() => undefined);
    const n = Number(r?.stdout.trim());
    return r && r.stdout.trim() && Number.isFinite(n) ? n : undefined;
  }

  /**
   * sudo mode: ~/.kubetls-staging, 0700, owned by the SSH user (who can become root anyway, so trusting the folder
   * gives nothing away). Leftovers of an earlier run that died are removed first: no key lingers there.
   */
  private async stagingDir(): Promise<string> {
    if (!this.staging) {
      const r = await this.exec('d="$HOME/.kubetls-staging"; if [ -L "$d" ]; then echo "$d is a symlink" >&2; exit 1; fi; mkdir -p -m 700 "$d" && chmod 700 "$d" && find "$d" -mindepth 1 -maxdepth 1 -type f -delete && cd "$d" && pwd -P', false);
      if (r.code !== 0) throw new RemoteError(this.host.name, `staging folder: ${r.stderr.trim()}`);
      this.staging = r.stdout.trim();
    }
    return this.staging;
  }

  async rollback(): Promise<void> {
    const errors: string[] = [];
    for (const w of [...this.writes].reverse()) { // every file gets its chance: one failed restore must not stop the rest
      try {
        if (w.backup) await this.run(['mv', '-fT', '--', w.backup, w.path]);
        else await this.run(['rm', '-f', '--', w.path]);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    this.writes.length = 0;
    if (errors.length) throw new RemoteError(this.host.name, `rollback incomplete: ${errors.join('; ')}`);
  }

  async close(): Promise<void> {
    await this.sftp.end().catch(() => undefined);
    for (const c of this.jumps) c.end();
  }
}

/**
 * The identity file, read once per run and judged before any host is tried (an unusable file fails every host the
 * same way; retrying it per host only hides the reason): it must be a regular file (a FIFO would block the read),
 * readable, and a key ssh2 can use. An encrypted key is left to ssh-agent, as OpenSSH does when the agent holds it;
 * without an agent, one line says how to fix it. Absent, the agent alone is used.
 */
let identity: { file: string; key?: Buffer; problem?: string } | undefined;
export function loadIdentity(file: string, agent: string | undefined): Buffer | undefined {
  if (identity?.file !== file) identity = { file, ...judgeIdentity(file, agent) };
  if (identity.problem) throw new RemoteError('-', identity.problem);
  return identity.key;
}
function judgeIdentity(file: string, agent: string | undefined): { key?: Buffer; problem?: string } {
  let st;
  try { st = statSync(file); } catch { return agent ? {} : { problem: `no SSH credential: ${file} does not exist and SSH_AUTH_SOCK is not set` }; }
  if (!st.isFile()) return { problem: `identity file ${file} is not a regular file` };
  let key: Buffer;
  try { key = readFileSync(file); } catch (e) { return { problem: `identity file ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` }; }
  const parsed = ssh2.utils.parseKey(key);
  if (!(parsed instanceof Error)) return { key };
  const encrypted = /encrypted|passphrase/i.test(parsed.message);
  if (agent) {
    log.info(`identity file ${file} ${encrypted ? 'is encrypted' : 'is not a key ssh2 can read'}: using the keys in ssh-agent`);
    return {};
  }
  return {
    problem: encrypted
      ? `identity file ${file} is encrypted and no ssh-agent is running (SSH_AUTH_SOCK is not set): run 'eval "$(ssh-agent)"; ssh-add ${file}' first`
      : `identity file ${file} is not a private key ssh2 can read: ${parsed.message}`,
  };
}

/**
 * The host-key check of one endpoint against every known_hosts file it has (the first file is where new keys go).
 * A key known, changed or revoked by plain lines is decided by them. An unknown key of a host that a `@cert-authority`
 * line matches is tried by its host certificate (lib/hostcert.ts: fetched with ssh-keyscan, since ssh2 negotiates no
 * certificate algorithms; accepted only for the key ssh2 saw the server prove). As OpenSSH does (sshconnect.c
 * check_host_key), a certificate that fails falls back to the plain-key rules, so --accept-new-host-keys may still
 * add the plain key (with a warning saying why the certificate was not used); a certificate signed by a @revoked CA
 * key is a hard refusal. Deliberately stricter than OpenSSH: a plain line with another key for the host still stops
 * it as CHANGED even when a valid certificate exists (remove the stale line). A host reached through a jump host has
 * no certificate fetched (ssh-keyscan cannot go through ProxyJump): its key must be in known_hosts.
 */
function hostVerifier(t: SshTarget, label: string, o: ConnectOptions, problem: (p: string) => void, viaJump = false): { names: string[]; types: string[]; verify: (key: Buffer, done: (ok: boolean) => void) => void } {
  const names = [...new Set([knownHosts.lookupName(t.address, t.port), knownHosts.lookupName(t.name, t.port)])];
  const files = t.knownHosts;
  const types = [...new Set(files.flatMap((f) => knownHosts.knownTypes(f, names)))];
  return {
    names,
    types,
    verify: (key: Buffer, done: (ok: boolean) => void) => {
      const verdicts = files.map((f) => ({ file: f, v: knownHosts.check(f, names, key) }));
      const fp = `${knownHosts.blobType(key)} ${knownHosts.fingerprint(key)}`;
      const bad = verdicts.find((x) => x.v.kind === 'changed' || x.v.kind === 'revoked');
      if (!bad && verdicts.some((x) => x.v.kind === 'known')) return done(true);
      const unknown = (whyNoCert?: string) => {
        const cert = whyNoCert ? `; its host certificate was not accepted: ${whyNoCert}` : '';
        if (o.acceptNewHostKeys) {
          knownHosts.add(files[0], names[0], key);
          log.warn(`added host key ${fp} for ${names[0]} to ${files[0]}${cert}`, label);
          return done(true);
        }
        problem(`host key ${fp} for ${names[0]} is not in ${files.join(' or ')}${cert}: check it, then add it (ssh-keyscan, or --accept-new-host-keys)`);
        return done(false);
      };
      if (!bad && knownHosts.hasAuthority(files, names)) {
        if (viaJump) return unknown('host certificates are not fetched through a jump host (ssh-keyscan cannot use ProxyJump), so this host key must be in known_hosts');
        const timeoutMs = Math.min(5_000, (o.readyTimeoutMs ?? 10_000) / 2); // inside ssh2's readyTimeout
        hostCert.verifyHostByCert({ address: t.address, hosts: [t.address, t.name], port: t.port, hostKey: key, files, timeoutMs })
          .then((c) => {
            if (c.ok) {
              log.info(`host key ${fp} for ${c.name} accepted by its host certificate (@cert-authority ${c.file}:${c.line})`, label);
              return done(true);
            }
            if (!c.revoked) return unknown(c.reason);
            problem(`host certificate for ${names[0]} refused: ${c.reason}`);
            return done(false);
          }, (e: Error) => unknown(e.message))
          .catch((e: Error) => { problem(`host key ${fp} for ${names[0]}: ${e.message}`); done(false); }); // e.g. known_hosts not writable
        return;
      }
      if (!bad) return unknown();
      const v = bad.v;
      problem(v.kind === 'changed'
        ? `HOST KEY CHANGED for ${names[0]}: offered ${fp}, ${bad.file}:${v.line} has ${v.expected}. Someone may be intercepting; nothing was sent. If the host was reinstalled, remove that line.`
        : `host key ${fp} for ${names[0]} is revoked (${bad.file}:${'line' in v ? v.line : '?'})`);
      return done(false);
    },
  };
}

function sshConfigFor(t: SshTarget, label: string, o: ConnectOptions, problem: (p: string) => void, sock?: NodeJS.ReadableStream): ConnectConfig {
  const hv = hostVerifier(t, label, o, problem, !!sock);
  const identity = t.identityFiles.find((f) => existsSync(f)) ?? t.identityFiles[0];
  return {
    host: t.address,
    port: t.port,
    username: t.user,
    readyTimeout: o.readyTimeoutMs ?? 10_000,
    // a peer that vanishes mid-run (host down, network cut) is noticed within a minute instead of hanging the run
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
    privateKey: loadIdentity(identity, process.env.SSH_AUTH_SOCK),
    agent: process.env.SSH_AUTH_SOCK,
    localAddress: sock ? undefined : t.bindAddress,
    sock: sock as never,
    algorithms: hv.types.length ? { serverHostKey: hv.types.flatMap((x) => (x === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [x])) as never } : undefined,
    hostVerifier: hv.verify,
  };
}

/**
 * Through the jump hosts (ssh_config's ProxyJump), outermost first: each is an SSH connection of its own, host key
 * checked like any host, and the next hop is a `direct-tcpip` channel through it (what `ssh -J` does). Returns the
 * stream to the target and the jump connections, which close with it.
 */
async function jumpTo(t: SshTarget, label: string, o: ConnectOptions): Promise<{ sock: NodeJS.ReadableStream; clients: Client[] }> {
  const clients: Client[] = [];
  let sock: NodeJS.ReadableStream | undefined;
  try {
    for (const [i, j] of t.jumps.entries()) {
      let problem: string | undefined;
      const c = new ssh2.Client();
      await new Promise<void>((resolve, reject) => {
        c.once('ready', () => resolve());
        c.once('error', (e) => reject(new RemoteError(label, problem ?? `jump host ${j.user}@${j.address}:${j.port}: ${e.message}`)));
        c.connect(sshConfigFor(j, label, o, (p) => { problem = `jump host ${j.name}: ${p}`; }, sock));
      });
      clients.push(c);
      const next = t.jumps[i + 1] ?? t;
      sock = await new Promise<NodeJS.ReadableStream>((resolve, reject) => {
        // bounded like every other step: a jump host that never answers the channel open must not hold a cron run
        const channelMs = o.channelTimeoutMs ?? o.readyTimeoutMs ?? 10_000;
        const timer = setTimeout(() => reject(new RemoteError(label, `jump host ${j.name}: no answer to opening ${next.address}:${next.port} in ${channelMs / 1000} s`, true)), channelMs);
        c.forwardOut('127.0.0.1', 0, next.address, next.port, (err, stream) => {
          clearTimeout(timer);
          if (err) reject(new RemoteError(label, `jump host ${j.name} cannot reach ${next.address}:${next.port}: ${err.message}`));
          else resolve(stream);
        });
      });
    }
    return { sock: sock!, clients };
  } catch (e) {
    for (const c of clients) c.end();
    throw e;
  }
}

/**
 * Open the one connection to a host: host key checked first, auth by key file or agent, through its jump hosts, retried
 * when dropped early. Where to connect comes from cluster.yaml, then ssh_config, then the defaults (lib/sshconfig.ts).
 */
export async function connect(inv: Inventory, host: Host, o: ConnectOptions = {}): Promise<Remote> {
  let t: SshTarget;
  try { t = sshTarget(inv, host); } catch (e) { throw new RemoteError(host.name, (e as Error).message); }
  const via = t.jumps.length ? ` via ${t.jumps.map((j) => j.name).join(' → ')}` : '';
  // an unusable identity file fails every attempt the same way: judged once, before the first, never retried
  for (const x of [...t.jumps, t]) {
    try { loadIdentity(x.identityFiles.find((f) => existsSync(f)) ?? x.identityFiles[0], process.env.SSH_AUTH_SOCK); } catch (e) { throw new RemoteError(host.name, (e as Error).message); }
  }
  const attempts = o.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    let hostKeyProblem: string | undefined;
    let jumps: Client[] = [];
    const sftp = new SftpClient(host.name, { error: () => undefined, end: () => undefined, close: () => undefined });
    try {
      let sock: NodeJS.ReadableStream | undefined;
      if (t.jumps.length) ({ sock, clients: jumps } = await jumpTo(t, host.name, o));
      const config = sshConfigFor(t, host.name, o, (p) => { hostKeyProblem = p; }, sock);
      await sftp.connect(config);
      const remote = new SshRemote(host, sftp, inv.ssh.sudo && t.user !== 'root', jumps);
      if (inv.ssh.sudo && t.user !== 'root') await remote.cleanStaging(); // a key a cut-off run staged does not wait for the next write
      return remote;
    } catch (e) {
      await sftp.end().catch(() => undefined);
      for (const c of jumps) c.end();
      if (hostKeyProblem) throw new RemoteError(host.name, hostKeyProblem);
      if (e instanceof RemoteError && !e.retriable && /jump host .*(HOST KEY|host key|is not in|revoked)/.test(e.message)) throw e;
      const msg = (e as Error).message.replace(/^connect: /, '');
      const auth = /authentication methods failed/i.test(msg);
      if (auth) throw new RemoteError(host.name, `ssh ${t.user}@${t.address}:${t.port}${via}: authentication failed (key ${t.identityFiles.find((f) => existsSync(f)) ?? t.identityFiles[0]}${process.env.SSH_AUTH_SOCK ? ' or the agent' : ''})`);
      if (attempt >= attempts) throw new RemoteError(host.name, `ssh ${t.user}@${t.address}:${t.port}${via}: ${msg} (after ${attempt} attempts)`, true);
      await sleep(200 * 2 ** (attempt - 1) + Math.floor(Math.random() * 100)); // OpenSSH MaxStartups drops early connections: back off
    }
  }
}

// ---- --dry-run ---------------------------------------------------------------------------------------------------------

/** Logs what would be done, as shell lines; connects nowhere; reports every file as absent so every write shows. */
export function dryRemote(host: Host, sudo: boolean): Remote {
  const pre = (argv: string[]) => (sudo && host.user !== 'root' ? ['sudo', '-n', ...argv] : argv);
  return {
    host,
    writes: [],
    dry: true,
    async run(argv, o) { if (!o?.quiet) log.cmd(pre(argv), host.name); return { code: 0, stdout: '', stderr: '' }; },
    async inspect(paths) { return new Map(paths.map((p) => [p, undefined])); },
    async read() { return undefined; },
    async ensureDir(dir, m) { log.cmd(pre(['install', '-d', '-o', 'root', '-g', 'root', '-m', modeStr(m.mode), '--', dir]), host.name); return true; },
    async proveDir() {},
    async survey() { return { states: new Map(), contents: new Map(), listing: [], deferred: false }; },
    async write(file, _content, m, label) { log.action(`sftp put ${label} → ${file} (${describeMode(m)})`, host.name); return true; },
    async writeAll(items) { for (const i of items) log.action(`sftp put ${i.label} → ${i.file} (${describeMode(i.mode)})`, host.name); return items.length; },
    async rollback() {},
    async close() {},
  };
}
