/**
 * The Remote of --dry-run: logs what would be done, as shell lines; connects nowhere; reports every file as absent so
 * every write shows. A sibling of lib/remote/ssh.ts, so that the twin cannot drift unseen.
 */
import type { Host } from '../inventory.ts';
import { log } from '../log.ts';
import { describeMode, modeStr, type Remote } from './remote.ts';

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
