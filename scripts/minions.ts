#!/usr/bin/env -S npx zx
/**
 * SEED.md steps 14–18 on every minion: kubelet kubeconfig, /etc/kubernetes/{config,kubelet,proxy}, restart kubelet and
 * kube-proxy when (and only when) their inputs changed, then wait until both are active.
 *   npx zx scripts/minions.ts [--inventory cluster.yaml] [--dry-run] [--only NAME[,NAME]] [--concurrency N]
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { intFlag, main, parseFlags } from '../lib/cli.ts';
import { loadInventory } from '../lib/inventory.ts';
import { log } from '../lib/log.ts';
import { forHosts, minionSteps, selectHosts, summarize } from '../lib/rollout.ts';

const USAGE = `
usage: npx zx scripts/minions.ts [options]

Configures every minion to talk TLS to the apiserver: the kubelet kubeconfig (CA, the minion's certificate and key, the
token), the KUBE_MASTER / KUBELET_* / KUBE_PROXY_ARGS variables, and restarts of what changed. Run master.ts first.

  --inventory PATH   the inventory (default ./cluster.yaml)
  --dry-run          print every remote action as a shell line; connect nowhere
  --only NAME[,NAME] only these minions
  --concurrency N    hosts handled at once (default 16)
  --accept-new-host-keys  add unknown host keys to known_hosts (never replaces a changed key)
  -h, --help         this text
`;

await main(async () => {
  const { values: f } = parseFlags(process.argv.slice(2).filter((a) => a !== '--'), {
    inventory: { type: 'string', default: 'cluster.yaml' },
    'dry-run': { type: 'boolean', default: false },
    only: { type: 'string' },
    concurrency: { type: 'string' },
    'accept-new-host-keys': { type: 'boolean', default: false },
  }, USAGE);
  const concurrency = intFlag(f.concurrency, '--concurrency', 16, USAGE);
  const inv = loadInventory(f.inventory);
  const o = { dryRun: f['dry-run'], concurrency, acceptNewHostKeys: f['accept-new-host-keys'] };
  const minions = selectHosts(inv.minions, f.only);
  const missing = minions.map((m) => `${m.name}.crt`).concat('ca.crt', 'tokens.csv').filter((n) => !existsSync(path.join(inv.pki.dir, n)));
  if (missing.length && !o.dryRun) throw new Error(`${missing.join(', ')} missing in ${inv.pki.dir}: run scripts/master.ts first`);
  log.phase(`minions: SEED.md steps 14–18 (${minions.length} host(s), ${concurrency} at once)`);
  const outcomes = await forHosts(inv, minions, o, (r, step, out) => minionSteps(inv, r, step, out, o));
  const { text, code } = summarize(outcomes, o.dryRun);
  log.print(text);
  return code;
});
