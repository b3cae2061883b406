#!/usr/bin/env -S npx zx
/**
 * The operator's own root (docs/own-root.md): a CA of kubetls as an intermediate under a root whose key kubetls never
 * holds, made before the first master.ts.
 *   npx zx scripts/ca.ts request NAME [--inventory cluster.yaml] [--dry-run]
 *   npx zx scripts/ca.ts import NAME --cert FILE --root FILE [--inventory cluster.yaml] [--dry-run]
 * NAME: ca (the cluster CA), and in the modern profile etcd-ca and front-proxy-ca.
 * Exit 0: done, or nothing to do · 2: refused (what is wrong is printed) · 75: another run holds the lock.
 */
import { common, helpFor, main, parseFlags, usageError } from '../lib/cli.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { acquireLock } from '../lib/lock.ts';
import { log, shown } from '../lib/log.ts';
import { caNamed, importCa, requestCa } from '../lib/pki/intermediate.ts';

const USAGE = `
usage: npx zx scripts/ca.ts request NAME [options]
       npx zx scripts/ca.ts import NAME --cert FILE --root FILE [options]

Makes kubetls's CA NAME an intermediate under your own root, whose key stays with you (docs/own-root.md).
NAME is ca, and in the modern profile also etcd-ca or front-proxy-ca.

  request            make the CA's key (pki.dir/NAME.key) and its request (pki.dir/NAME.csr) for your root to sign
  import             take the certificate your root signed and the root's certificate; check them; install them
  --cert FILE        (import) the signed certificate (it may be followed by the root's certificate)
  --root FILE        (import) your root's certificate; never its key
${helpFor('inventory', 'dry-run')}
`;

await main(async () => {
  const { values: f, positionals } = parseFlags({
    inventory: common.inventory,
    'dry-run': common['dry-run'],
    cert: { type: 'string' },
    root: { type: 'string' },
  }, USAGE, true);
  const [action, name, ...extra] = positionals;
  if (action !== 'request' && action !== 'import') usageError(action ? `unknown action '${action}': request or import` : 'no action: request or import', USAGE);
  if (!name || extra.length) usageError(`${action} takes one CA name (ca, etcd-ca, front-proxy-ca)`, USAGE);
  if (action === 'request' && (f.cert || f.root)) usageError('--cert and --root go with import', USAGE);
  if (action === 'import' && (!f.cert || !f.root)) usageError('import needs --cert FILE and --root FILE', USAGE);
  const inv = loadInventory(f.inventory);
  const ca = caNamed(inv, name);
  const dryRun = f['dry-run'];
  if (!dryRun) acquireLock(inv, `ca.ts ${action}`);
  if (action === 'request') {
    const csr = await requestCa(inv, ca, { dryRun });
    log.info(`sign ${shown(csr)} with your root as a CA certificate (basicConstraints CA:TRUE), then: npx zx scripts/ca.ts import ${ca} --cert SIGNED.crt --root ROOT.crt`);
    return 0;
  }
  const wrote = await importCa(inv, ca, { cert: f.cert!, root: f.root! }, { dryRun });
  if (wrote) log.info(`${ca} is an intermediate under your root: master.ts signs with it${dryRun ? ' (dry run: nothing written)' : ''}`);
  return 0;
});
