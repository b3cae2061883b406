/**
 * The expiry report (status.ts): one row per certificate, token and kubeconfig, local and (with --remote) deployed,
 * each with a status: ok · renew due · expired · drift: <what> · missing · not signed by CA · key mismatch.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { KUBECONFIG_PATH } from '../config/files.ts';
import type { Inventory } from './inventory.ts';
import { readKubeconfig } from './kubeconfig.ts';
import { shown } from './log.ts';
import { checkCa, checkLeaf, leafSpecs, parseCert, readToken, writeAtomic, type CertInfo, type Check } from './pki.ts';
import type { Remote } from './remote.ts';
import { pkiFilesFor, servedCert } from './rollout.ts';

export interface StatusRow {
  name: string; // ca.crt, server.crt, kubeminion1.crt, tokens.csv, kubeconfig
  where: string;
  subject: string;
  sans: string;
  notAfter?: string; // ISO
  daysLeft?: number;
  issuer: string;
  status: string;
}

const DAY = 86_400_000;
const dn = (i: CertInfo) => `${i.subject.o ? `O=${i.subject.o}, ` : ''}CN=${i.subject.cn}`;
const statusText = (c: Check) => (c.status === 'drift' ? `drift: ${c.reasons.filter((r) => !/^expires in/.test(r)).join('; ')}` : c.status);

function certRow(name: string, where: string, c: Check): StatusRow {
  const i = c.info;
  return {
    name, where, subject: i ? dn(i) : '-', sans: i?.sans.join(',') || '-', notAfter: i?.notAfter.toISOString(),
    daysLeft: c.daysLeft, issuer: i?.issuer ?? '-', status: statusText(c),
  };
}

/** What the local PKI holds, judged against the inventory and the clock. Reads only. */
export function localStatus(inv: Inventory, now = new Date()): StatusRow[] {
  const at = (f: string) => shown(path.join(inv.pki.dir, f));
  let ca: Check;
  try { ca = checkCa(inv, now); } catch (e) { ca = { status: 'key mismatch', reasons: [(e as Error).message] }; }
  const rows = [certRow('ca.crt', at('ca.crt'), ca)];
  for (const spec of leafSpecs(inv)) {
    const c = checkLeaf(inv, spec, ca.info, now);
    rows.push(certRow(`${spec.name}.crt`, at(`${spec.name}.crt`), c));
    if (spec.kind === 'minion') rows.push({ ...certRow('kubeconfig', `${spec.name}:${KUBECONFIG_PATH}`, c), name: 'kubeconfig' });
  }
  const tokenFile = path.join(inv.pki.dir, 'tokens.csv');
  const token = readToken(inv);
  rows.push({
    name: 'tokens.csv', where: at('tokens.csv'), subject: token ? 'user kubelet' : '-', sans: '-', issuer: '-',
    status: token ? 'ok' : existsSync(tokenFile) ? 'drift: malformed tokens.csv' : 'missing',
    notAfter: undefined, daysLeft: undefined,
  });
  return rows;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** --remote: each deployed copy against the local PKI (one connection per host), and each kubeconfig's embedded cert. */
export async function remoteStatus(inv: Inventory, r: Remote, now = new Date()): Promise<StatusRow[]> {
  const rows: StatusRow[] = [];
  const files = pkiFilesFor(inv, r.host).filter(([l]) => l.endsWith('.crt') || l.endsWith('.csv'));
  const state = await r.inspect(files.map(([, remote]) => remote));
  for (const [local, remote] of files) {
    const st = state.get(remote);
    const where = `${r.host.name}:${remote}`;
    const info = local.endsWith('.crt') && existsSync(local) ? parseCert(readFileSync(local)) : undefined;
    const base = { name: path.basename(local), where, subject: info ? dn(info) : '-', sans: info?.sans.join(',') || '-', issuer: info?.issuer ?? '-' };
    if (!st) { rows.push({ ...base, status: 'missing' }); continue; }
    const same = existsSync(local) && st.sha256 === sha(readFileSync(local));
    rows.push({ ...base, notAfter: info?.notAfter.toISOString(), daysLeft: info ? Math.floor((info.notAfter.getTime() - now.getTime()) / DAY) : undefined,
      status: same ? 'ok' : 'drift: differs from the local PKI' });
  }
  if (r.host.role === 'minion') {
    const where = `${r.host.name}:${KUBECONFIG_PATH}`;
    const raw = await r.read(KUBECONFIG_PATH);
    if (!raw) rows.push({ name: 'kubeconfig', where, subject: '-', sans: '-', issuer: '-', status: 'missing' });
    else {
      const kc = readKubeconfig(raw.toString());
      const info = kc.cert ? parseCert(kc.cert) : undefined;
      const local = path.join(inv.pki.dir, `${r.host.name}.crt`);
      const same = info && existsSync(local) && info.fingerprint === parseCert(readFileSync(local)).fingerprint;
      rows.push({ name: 'kubeconfig', where, subject: info ? dn(info) : '-', sans: '-', issuer: info?.issuer ?? '-',
        notAfter: info?.notAfter.toISOString(), daysLeft: info ? Math.floor((info.notAfter.getTime() - now.getTime()) / DAY) : undefined,
        status: !info ? 'drift: no client certificate' : same ? 'ok' : 'drift: embeds another certificate than the local PKI' });
    }
  }
  return rows;
}

/** The certificate 6443 serves, against the local server.crt. */
export async function servedStatus(inv: Inventory): Promise<StatusRow> {
  const where = `${inv.master.address}:${inv.apiserver.port} (served)`;
  try {
    const got = await servedCert(inv);
    const local = parseCert(readFileSync(path.join(inv.pki.dir, 'server.crt')));
    return { name: 'server.crt', where, subject: dn(local), sans: local.sans.join(','), issuer: local.issuer, notAfter: local.notAfter.toISOString(),
      daysLeft: Math.floor((local.notAfter.getTime() - Date.now()) / DAY), status: got.fingerprint === local.fingerprint ? 'ok' : `drift: serves serial ${got.serial}, local is ${local.serial}` };
  } catch (e) {
    return { name: 'server.crt', where, subject: '-', sans: '-', issuer: '-', status: `missing: ${(e as Error).message}` };
  }
}

/** Where renew.ts records the time of its last successful run (for --prometheus). */
export const lastRenewFile = (inv: Inventory) => path.join(inv.pki.dir, '.last-renew');

export function lastRenew(inv: Inventory): Date | undefined {
  const f = lastRenewFile(inv);
  return existsSync(f) ? statSync(f).mtime : undefined;
}

/** node_exporter textfile format: one series per certificate, plus the last successful renewal run. */
export function prometheus(rows: StatusRow[], last?: Date): string {
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  const labels = (r: StatusRow) => `name="${esc(r.name)}",where="${esc(r.where)}",subject="${esc(r.subject)}"`;
  const certs = rows.filter((r) => r.notAfter);
  return [
    '# HELP kubetls_certificate_not_after_seconds When the certificate expires (Unix time).',
    '# TYPE kubetls_certificate_not_after_seconds gauge',
    ...certs.map((r) => `kubetls_certificate_not_after_seconds{${labels(r)}} ${Math.floor(Date.parse(r.notAfter!) / 1000)}`),
    '# HELP kubetls_certificate_ok 1 when the certificate is in date, not due and matches the inventory.',
    '# TYPE kubetls_certificate_ok gauge',
    ...rows.map((r) => `kubetls_certificate_ok{${labels(r)},status="${esc(r.status)}"} ${r.status === 'ok' ? 1 : 0}`),
    '# HELP kubetls_renew_last_success_timestamp_seconds When scripts/renew.ts last finished without error (Unix time).',
    '# TYPE kubetls_renew_last_success_timestamp_seconds gauge',
    `kubetls_renew_last_success_timestamp_seconds ${last ? Math.floor(last.getTime() / 1000) : 0}`,
    '',
  ].join('\n');
}

export function writePrometheus(file: string, text: string): void {
  writeAtomic(file, text, 0o644);
}
