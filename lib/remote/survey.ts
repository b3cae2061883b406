/**
 * The scripts run on the far side to look at a host (POSIX sh; every value passes through lib/sh.ts quote()), and the
 * parsers of their answers. The survey asks everything a rollout needs in ONE round trip (docs/speed.md); the rule
 * for folders root may write below is dirProblem's.
 */
import path from 'node:path';
import { quote } from '../sh.ts';
import { MAX_READ, modeStr, RemoteError, type FileState, type Survey, type SurveyQuery } from './remote.ts';


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

export interface DirEntry { uid: string; gid: string; mode: number; type: string; path: string }

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
