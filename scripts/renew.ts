#!/usr/bin/env -S npx zx
/**
 * Made for cron: renew what is due, roll it out to exactly the hosts it touches, health-gated, rolled back on failure.
 *   npx zx scripts/renew.ts [--inventory cluster.yaml] [--quiet] [--dry-run] [--concurrency N]
 * Exit 0: nothing due, or renewed and verified · 1: something failed, or the CA is inside its window · 75: locked.
 */
import { common, helpFor, intFlag, main, parseFlags } from '../lib/cli.ts';
import { loadInventory } from '../lib/inventory.ts';
import { acquireLock } from '../lib/lock.ts';
import { holdLog, releaseLog } from '../lib/log.ts';
import { tightenModes } from '../lib/pki.ts';
import { recordSuccess, renew } from '../lib/renew.ts';

const USAGE = `
usage: npx zx scripts/renew.ts [options]

Checks every leaf certificate; when nothing is due prints one line and exits 0. Otherwise reissues what is due or
drifted (same CA, new keys), installs it on the hosts it touches, restarts their services, waits until the new
certificates are served and accepted, and rolls a host back if they are not.

  --quiet            print nothing unless something was renewed or failed (cron mails only then)
${helpFor('inventory', 'dry-run', 'concurrency', 'accept-new-host-keys')}
`;

await main(async () => {
  const { values: f } = parseFlags({
    inventory: common.inventory,
    quiet: { type: 'boolean', default: false },
    'dry-run': common['dry-run'],
    concurrency: common.concurrency,
    'accept-new-host-keys': common['accept-new-host-keys'],
  }, USAGE);
  const concurrency = intFlag(f.concurrency, '--concurrency', 16, USAGE);
  const inv = loadInventory(f.inventory);
  if (f.quiet) holdLog();
  let result;
  let fixedModes: string[] = [];
  try {
    if (!f['dry-run']) acquireLock(inv, 'renew.ts');
    fixedModes = tightenModes(inv, f['dry-run']); // a key or token others can read is set back to 0600; cron mails it
    result = await renew(inv, { dryRun: f['dry-run'], concurrency, acceptNewHostKeys: f['accept-new-host-keys'] });
  } catch (e) {
    if (f.quiet) releaseLog(true);
    throw e;
  }
  if (f.quiet) releaseLog(result.happened || result.code !== 0 || fixedModes.length > 0);
  if (result.code === 0 && !f['dry-run']) recordSuccess(inv);
  return result.code;
});
