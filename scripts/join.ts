#!/usr/bin/env -S npx zx
/**
 * A node joins by bootstrap token (kubelet.certificates: api): what minions.ts does for one node, named on the command
 * line, which must be a minion of cluster.yaml. Its kubelet makes its own key, gets its client certificate through
 * the CSR API with a short-lived token (lib/join.ts) and its serving certificate approved by cluster.yaml's rules;
 * the token is deleted once the node registered. kubetls holds no key of the node, before or after.
 *   npx zx scripts/join.ts NODE [--inventory cluster.yaml] [--dry-run]
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { common, helpFor, main, parseFlags, usageError } from '../lib/cli.ts';
import { kubeletApi } from '../lib/inventory.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { TOKEN_MINUTES } from '../lib/join.ts';
import { acquireLock } from '../lib/lock.ts';
import { log } from '../lib/log.ts';
import { forHosts, summarize } from '../lib/remote/hosts.ts';
import { withRollback } from '../lib/rollout/converge.ts';
import { minionSteps } from '../lib/rollout/steps.ts';
import { recordOwed, recordRollout, refuseDuringRotation } from '../lib/state.ts';

const USAGE = `
usage: npx zx scripts/join.ts NODE [options]

Joins NODE, a minion of cluster.yaml (kubelet.certificates: api), by bootstrap token: a token in kube-system that lives
${TOKEN_MINUTES} minutes, a bootstrap kubeconfig on the node, the kubelet restarted; its client certificate is signed by
the controller-manager, its serving certificate approved by cluster.yaml's rules; the token is deleted once the node
registered. A node that already has a valid client certificate of its own is not joined again. Run master.ts first.
${helpFor('inventory', 'dry-run', 'accept-new-host-keys')}
`;

await main(async () => {
  const { values: f, positionals } = parseFlags({
    inventory: common.inventory,
    'dry-run': common['dry-run'],
    'accept-new-host-keys': common['accept-new-host-keys'],
  }, USAGE, true);
  const [name, ...extra] = positionals;
  if (!name || extra.length) usageError('join takes one node name (a minion of cluster.yaml)', USAGE);
  const inv = loadInventory(f.inventory);
  const node = inv.minions.find((m) => m.name === name);
  if (!node) usageError(`'${name}' is not a minion of ${inv.file}: add it under minions: first`, USAGE);
  if (!kubeletApi(inv)) usageError('join needs kubelet.certificates: api in cluster.yaml (with push, master.ts and minions.ts install a node)', USAGE);
  const o = { dryRun: f['dry-run'], concurrency: 1, acceptNewHostKeys: f['accept-new-host-keys'] };
  if (!o.dryRun) acquireLock(inv, 'join.ts');
  refuseDuringRotation(inv, 'join.ts');
  const missing = ['ca.crt', 'admin.crt', 'approver.crt', 'kube-proxy.crt'].filter((n) => !existsSync(path.join(inv.pki.dir, n)));
  if (missing.length && !o.dryRun) throw new Error(`${missing.join(', ')} missing in ${inv.pki.dir}: run scripts/master.ts first`);
  recordOwed(inv, [node!.name], o.dryRun); // a run killed anywhere is finished by renew.ts (or the next join)
  log.phase(`join ${node!.name}: a bootstrap token, its kubelet's own certificates`);
  const outcomes = await forHosts(inv, [node!], o, (r, step, out) => withRollback(inv, r, out, o, () => minionSteps(inv, r, step, out, o)));
  recordRollout(inv, outcomes, o.dryRun, () => true);
  const { text, code } = summarize(outcomes, o.dryRun);
  log.print(text);
  return code;
});
