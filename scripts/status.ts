#!/usr/bin/env -S npx zx
/**
 * The expiry report: every certificate, the token and every kubeconfig, with days left and a status.
 *   npx zx scripts/status.ts [--inventory cluster.yaml] [--remote] [--json] [--prometheus FILE]
 * Exit 0 when everything is ok, 1 when anything is due, expired, drifted or missing.
 */
import { common, helpFor, intFlag, main, onlyFlag, parseFlags } from '../lib/cli.ts';
import { allHosts, loadInventory } from '../lib/inventory.ts';
import { configureLog, log } from '../lib/log.ts';
import { forHosts, selectHosts } from '../lib/rollout.ts';
import { lastRenew, localStatus, prometheus, remoteStatus, servedKubelets, servedStatus, writePrometheus, type StatusRow } from '../lib/status.ts';
import { caSpecs } from '../lib/pki.ts';
import { table } from '../lib/table.ts';

const USAGE = `
usage: npx zx scripts/status.ts [options]

Read-only: it changes nothing on any host, and here writes only the --prometheus file (so it takes no --dry-run).

  --remote           also read what is deployed on each host (one SSH connection per host) and what 6443 serves
  --prometheus FILE  also write node_exporter textfile metrics to FILE (atomically)
  --wide             also show each certificate's subject and SANs
${helpFor('inventory', 'only', 'concurrency', 'json', 'accept-new-host-keys')}
`;

await main(async () => {
  const { values: f } = parseFlags({
    inventory: common.inventory,
    remote: { type: 'boolean', default: false },
    only: common.only,
    json: common.json,
    prometheus: { type: 'string' },
    wide: { type: 'boolean', default: false },
    concurrency: common.concurrency,
    'accept-new-host-keys': common['accept-new-host-keys'],
  }, USAGE);
  const only = onlyFlag(f.only, USAGE);
  const concurrency = intFlag(f.concurrency, '--concurrency', 16, USAGE);
  if (f.json) configureLog({ sink: (s) => process.stderr.write(`${s}\n`) });
  const inv = loadInventory(f.inventory);
  const rows: StatusRow[] = localStatus(inv);
  const localCount = rows.length;
  if (f.remote) {
    rows.push(await servedStatus(inv), ...await servedKubelets(inv));
    const outcomes = await forHosts(inv, selectHosts(allHosts(inv), only), { concurrency, acceptNewHostKeys: f['accept-new-host-keys'], report: false },
      async (r, step) => { rows.push(...await step('read', () => remoteStatus(inv, r))); });
    for (const o of outcomes.filter((x) => x.failed)) rows.push({ name: '-', where: o.host, subject: '-', sans: '-', issuer: '-', status: `unreachable: ${o.error}` });
    // a kubeconfig row computed from the local PKI gives way to the row read on its host: one row (and one series) per place
    const read = new Set(rows.filter((r, i) => i >= localCount).map((r) => r.where));
    rows.splice(0, localCount, ...rows.slice(0, localCount).filter((r) => !read.has(r.where)));
  }
  if (f.prometheus) writePrometheus(f.prometheus, prometheus(rows, lastRenew(inv)));
  const bad = rows.filter((r) => r.status !== 'ok');
  // versioned, so that a consumer can tell a later shape apart (README: --json)
  if (f.json) process.stdout.write(`${JSON.stringify({ apiVersion: 'kubetls/v1', kind: 'Status', ok: bad.length === 0, rows }, null, 2)}\n`);
  else {
    // kubeadm's `certs check-expiration` layout: the certificates, then the CAs in a table of their own; --wide adds
    // the subject and the SANs
    const authority = (issuer: string) => caSpecs(inv).find((c) => issuer === `CN=${c.cn}`)?.name ?? issuer;
    const isCa = (r: StatusRow) => /^(ca|etcd-ca|front-proxy-ca)\.crt$/.test(r.name) && !r.where.includes(':');
    const expires = (r: StatusRow) => (r.notAfter ? new Date(r.notAfter).toUTCString().replace(/^\w+, (\d+) (\w+) (\d+) (\d\d:\d\d):\d\d GMT$/, '$2 $1, $3 $4 UTC') : '-');
    const residual = (r: StatusRow) => (r.daysLeft === undefined ? '-' : r.daysLeft >= 365 ? `${Math.floor(r.daysLeft / 365)}y` : `${r.daysLeft}d`);
    const certs = rows.filter((r) => !isCa(r));
    log.print(table(['CERTIFICATE', 'WHERE', 'EXPIRES', 'RESIDUAL TIME', 'AUTHORITY', 'STATUS', ...(f.wide ? ['SUBJECT', 'SANS'] : [])],
      certs.map((r) => [r.name, r.where, expires(r), residual(r), r.issuer === '-' ? '-' : authority(r.issuer), r.status, ...(f.wide ? [r.subject, r.sans] : [])])));
    log.print('');
    log.print(table(['CERTIFICATE AUTHORITY', 'EXPIRES', 'RESIDUAL TIME', 'STATUS'], rows.filter(isCa).map((r) => [r.name.replace(/\.crt$/, ''), expires(r), residual(r), r.status])));
    log.print(bad.length ? `${bad.length} of ${rows.length} need attention` : `all ${rows.length} ok`);
  }
  return bad.length ? 1 : 0;
});
