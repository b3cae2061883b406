#!/usr/bin/env -S npx zx
/**
 * The expiry report: every certificate, the token and every kubeconfig, with days left and a status.
 *   npx zx scripts/status.ts [--inventory cluster.yaml] [--remote] [--json] [--prometheus FILE]
 * Exit 0 when everything is ok, 1 when anything is due, expired, drifted or missing.
 */
import path from 'node:path';
import { caSpecs } from '../config/certs.ts';
import { common, helpFor, intFlag, main, onlyFlag, parseFlags } from '../lib/cli.ts';
import { allHosts, type Inventory } from '../lib/inventory.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { configureLog, log, shown } from '../lib/log.ts';
import { forHosts, selectHosts } from '../lib/remote/hosts.ts';
import { lastRenew } from '../lib/state.ts';
import { localStatus, prometheus, remoteStatus, servedKubelets, servedRows, type StatusRow, writePrometheus } from '../lib/status.ts';
import { fitTable, table } from '../lib/table.ts';

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
    rows.push(...await servedRows(inv), ...await servedKubelets(inv));
    const outcomes = await forHosts(inv, selectHosts(allHosts(inv), only), { concurrency, acceptNewHostKeys: f['accept-new-host-keys'], report: false },
      async (r, step) => { rows.push(...await step('read', () => remoteStatus(inv, r))); });
    for (const o of outcomes.filter((x) => x.failed)) rows.push({ name: '-', where: o.host, subject: '-', sans: '-', issuer: '-', status: `unreachable: ${o.error}` });
    // a kubeconfig row computed from the local PKI gives way to the row read on its host: one row (and one series) per place
    const read = new Set(rows.filter((r, i) => i >= localCount).map((r) => r.where));
    rows.splice(0, localCount, ...rows.slice(0, localCount).filter((r) => !read.has(r.where)));
  }
  if (f.prometheus) writePrometheus(f.prometheus, prometheus(rows, lastRenew(inv)));
  const bad = rows.filter((r) => r.status !== 'ok');
  // versioned, so that a consumer can tell a later shape apart (docs/recipe.md: --json)
  if (f.json) process.stdout.write(`${JSON.stringify({ apiVersion: 'kubetls/v1', kind: 'Status', ok: bad.length === 0, rows }, null, 2)}\n`);
  else printTable(inv, rows, f.wide, bad.length);
  return bad.length ? 1 : 0;
}, { json: 'Status' });

/**
 * kubeadm's `certs check-expiration` layout: the certificates, then the CAs in a table of their own; --wide adds the
 * subject and the SANs.
 *
 * Under 120 columns whatever the paths: pki.dir and pki.remote_dir are printed once, under the table, and
 * never in a row. CERTIFICATE is the file's name in its folder (pki.dir; on a host pki.remote_dir, or the full path of
 * a file kept elsewhere such as /var/lib/kubelet/kubeconfig) and WHERE is `local`, the host, or the address that
 * served it: the name and the host are what `renew --cert`/`--only` and `ssh` take, so that is what a row keeps. Only
 * a name or host too long for the rest is cut, with `…` in the middle (its start and end tell it apart; two names are
 * never cut to the same text), and the table then says that --wide and --json show it whole. A status's reason is
 * never cut (it says what to do; such a row may pass 120 columns by its length), but a folder in it is shortened to
 * `…/<last folder>/`. --wide cuts nothing and may pass 120 columns: it is for a wide terminal or a pager.
 */
function printTable(inv: Inventory, rows: StatusRow[], wide: boolean, bad: number): void {
  const home = shown(inv.pki.dir);
  const local = (r: StatusRow) => r.where === shown(path.join(inv.pki.dir, r.name));
  let remoteDirUsed = false;
  // [CERTIFICATE, WHERE] as shown: `host:/path` rows are a file on that host (host names are DNS labels: no colon)
  const place = (r: StatusRow): [string, string] => {
    if (local(r)) return [r.name, 'local'];
    const on = /^([a-z0-9-]+):(\/.*)$/.exec(r.where);
    if (!on) return [r.name, r.where];
    const inRemote = on[2].startsWith(`${inv.pki.remoteDir}/`);
    remoteDirUsed ||= inRemote;
    return [inRemote ? on[2].slice(inv.pki.remoteDir.length + 1) : on[2], on[1]];
  };
  const folders = [home, inv.pki.remoteDir].filter((d) => d.includes('/')).sort((a, b) => b.length - a.length);
  const inFolder = new RegExp(folders.map((d) => `${d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/`).join('|'), 'g');
  const status = (r: StatusRow) => (folders.length ? r.status.replace(inFolder, (d) => `…/${path.basename(d)}/`) : r.status);
  const authority = (issuer: string) => caSpecs(inv).find((c) => issuer === `CN=${c.cn}`)?.name ?? issuer;
  const isCa = (r: StatusRow) => /^(ca|etcd-ca|front-proxy-ca)(\.root)?\.crt$/.test(r.name) && local(r);
  const expires = (r: StatusRow) => (r.notAfter ? new Date(r.notAfter).toUTCString().replace(/^\w+, (\d+) (\w+) (\d+) (\d\d:\d\d):\d\d GMT$/, '$2 $1, $3 $4 UTC') : '-');
  const residual = (r: StatusRow) => (r.daysLeft === undefined ? '-' : r.daysLeft >= 365 ? `${Math.floor(r.daysLeft / 365)}y` : `${r.daysLeft}d`);
  const certs = rows.filter((r) => !isCa(r));
  const cells = certs.map((r) => [...place(r), expires(r), residual(r), r.issuer === '-' ? '-' : authority(r.issuer), status(r), ...(wide ? [r.subject, r.sans] : [])]);
  // room for the status words shown (`ok` … `not signed by CA`); a reason after `:` is not made room for: its row runs
  // past 120 columns rather than cutting the names of every row for it
  const words = Math.max('STATUS'.length, ...cells.map((c) => c[5]).filter((s) => !s.includes(':')).map((s) => s.length));
  const fit = wide ? undefined : { width: 119, cut: [0, 1, 4], last: words };
  const t = fitTable(['CERTIFICATE', 'WHERE', 'EXPIRES', 'RESIDUAL TIME', 'AUTHORITY', 'STATUS', ...(wide ? ['SUBJECT', 'SANS'] : [])], cells, fit);
  log.print(t.text);
  // under the table, not above it (the table stays the first thing printed, as in kubeadm), and whole, so that it can be
  // copied: the one line that passes 120 columns, for a folder longer than about 105 characters
  log.print(`local: ${home}`);
  if (remoteDirUsed) log.print(`on a host: ${inv.pki.remoteDir}`);
  if (t.cut) log.print('…: cut to fit 120 columns; --wide and --json show every name in full');
  log.print('');
  log.print(table(['CERTIFICATE AUTHORITY', 'EXPIRES', 'RESIDUAL TIME', 'STATUS'], rows.filter(isCa).map((r) => [r.name.replace(/\.crt$/, ''), expires(r), residual(r), status(r)])));
  log.print(bad ? `${bad} of ${rows.length} need attention` : `all ${rows.length} ok`);
}
