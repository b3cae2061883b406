#!/usr/bin/env -S npx zx
/**
 * docs/recipe.md steps 19–20 without `-k`: each minion's certificate and the token against https://MASTER:PORT, verified
 * against ca.crt; who the apiserver says they are; the served certificate; what is deployed on each host.
 *   npx zx scripts/verify.ts [--inventory cluster.yaml] [--only NAME[,NAME]] [--json] [--concurrency N]
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { common, ExitError, helpFor, intFlag, main, onlyFlag, parseFlags } from '../lib/cli.ts';
import { allHosts } from '../lib/inventory.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { configureLog, log } from '../lib/log.ts';
import { forHosts, selectHosts } from '../lib/remote/hosts.ts';
import { table } from '../lib/table.ts';
import { apiChecks, deployedChecks, modernChecks, type Result } from '../lib/verify.ts';

const USAGE = `
usage: npx zx scripts/verify.ts [options]

Checks the cluster's TLS end to end and prints one row per check; exit 0 only if every check passes.
Read-only: it changes nothing, here or on any host (so it takes no --dry-run).

${helpFor('inventory', 'only', 'concurrency', 'json', 'accept-new-host-keys')}
`;

await main(async () => {
  const { values: f } = parseFlags({
    inventory: common.inventory,
    only: common.only,
    json: common.json,
    concurrency: common.concurrency,
    'accept-new-host-keys': common['accept-new-host-keys'],
  }, USAGE);
  const only = onlyFlag(f.only, USAGE);
  const concurrency = intFlag(f.concurrency, '--concurrency', 16, USAGE);
  if (f.json) configureLog({ sink: (s) => process.stderr.write(`${s}\n`) });
  const inv = loadInventory(f.inventory);
  if (!existsSync(path.join(inv.pki.dir, 'ca.crt'))) throw new ExitError(`no PKI in ${inv.pki.dir} yet: run scripts/master.ts first`, 1);
  const hosts = selectHosts(allHosts(inv), only);
  const minions = hosts.filter((h) => h.role === 'minion');

  log.phase('the apiserver, as the recipe\'s curl commands see it (CA-verified, no -k)');
  const results: Result[] = await apiChecks(inv, minions);
  if (inv.profile === 'modern') {
    log.phase('the modern control plane: etcd, the admin kubeconfig, each component\'s identity, the kubelets');
    results.push(...await modernChecks(inv, minions));
  }
  log.phase('what is deployed on each host');
  const outcomes = await forHosts(inv, hosts, { concurrency, acceptNewHostKeys: f['accept-new-host-keys'], report: false }, async (r, step) => {
    results.push(...await step('inspect', () => deployedChecks(inv, r)));
  });
  for (const o of outcomes.filter((x) => x.failed)) results.push({ check: 'ssh', target: o.host, ok: false, detail: o.error ?? 'failed' });

  const failed = results.filter((r) => !r.ok).length;
  if (f.json) process.stdout.write(`${JSON.stringify({ apiVersion: 'kubetls/v1', kind: 'Verify', ok: failed === 0, results }, null, 2)}\n`);
  else {
    log.print(table(['CHECK', 'TARGET', 'RESULT', 'DETAIL'], results.map((r) => [r.check, r.target, r.ok ? 'ok' : 'FAIL', r.detail])));
    log.print(failed ? `${failed} of ${results.length} checks failed` : `all ${results.length} checks passed`);
  }
  return failed ? 1 : 0;
}, { json: 'Verify' });
