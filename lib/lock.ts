/**
 * One kubetls run at a time per inventory: a lock file beside cluster.yaml, created with O_EXCL, holding the PID.
 * A second run says who holds it and exits 75 (EX_TEMPFAIL: cron will try again). A lock whose PID is dead is stale:
 * it is taken over with a message. (proper-lockfile judges staleness by mtime; a PID is what an operator can check.)
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { ExitError } from './cli.ts';
import type { Inventory } from './inventory.ts';
import { log, shown } from './log.ts';

interface Holder { pid: number; host: string; since: string; command: string }

export const lockPath = (inv: Inventory) => path.join(path.dirname(inv.file), '.kubetls.lock');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the lock or throw ExitError(75). Released automatically when the process exits. */
export function acquireLock(inv: Inventory, command: string): () => void {
  const file = lockPath(inv);
  const me: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), command };
  for (let tries = 0; tries < 2; tries++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, `${JSON.stringify(me)}\n`);
      closeSync(fd);
      const release = () => {
        try {
          if ((JSON.parse(readFileSync(file, 'utf8')) as Holder).pid === process.pid) rmSync(file, { force: true });
        } catch { /* already gone */ }
      };
      process.once('exit', release);
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder: Holder | undefined;
    try { holder = JSON.parse(readFileSync(file, 'utf8')) as Holder; } catch { /* empty or torn: treat as stale */ }
    if (holder && holder.host === me.host && alive(holder.pid)) {
      throw new ExitError(`another kubetls run holds ${shown(file)}: pid ${holder.pid} (${holder.command}) since ${holder.since}; try again later`, 75);
    }
    if (holder && holder.host !== me.host) {
      throw new ExitError(`${shown(file)} is held by pid ${holder.pid} on ${holder.host} since ${holder.since}; remove it if that run is gone`, 75);
    }
    log.warn(`taking over the stale lock ${shown(file)}${holder ? ` of pid ${holder.pid} (${holder.command}, since ${holder.since}), which is no longer running` : ''}`);
    rmSync(file, { force: true });
  }
  throw new ExitError(`could not take ${shown(file)}`, 75);
}
