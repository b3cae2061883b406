/**
 * Many hosts at once: one connection per host (lib/remote/connect.ts, or the dry-run twin), at most `concurrency` at
 * a time, each host's steps counted and shown as progress on a terminal; a failing host stops only itself. Then one
 * summary row per host and the exit code. The control plane's one-at-a-time roll is lib/rollout/roll.ts.
 *
 *   forHosts(inv, hosts, opts, async (r, step, out) => { … })
 */
import pLimit from 'p-limit';
import { ExitError } from '../cli.ts';
import type { Host, Inventory } from '../inventory.ts';
import { log } from '../log.ts';
import { table } from '../table.ts';
import { connect } from './connect.ts';
import { dryRemote } from './dry.ts';
import type { Remote } from './remote.ts';

export interface RolloutOptions {
  dryRun?: boolean;
  concurrency?: number;
  acceptNewHostKeys?: boolean;
  /** false for read-only passes (verify, status): no per-host "done" line */
  report?: boolean;
  /** --replace-ca: send the local CA to hosts that hold another one (see checkSameCa) */
  replaceCa?: boolean;
  /** no error line for a host that fails (a probe whose failure the caller reports in its own words) */
  quiet?: boolean;
}

export interface HostOutcome {
  host: string;
  done: string[]; // steps finished
  failed?: string; // the step that failed
  error?: string;
  writes: number; // files written
  restarts: string[]; // units restarted
  /**
   * Paths whose backups (`<path>.bak-*`) go once the host's whole job succeeded (withRollback): files a switch of
   * kubelet.certificates retired, which must not linger as copies (a node's key among them)
   */
  dropBackups?: string[];
}

export type Step = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

/** Run `fn` on every host with one connection each, at most `concurrency` at once; a failing host stops only itself. */
export async function forHosts(inv: Inventory, hosts: Host[], o: RolloutOptions,
  fn: (r: Remote, step: Step, out: HostOutcome) => Promise<void>): Promise<HostOutcome[]> {
  const limit = pLimit(o.concurrency ?? 16);
  return Promise.all(hosts.map((host) => limit(async () => {
    const out: HostOutcome = { host: host.name, done: [], writes: 0, restarts: [] };
    let current = 'connect';
    const step: Step = async (name, f) => {
      current = name;
      if (log.tty) log.info(`▸ ${name}${out.done.length ? ` (${out.done.length} done)` : ''}`, host.name); // progress per host on a terminal
      const v = await f();
      out.done.push(name);
      return v;
    };
    let r: Remote | undefined;
    try {
      r = o.dryRun ? dryRemote(host, inv.ssh.sudo) : await connect(inv, host, { acceptNewHostKeys: o.acceptNewHostKeys });
      await fn(r, step, out);
      if (!o.dryRun && o.report !== false) log.info(out.writes || out.restarts.length ? `done: ${out.writes} file(s) written, ${out.restarts.length} restart(s)` : 'done: already up to date', host.name);
    } catch (e) {
      out.failed = current;
      out.error = (e as Error).message;
      if (!o.quiet) log.error(`${current}: ${out.error}`, host.name);
    } finally {
      await r?.close();
    }
    return out;
  })));
}


/** Hosts selected by --only (names checked against the inventory). */
export function selectHosts(all: Host[], only?: string): Host[] {
  if (!only) return all;
  const names = only.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !all.some((h) => h.name === n));
  if (unknown.length) throw new ExitError(`--only names hosts not in the inventory: ${unknown.join(', ')}`, 2);
  return all.filter((h) => names.includes(h.name));
}

/** The per-host summary table and the exit code: 0 when every host finished. */
export function summarize(outcomes: HostOutcome[], dryRun = false): { text: string; code: number } {
  const rows = outcomes.map((o) => [o.host, o.failed ? 'FAILED' : 'ok', o.done.join(', ') || '-', o.failed ?? '-', o.error ?? '']);
  const writes = outcomes.reduce((n, o) => n + o.writes, 0);
  const restarts = outcomes.reduce((n, o) => n + o.restarts.length, 0);
  const failed = outcomes.filter((o) => o.failed).length;
  const tail = dryRun
    ? 'dry run: nothing was written, no host was contacted'
    : writes === 0 && restarts === 0 && !failed
      ? 'nothing to do: every host already up to date (0 files written, 0 restarts)'
      : `${writes} file(s) written, ${restarts} restart(s)${failed ? `; ${failed} host(s) failed: rerun to finish them` : ''}`;
  return { text: `${table(['HOST', 'RESULT', 'STEPS DONE', 'FAILED STEP', 'ERROR'], rows)}\n${tail}`, code: failed ? 1 : 0 };
}
