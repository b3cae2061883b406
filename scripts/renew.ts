#!/usr/bin/env -S npx zx
/**
 * Made for cron: renew what is due, roll it out to exactly the hosts it touches, health-gated, rolled back on failure.
 *   npx zx scripts/renew.ts [--inventory cluster.yaml] [--quiet] [--dry-run] [--json] [--only HOST,…] [--cert NAME,… [--force]]
 *   npx zx scripts/renew.ts --rotate-ca cluster|etcd|front-proxy|service-account|all [--force] [--drop-now]   (lib/rotate.ts)
 * Exit 0: nothing due, or renewed and verified · 1: something failed, or the CA is inside its window · 75: locked, or a
 * CA rotation waits: before its phase 5, or in its phase 1 for the operator's root to sign (run it again later).
 */
import { common, helpFor, intFlag, main, onlyFlag, parseFlags, usageError } from '../lib/cli.ts';
import { allHosts, kubeletApi } from '../lib/inventory.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { acquireLock } from '../lib/lock.ts';
import { configureLog, holdLog, releaseLog } from '../lib/log.ts';
import { tightenModes } from '../lib/pki/dir.ts';
import { selectHosts } from '../lib/remote/hosts.ts';
import { renew } from '../lib/renew.ts';
import { rotateCa } from '../lib/rotate.ts';
import { recordSuccess, ROTATE_NAMES } from '../lib/state.ts';

const USAGE = `
usage: npx zx scripts/renew.ts [options]

Checks every leaf certificate; when nothing is due prints one line and exits 0. Otherwise reissues what is due or
drifted (same CA, new keys), installs it on the hosts it touches, restarts their services, waits until the new
certificates are served and accepted, and rolls a host back if they are not.

  --quiet            print nothing unless something was renewed or failed (cron mails only then)
  --cert NAME[,NAME] only these certificates (file base names: server, kubeminion1, apiserver-etcd-client, tokens …)
  --force            with --cert: renew them now even when they are not due (kubeadm certs renew);
                     with --rotate-ca: rotate again although the same rotation finished before
  --rotate-ca NAME   replace a CA without a refused request: cluster (ca), etcd (etcd-ca), front-proxy
                     (front-proxy-ca), service-account (sa.key) or all. In five phases recorded in pki.dir: new CA,
                     trust bundles (old + new) everywhere, every leaf reissued and rolled out, verified with the new
                     CA only, old CA dropped. Run it again after a failure or a kill: it resumes. Modern profile.
                     With the service-account key, phase 5 waits an hour after phase 3 (exit 75 until then: run
                     again later) so that every pod's token is renewed with the new key first. A CA that is an
                     intermediate under your own root waits in phase 1 (exit 75) until ca.ts import brought the
                     next one, signed by that root (docs/own-root.md).
  --drop-now         with --rotate-ca: drop the old service-account key without that wait
${helpFor('inventory', 'dry-run', 'only', 'json', 'concurrency', 'accept-new-host-keys')}

  --only limits the run to what reaches those hosts; other hosts a renewed file reaches are finished by the next run.
  --dry-run lists what would be renewed, where each file would be installed and which units would restart.
`;

await main(async () => {
  const { values: f } = parseFlags({
    inventory: common.inventory,
    quiet: { type: 'boolean', default: false },
    'dry-run': common['dry-run'],
    concurrency: common.concurrency,
    'accept-new-host-keys': common['accept-new-host-keys'],
    only: common.only,
    json: common.json,
    cert: { type: 'string' },
    force: { type: 'boolean', default: false },
    'rotate-ca': { type: 'string' },
    'drop-now': { type: 'boolean', default: false },
  }, USAGE);
  const concurrency = intFlag(f.concurrency, '--concurrency', 16, USAGE);
  const only = onlyFlag(f.only, USAGE);
  const certs = onlyFlag(f.cert, USAGE.replace('--only', '--cert'));
  const rotate = f['rotate-ca'];
  if (f.force && !certs && rotate === undefined) usageError('--force goes with --cert NAME[,NAME] or --rotate-ca NAME', USAGE);
  // a rotation is every host or none: a phase ends only when every host reached it
  if (rotate !== undefined && (only || certs)) usageError(`--rotate-ca cannot be combined with ${only ? '--only' : '--cert'}: every host takes part in every phase`, USAGE);
  if (f['drop-now'] && rotate === undefined) usageError('--drop-now goes with --rotate-ca NAME', USAGE);
  if (rotate !== undefined && !(rotate in ROTATE_NAMES)) usageError(`--rotate-ca expects one of ${Object.keys(ROTATE_NAMES).join(', ')}, found '${rotate}'`, USAGE);
  if (f.json) configureLog({ sink: (line) => process.stderr.write(`${line}\n`) });
  const inv = loadInventory(f.inventory);
  if (only) selectHosts(allHosts(inv), only); // unknown host: exit 2
  // the kubelets' own certificates would keep the old CA until each rotates by itself (70–90 % of its life): a phase
  // that drops the old CA would cut them off. Refused, not half done: switch to push for the rotation, then back
  if (rotate !== undefined && kubeletApi(inv) && ROTATE_NAMES[rotate]!.includes('ca')) {
    usageError(`--rotate-ca ${rotate} with kubelet.certificates: api: the kubelets' own certificates would still be the old CA's when it goes. `
      + 'Set kubelet.certificates: push, run master.ts and minions.ts, rotate, then switch back', USAGE);
  }
  if (f.quiet) holdLog();
  let result;
  let fixedModes: string[] = [];
  try {
    if (!f['dry-run']) acquireLock(inv, 'renew.ts');
    fixedModes = tightenModes(inv, f['dry-run']); // a key or token others can read is set back to 0600; cron mails it
    const o = { dryRun: f['dry-run'], concurrency, acceptNewHostKeys: f['accept-new-host-keys'] };
    if (rotate !== undefined) result = await rotateCa(inv, o, { what: rotate, force: f.force, dropNow: f['drop-now'] });
    // during an unfinished CA rotation a plain renew renews what the rotation does not touch, and says how to finish it
    else result = await renew(inv, o, { certs: certs?.split(','), force: f.force, only: only?.split(',') });
  } catch (e) {
    if (f.quiet) releaseLog(true);
    throw e;
  }
  if (f.quiet) releaseLog(result.happened || result.code !== 0 || fixedModes.length > 0);
  if (result.code === 0 && !f['dry-run']) recordSuccess(inv);
  if (f.json) {
    process.stdout.write(`${JSON.stringify({
      apiVersion: 'kubetls/v1', kind: 'RenewResult', ok: result.code === 0, dryRun: f['dry-run'], renewed: result.renewed,
      hosts: result.outcomes.map((x) => ({ host: x.host, ok: !x.failed, done: x.done, failedStep: x.failed ?? null, error: x.error ?? null, written: x.writes, restarted: x.restarts })),
    }, null, 2)}\n`);
  }
  return result.code;
}, { json: 'RenewResult' });
