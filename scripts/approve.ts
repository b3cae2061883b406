#!/usr/bin/env -S npx zx
/**
 * The approver of kubelet serving certificates (docs/approve.md): every pending `kubernetes.io/kubelet-serving` CSR
 * approved when it asks for the node's own names and addresses in cluster.yaml, denied with its reason otherwise.
 *   npx zx scripts/approve.ts [--inventory cluster.yaml] [--watch [--interval SECONDS]] [--dry-run] [--json]
 * Exit 0: every pending CSR decided (denials included) · 1: the apiserver could not be asked, or refused to update a
 * CSR (the others are still decided) · 2: usage.
 * It takes no lock: it writes nothing in pki.dir, and a CSR decided twice is refused by the apiserver (409).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { common, helpFor, intFlag, main, parseFlags, usageError } from '../lib/cli.ts';
import { approvePending } from '../lib/csr/approve.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { configureLog, log } from '../lib/log.ts';

const USAGE = `
usage: npx zx scripts/approve.ts [options]

Approves the kubelets' serving-certificate requests (CSRs of kubernetes.io/kubelet-serving) that ask for the node's
own name and addresses in cluster.yaml; denies every other one with its reason (kubectl get csr shows it). It asks
the apiserver as its own identity (pki.dir/approver.crt, made by master.ts), never as admin.

  --watch            keep going: a pass every --interval seconds, longer after a failure (up to 5 minutes)
  --interval N       seconds between passes with --watch (default 10)
${helpFor('inventory', 'dry-run', 'json')}
`;

await main(async () => {
  const { values: f } = parseFlags({
    inventory: common.inventory,
    'dry-run': common['dry-run'],
    json: common.json,
    watch: { type: 'boolean', default: false },
    interval: { type: 'string' },
  }, USAGE);
  const interval = intFlag(f.interval, '--interval', 10, USAGE);
  if (f.interval && !f.watch) usageError('--interval goes with --watch', USAGE);
  if (f.json && f.watch) usageError('--json prints one pass: not with --watch', USAGE);
  if (f.json) configureLog({ sink: (s) => process.stderr.write(`${s}\n`) });
  const inv = loadInventory(f.inventory);
  if (inv.profile !== 'modern') usageError('approve needs the modern profile (the legacy kubelets have no CSR API)', USAGE);
  const once = () => approvePending(inv, { dryRun: f['dry-run'], watch: f.watch });
  if (!f.watch) {
    const out = await once();
    if (f.json) process.stdout.write(`${JSON.stringify({ apiVersion: 'kubetls/v1', kind: 'Approvals', items: out }, null, 2)}\n`);
    return out.some((x) => x.did === 'failed') ? 1 : 0;
  }
  // until stopped (systemd, or ^C): a failed pass is retried later, each time twice as late, at most 5 minutes
  let wait = interval;
  for (;;) {
    try {
      await once();
      wait = interval;
    } catch (e) {
      wait = Math.min(300, wait * 2);
      log.error(`${(e as Error).message} (next pass in ${wait} s)`);
    }
    await sleep(wait * 1000);
  }
}, { json: 'Approvals' });
