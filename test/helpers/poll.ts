/** A client that polls: the zero-failure claims of test/ha.test.ts and test/rotate.test.ts count with it. */
import { setTimeout as sleep } from 'node:timers/promises';

export interface PollCounts { ok: number; failed: number; errors: string[] }

/**
 * Every 100 ms, `once()` makes one request and says what went wrong (undefined: it succeeded). Bounded: it stops by
 * itself after `maxMs`. `stop()` gives what it counted, and the first five errors with their time.
 */
export function pollEvery(once: () => Promise<string | undefined>, maxMs = 10 * 60_000) {
  const counts: PollCounts = { ok: 0, failed: 0, errors: [] };
  let stopped = false;
  const end = Date.now() + maxMs;
  const loop = (async () => {
    while (!stopped && Date.now() < end) {
      const t0 = Date.now();
      const error = await once();
      if (error === undefined) counts.ok++;
      else {
        counts.failed++;
        if (counts.errors.length < 5) counts.errors.push(`${new Date().toISOString()} ${error}`);
      }
      await sleep(Math.max(0, 100 - (Date.now() - t0)));
    }
  })();
  return { stop: async (): Promise<PollCounts> => { stopped = true; await loop; return counts; } };
}
