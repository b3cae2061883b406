#!/usr/bin/env -S npx zx
/**
 * SEED.md steps 1–13: build or refresh the PKI, then put it on the master and the minions.
 *   npx zx scripts/master.ts [--inventory cluster.yaml] [--pki-only] [--dry-run] [--only NAME[,NAME]] [--concurrency N]
 */
import { common, helpFor, intFlag, main, parseFlags, usageError } from '../lib/cli.ts';
import { allHosts, loadInventory } from '../lib/inventory.ts';
import { acquireLock } from '../lib/lock.ts';
import { log } from '../lib/log.ts';
import { applyPki, planPki, summary } from '../lib/pki.ts';
import { forHosts, masterSteps, pkiToMinion, selectHosts, summarize } from '../lib/rollout.ts';
import { table } from '../lib/table.ts';

const USAGE = `
usage: npx zx scripts/master.ts [options]

Builds the cluster's PKI with openssl in pki.dir (CA, apiserver cert, token, one cert per minion), then installs it
on the master and the minions and restarts what changed.

  --pki-only         build/refresh the local PKI only; no SSH
${helpFor('inventory', 'dry-run', 'only', 'concurrency', 'accept-new-host-keys')}
`;

await main(async () => {
  const { values: f } = parseFlags({
    inventory: common.inventory,
    'pki-only': { type: 'boolean', default: false },
    'dry-run': common['dry-run'],
    only: common.only,
    concurrency: common.concurrency,
    'accept-new-host-keys': common['accept-new-host-keys'],
  }, USAGE);
  if (f['pki-only'] && f.only) usageError('--pki-only and --only cannot be used together', USAGE);
  const concurrency = intFlag(f.concurrency, '--concurrency', 16, USAGE);
  const inv = loadInventory(f.inventory);
  const dryRun = f['dry-run'];
  if (!dryRun) acquireLock(inv, 'master.ts'); // one writer at a time: renew.ts from cron may be running

  const plan = planPki(inv);
  log.phase(`PKI in ${inv.pki.dir} (${inv.profile} profile)`);
  await applyPki(inv, plan, { dryRun });
  if (plan.ca.status !== 'ok' && plan.ca.status !== 'missing') log.warn(`${plan.ca.reasons.join('; ')}: kubetls never renews the CA by itself; plan a CA rotation now`);
  for (const o of plan.orphans) log.warn(`${o} belongs to no host of the inventory: kept (delete it by hand if the minion is gone)`);
  const rows = summary(inv, plan, dryRun);
  log.print(table(['FILE', 'SUBJECT', 'SANS', 'NOT AFTER', 'ACTION'], rows.map((r) => [r.file, r.subject, r.sans, r.notAfter, r.action])));
  const changed = plan.items.some((i) => i.action !== 'keep');
  log.print(changed ? (dryRun ? 'dry run: nothing was written' : `PKI ready in ${inv.pki.dir}`) : 'PKI: nothing to do');
  if (f['pki-only']) return 0;

  const o = { dryRun, concurrency, acceptNewHostKeys: f['accept-new-host-keys'] };
  const hosts = selectHosts(allHosts(inv), f.only);
  const outcomes = [];
  if (hosts.includes(inv.master)) {
    log.phase(`master ${inv.master.name}: SEED.md steps 7, 9–11`);
    outcomes.push(...await forHosts(inv, [inv.master], o, (r, step, out) => masterSteps(inv, r, step, out, o)));
  }
  const minions = hosts.filter((h) => h.role === 'minion');
  if (minions.length) {
    log.phase(`minions: SEED.md step 13 (${minions.length} host(s), ${concurrency} at once)`);
    outcomes.push(...await forHosts(inv, minions, o, (r, step, out) => pkiToMinion(inv, r, step, out)));
  }
  const { text, code } = summarize(outcomes, dryRun);
  log.print(text);
  return code;
});
