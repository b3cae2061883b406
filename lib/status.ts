/**
 * The expiry report (status.ts): one row per certificate, token and kubeconfig, local and (with --remote) deployed,
 * each with a status: ok · renew due · expired · drift: <what> · missing · not signed by CA · key mismatch ·
 * unreadable: <file>: <what is wrong> · insecure mode 0644: <file>.
 *
 * Every row is computed on its own: one truncated or garbage file makes its row `unreadable` and the report (and the
 * Prometheus textfile, with that row's ok=0) is still written, so monitoring never keeps a stale "ok".
 */
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { caSpecs, leafSpecs, type CaName } from '../config/certs.ts';
import { KUBECONFIG_PATH } from '../config/files.ts';
import { KUBELET_PORT } from '../config/profiles.ts';
import { writeAtomic } from './atomic.ts';
import { ExitError } from './cli.ts';
import { allHosts, type Host, type Inventory, kubeletApi, masterTarget } from './inventory.ts';
import { readKubeconfig } from './kubeconfig.ts';
import { shown } from './log.ts';
import { type Check, checkCa, checkLeaf, untilDue } from './pki/check.ts';
import { insecureMode } from './pki/dir.ts';
import { type CertInfo, parseCert, readCert, readKey, readPublicKey, UnreadableError } from './pki/read.ts';
import { readToken } from './pki/token.ts';
import { clientTrust, rootFile } from './pki/trust.ts';
import { readServed, type Served } from './probe.ts';
import { kubeletClientRow, rotationStatus } from './kubelet-own.ts';
import type { Remote } from './remote/remote.ts';
import { finishHint, isSecret, kubeconfigsFor, modeProblem, pkiFilesFor, restartMarkers } from './rollout/desired.ts';
import { pendingFile, PHASE_TEXT, readPendingFile, readRotation } from './state.ts';

export interface StatusRow {
  name: string; // ca.crt, server.crt, kubeminion1.crt, tokens.csv, sa.key, kubeconfig
  where: string;
  subject: string;
  sans: string;
  notAfter?: string; // ISO
  daysLeft?: number;
  issuer: string;
  status: string;
  /** Rows read from a TLS port rather than a file: which certificate ('apiserver'); notAfter is what the port served. */
  served?: string;
}

const DAY = 86_400_000;
const dn = (i: CertInfo) => `${i.subject.o ? `O=${i.subject.o}, ` : ''}CN=${i.subject.cn}`;
const statusText = (c: Check) => (c.status === 'drift' ? `drift: ${c.reasons.filter((r) => !/^expires in/.test(r)).join('; ')}` : c.status);
const blank = { subject: '-', sans: '-', issuer: '-' };

function certRow(name: string, where: string, c: Check): StatusRow {
  const i = c.info;
  return {
    name, where, subject: i ? dn(i) : '-', sans: i?.sans.join(',') || '-', notAfter: i?.notAfter.toISOString(),
    daysLeft: c.daysLeft, issuer: i?.issuer ?? '-', status: statusText(c),
  };
}

/** The row of a file that is there but cannot be read; anything else thrown is not ours to hide. */
function unreadable(name: string, where: string, e: unknown): StatusRow {
  if (!(e instanceof UnreadableError)) throw e;
  return { name, where, ...blank, status: `unreadable: ${e.message}` };
}

/**
 * A secret that others may read is not ok, whatever else its row says. Only `unreadable` says more, and an unreadable
 * row never comes through here (it is made by unreadable() instead).
 */
function withMode(row: StatusRow, secret: string): StatusRow {
  const mode = insecureMode(secret);
  return mode ? { ...row, status: `insecure mode ${mode}: ${shown(secret)}` } : row;
}

/** What the local PKI holds, judged against the inventory and the clock. Reads only. */
export function localStatus(inv: Inventory, now = new Date()): StatusRow[] {
  const file = (f: string) => path.join(inv.pki.dir, f);
  const at = (f: string) => shown(file(f));
  const rows: StatusRow[] = [];
  let ca: Check | undefined;
  for (const c of caSpecs(inv)) { // the cluster CA, and (modern) the etcd and front-proxy CAs
    const crt = `${c.name}.crt`;
    if (!existsSync(file(crt)) && existsSync(file(`${c.name}.csr`))) { // requested under the operator's root, not imported yet
      rows.push(withMode({ name: crt, where: at(crt), ...blank, status: `missing: ${c.name}.csr waits to be signed by your root, then ca.ts import ${c.name}` }, file(`${c.name}.key`)));
      continue;
    }
    try {
      const check = checkCa(inv, now, c.name);
      if (c.name === 'ca') ca = check;
      rows.push(withMode(certRow(crt, at(crt), check), file(`${c.name}.key`)));
    } catch (e) {
      if (e instanceof UnreadableError) rows.push(unreadable(crt, at(crt), e));
      else rows.push(withMode({ name: crt, where: at(crt), ...blank, status: `key mismatch: ${(e as Error).message}` }, file(`${c.name}.key`)));
    }
  }
  for (const c of caSpecs(inv)) { const r = rootRow(inv, c.name, now); if (r) rows.push(r); }
  // every kubeconfig is as good as the certificate it embeds: a row each, where it is installed
  const kubeconfigRows = new Map<string, { name: string; where: string }[]>();
  for (const h of allHosts(inv)) {
    for (const k of kubeconfigsFor(inv, h)) {
      const list = kubeconfigRows.get(k.cert) ?? [];
      list.push({ name: k.path === KUBECONFIG_PATH ? 'kubeconfig' : path.posix.basename(k.path), where: `${h.name}:${k.path.replace('{remote}', inv.pki.remoteDir)}` });
      kubeconfigRows.set(k.cert, list);
    }
  }
  if (inv.profile === 'modern') kubeconfigRows.set('admin', [{ name: 'admin.kubeconfig', where: at('admin.kubeconfig') }]);
  for (const spec of leafSpecs(inv)) {
    const crt = `${spec.name}.crt`;
    const kcs = kubeconfigRows.get(spec.name) ?? [];
    try {
      const c = checkLeaf(inv, spec, ca?.info, now);
      rows.push(withMode(certRow(crt, at(crt), c), file(`${spec.name}.key`)));
      for (const k of kcs) rows.push({ ...certRow(k.name, k.where, c), name: k.name });
    } catch (e) {
      rows.push(unreadable(crt, at(crt), e));
      for (const k of kcs) rows.push(unreadable(k.name, k.where, e)); // it would embed that file
    }
  }
  try {
    const token = readToken(inv);
    rows.push(withMode({ name: 'tokens.csv', where: at('tokens.csv'), ...blank, subject: token ? 'user kubelet' : '-', status: token ? 'ok' : 'missing' }, file('tokens.csv')));
  } catch (e) {
    rows.push(unreadable('tokens.csv', at('tokens.csv'), e));
  }
  if (inv.profile === 'modern') rows.push(saRow(inv));
  const rot = rotationRow(inv);
  if (rot) rows.push(rot);
  const pending = pendingRow(inv);
  if (pending) rows.push(pending);
  return rows;
}

/**
 * Hosts an earlier run left owed the current files (`.renew-pending.json`: a run that failed on them, or was killed
 * before it finished them): renew due until the next renew.ts finishes them. A damaged record is unreadable, never
 * "nothing pending".
 */
function pendingRow(inv: Inventory): StatusRow | undefined {
  const where = shown(pendingFile(inv));
  try {
    const hosts = readPendingFile(inv);
    if (!hosts.length) return undefined;
    return { name: 'renew pending', where, ...blank, subject: hosts.join(', '),
      status: `renew due: ${hosts.join(', ')} ${hosts.length === 1 ? 'is' : 'are'} still owed the current files by an earlier run; renew.ts finishes ${hosts.length === 1 ? 'it' : 'them'}` };
  } catch (e) {
    return { name: 'renew pending', where, ...blank, status: `unreadable: ${(e as Error).message}` };
  }
}

/**
 * How long ahead status warns that the operator's root expires: kubetls cannot renew a root, and a new one means a new
 * intermediate under it, then every leaf (docs/own-root.md). A year is the lead a corporate PKI usually needs.
 */
export const ROOT_WARN_DAYS = 365;

/**
 * The operator's root above a CA that is an intermediate (`<ca>.root.crt`, docs/own-root.md): its expiry, renew due
 * from ROOT_WARN_DAYS ahead, and drift when the CA no longer chains to it. undefined when the CA is its own root.
 */
export function rootRow(inv: Inventory, ca: CaName, now = new Date()): StatusRow | undefined {
  const name = rootFile(ca);
  const file = path.join(inv.pki.dir, name);
  if (!existsSync(file)) return undefined;
  try {
    const root = readCert(file)!;
    const inter = readCert(path.join(inv.pki.dir, `${ca}.crt`));
    const left = daysTo(root.notAfter, now);
    const status = root.notAfter <= now ? 'expired'
      : inter && !(inter.x509.checkIssued(root.x509) && inter.x509.verify(root.x509.publicKey)) ? `drift: ${ca}.crt does not chain to this root`
        : left < ROOT_WARN_DAYS ? `renew due: your root expires in ${left} d; kubetls cannot renew it (docs/own-root.md)` : 'ok';
    return { name, where: shown(file), subject: dn(root), sans: '-', notAfter: root.notAfter.toISOString(), daysLeft: left, issuer: root.issuer, status };
  } catch (e) {
    return unreadable(name, shown(file), e);
  }
}

/** A CA rotation that is running (or damaged): its phase, so that an operator sees where a killed run stopped. */
function rotationRow(inv: Inventory): StatusRow | undefined {
  const where = shown(path.join(inv.pki.dir, '.rotate-ca.json'));
  try {
    const r = readRotation(inv);
    if (!r || r.phase === 'done') return undefined;
    // an intermediate's next certificate not imported yet: the operator's root has to sign first
    const unsigned = r.phase === 'new' ? r.targets.filter((t) => existsSync(path.join(inv.pki.dir, `${t}.next.csr`))).map((t) => `${t}.next.csr`) : [];
    return { name: 'ca rotation', where, ...blank, subject: `${r.what} (${r.targets.join(', ')})`,
      status: `renew due: CA rotation ${PHASE_TEXT[r.phase]}, started ${r.started.slice(0, 16)}Z; ${unsigned.length ? `${unsigned.join(', ')} ${unsigned.length === 1 ? 'waits' : 'wait'} to be signed by your root (ca.ts import), then ` : ''}finish it with renew.ts --rotate-ca ${r.what}` };
  } catch (e) {
    return { name: 'ca rotation', where, ...blank, status: `unreadable: ${(e as Error).message}` };
  }
}

/** The modern profile's service-account key pair (replaced only by renew.ts --rotate-ca service-account): status is where damage shows. */
function saRow(inv: Inventory): StatusRow {
  const key = path.join(inv.pki.dir, 'sa.key');
  const pub = path.join(inv.pki.dir, 'sa.pub');
  const base = { name: 'sa.key', where: shown(key), ...blank };
  if (!existsSync(key) || !existsSync(pub)) return { ...base, status: existsSync(key) || existsSync(pub) ? 'missing: sa.key and sa.pub incomplete' : 'missing' };
  try {
    const spki = (k: ReturnType<typeof readKey>) => k.export({ type: 'spki', format: 'pem' });
    const match = spki(readPublicKey(pub)) === spki(createPublicKey(readKey(key)));
    return withMode({ ...base, status: match ? 'ok' : 'key mismatch: sa.pub does not match sa.key' }, key);
  } catch (e) {
    return unreadable('sa.key', shown(key), e);
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const daysTo = (d: Date, now: Date) => Math.floor((d.getTime() - now.getTime()) / DAY);

/**
 * --remote: on one host (one connection), each deployed copy against the local PKI — certificates, the CAs, the token
 * and every private key, with its owner and mode — each kubeconfig's embedded certificate and key, and the restarts an
 * interrupted run left owed there. A key that is missing, not the local one (so not the key of its certificate), or
 * readable by others is not ok: an apiserver or etcd that cannot restart is what monitoring must see before it happens.
 */
export async function remoteStatus(inv: Inventory, r: Remote, now = new Date()): Promise<StatusRow[]> {
  const rows: StatusRow[] = [];
  const files = pkiFilesFor(inv, r.host);
  const kcs = kubeconfigsFor(inv, r.host).map((k) => ({ k, remote: k.path.replace('{remote}', inv.pki.remoteDir) }));
  const markers = restartMarkers(inv, r.host);
  const state = await r.inspect([...files.map(([, remote]) => remote), ...kcs.map((x) => x.remote), ...markers.map(([, p]) => p)]);
  for (const [local, remote, bytes, mode] of files) {
    const st = state.get(remote);
    const where = `${r.host.name}:${remote}`;
    const name = path.basename(local);
    let info: CertInfo | undefined;
    let localError: string | undefined;
    try { info = local.endsWith('.crt') ? readCert(local) : undefined; } catch (e) { localError = unreadable(name, where, e).status; }
    const base = { name, where, subject: info ? dn(info) : '-', sans: info?.sans.join(',') || '-', issuer: info?.issuer ?? '-' };
    if (!st) { rows.push({ ...base, status: 'missing' }); continue; }
    let same = false;
    try { same = st.kind === 'file' && st.sha256 === sha(bytes()); } catch { /* missing locally: not the same */ }
    const secret = isSecret(local);
    const perm = st.kind === 'file' ? modeProblem(st, mode, secret) : undefined;
    const status = !same ? (local.endsWith('.key') ? `key mismatch: ${remote} is not the local ${name} (so not the key of its certificate)` : 'drift: differs from the local PKI')
      : localError ?? (perm?.insecure ? `insecure mode ${perm.insecure}: ${where}` : perm?.drift ? `drift: ${perm.drift}` : 'ok');
    rows.push({ ...base, notAfter: info?.notAfter.toISOString(), daysLeft: info ? daysTo(info.notAfter, now) : undefined, status });
  }
  for (const { k, remote } of kcs) {
    const name = remote === KUBECONFIG_PATH ? 'kubeconfig' : path.posix.basename(remote);
    const where = `${r.host.name}:${remote}`;
    const raw = state.get(remote) ? await r.read(remote) : undefined;
    if (!raw) rows.push({ name, where, ...blank, status: 'missing' });
    else {
      try {
        let kc: ReturnType<typeof readKubeconfig>;
        try { kc = readKubeconfig(raw.toString()); } catch (e) { throw new UnreadableError(`${where}: ${(e as Error).message}`); }
        const info = kc.cert ? parseCert(kc.cert, `${where} (client-certificate-data)`) : undefined;
        const local = readCert(path.join(inv.pki.dir, `${k.cert}.crt`));
        const same = info && local && info.fingerprint === local.fingerprint;
        let keySame = false;
        try { keySame = !!kc.key && sha(kc.key) === sha(readFileSync(path.join(inv.pki.dir, `${k.cert}.key`))); } catch { /* no local key: not the same */ }
        const perm = modeProblem(state.get(remote)!, k.mode, true);
        rows.push({ name, where, subject: info ? dn(info) : '-', sans: '-', issuer: info?.issuer ?? '-',
          notAfter: info?.notAfter.toISOString(), daysLeft: info ? daysTo(info.notAfter, now) : undefined,
          status: !info ? 'drift: no client certificate' : !same ? 'drift: embeds another certificate than the local PKI'
            : !keySame ? `key mismatch: embeds another key than the local ${k.cert}.key` : perm?.insecure ? `insecure mode ${perm.insecure}: ${where}`
              : perm?.drift ? `drift: ${perm.drift}` : 'ok' });
      } catch (e) {
        rows.push(unreadable(name, where, e));
      }
    }
  }
  if (r.host.role === 'minion' && kubeletApi(inv)) {
    const c = await kubeletClientRow(inv, r, now);
    rows.push({ name: 'kubelet-client-current.pem', where: c.where, subject: c.info ? dn(c.info) : '-', sans: '-', issuer: c.info?.issuer ?? '-',
      notAfter: c.info?.notAfter.toISOString(), daysLeft: c.info ? daysTo(c.info.notAfter, now) : undefined, status: c.status });
  }
  for (const [unit, marker] of markers.filter(([, p]) => state.get(p))) {
    rows.push({ name: `restart.${unit}`, where: `${r.host.name}:${marker}`, ...blank,
      status: `renew due: ${unit} owes a restart an earlier run did not make (it runs on files it has not read yet); ${finishHint(inv, r.host)}` });
  }
  return rows;
}

/**
 * The certificate 6443 serves: its own subject and expiry, from the wire (not the local file, which may have been
 * renewed while the apiserver still serves the old one), judged against the local ca.crt and server.crt. One row per
 * master, each asked at its own address (a balancer would hide which one answered).
 */
export async function servedRows(inv: Inventory, now = new Date()): Promise<StatusRow[]> {
  return Promise.all(inv.masters.map((m) => servedStatus(inv, now, m)));
}

/** The row of one master (default: the first). */
export async function servedStatus(inv: Inventory, now = new Date(), master: Host = inv.master): Promise<StatusRow> {
  const t = masterTarget(inv, master);
  const a = t.address;
  const base = { name: 'server.crt', where: `${a.includes(':') ? `[${a}]` : a}:${t.port} (served)`, served: 'apiserver' };
  const caFile = path.join(inv.pki.dir, 'ca.crt');
  let ca: Buffer | undefined;
  try { if (readCert(caFile)) ca = clientTrust(inv); } catch { /* its own row says unreadable; then nothing is trusted */ }
  let got: Served;
  try {
    got = await readServed(a, t.port, t.name, ca);
  } catch (e) {
    return { ...base, ...blank, status: `missing: ${(e as Error).message}` };
  }
  const i = got.info;
  let local: CertInfo | undefined;
  try { local = readCert(path.join(inv.pki.dir, 'server.crt')); } catch { /* reported on its own row */ }
  const left = i.notAfter.getTime() - now.getTime();
  const status = left <= 0 ? 'expired'
    : !got.authorized ? `drift: not trusted with the local ca.crt for ${t.name} (${got.error ?? 'unverified'})`
    : local && local.fingerprint !== i.fingerprint ? `drift: serves serial ${i.serial}, local is ${local.serial}`
    : untilDue(inv, i.notAfter, now) <= 0 ? 'renew due'
    : 'ok';
  return { ...base, subject: dn(i), sans: i.sans.join(','), issuer: i.issuer, notAfter: i.notAfter.toISOString(), daysLeft: daysTo(i.notAfter, now), status };
}

/**
 * Modern: the certificate each kubelet serves on its address:10250, from the wire, judged against the local ca.crt for
 * the node's name and the local kubelet-<name>.crt (what `kubectl logs` needs the apiserver to trust).
 */
export async function servedKubelets(inv: Inventory, now = new Date()): Promise<StatusRow[]> {
  if (inv.profile !== 'modern') return [];
  const caFile = path.join(inv.pki.dir, 'ca.crt');
  let ca: Buffer | undefined;
  try { if (readCert(caFile)) ca = clientTrust(inv); } catch { /* its own row says unreadable */ }
  return Promise.all(inv.minions.map(async (m): Promise<StatusRow> => {
    const a = m.address.includes(':') ? `[${m.address}]` : m.address;
    // api: the kubelet's own serving certificate (kubelet-server-current.pem on the node), judged by chain, name and expiry
    const base = { name: kubeletApi(inv) ? `${m.name} kubelet-server-current.pem` : `kubelet-${m.name}.crt`, where: `${a}:${KUBELET_PORT} (served)`, served: 'kubelet' };
    let got: Served;
    try { got = await readServed(m.address, KUBELET_PORT, m.name, ca); } catch (e) { return { ...base, ...blank, status: `missing: ${(e as Error).message}` }; }
    const i = got.info;
    let local: CertInfo | undefined;
    try { local = readCert(path.join(inv.pki.dir, `kubelet-${m.name}.crt`)); } catch { /* its own row */ }
    const status = i.notAfter <= now ? 'expired'
      : !got.authorized ? `drift: not trusted with the local ca.crt for ${m.name} (${got.error ?? 'unverified'})`
      // api: the kubelet's own certificate; what to watch is its rotation (lib/kubelet-own.ts). The one kubetls pushed
      // before the switch (while pki.dir still has it) is not the kubelet's own: the node has not switched
      : kubeletApi(inv) && local?.fingerprint === i.fingerprint ? `drift: serves kubelet-${m.name}.crt, which kubetls pushed: run minions.ts (kubelet.certificates is api)`
      : kubeletApi(inv) ? rotationStatus(i.x509, now, 'serving')
      : local && local.fingerprint !== i.fingerprint ? `drift: serves serial ${i.serial}, local is ${local.serial}`
      : untilDue(inv, i.notAfter, now) <= 0 ? 'renew due' : 'ok';
    return { ...base, subject: dn(i), sans: i.sans.join(','), issuer: i.issuer, notAfter: i.notAfter.toISOString(), daysLeft: daysTo(i.notAfter, now), status };
  }));
}

/**
 * node_exporter textfile format. Label sets are the same for every series of a family and unique per series:
 *   kubetls_certificate_not_after_seconds{name,where}           every certificate file, local and deployed
 *   kubetls_served_certificate_not_after_seconds{cert,where}     what a port serves, from the wire (cert="apiserver",
 *                                                                where="<master address>:<port>"): alert on this one
 *                                                                and a renewal that was never served still shows
 *   kubetls_certificate_ok{name,where,status}                    every row, 0 unless ok (unreadable rows included);
 *                                                                status is a category (ok, renew_due, drift, …), never
 *                                                                free text: a label that changes with every message
 *                                                                would start a new series each time (the table says why)
 *   kubetls_renew_last_success_timestamp_seconds
 */
/** A row's status as a fixed word for a label: `drift: SAN added: …` → `drift`, `insecure mode 0644: …` → `insecure_mode`. */
export function statusCategory(status: string): string {
  const head = status.split(':')[0].replace(/ \d{4}$/, '').trim();
  const known = ['ok', 'renew due', 'expired', 'drift', 'missing', 'not signed by CA', 'key mismatch', 'unreadable', 'insecure mode', 'unreachable'];
  return known.includes(head) ? head.toLowerCase().replace(/ /g, '_') : 'other';
}

export function prometheus(rows: StatusRow[], last?: Date): string {
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  const labels = (r: StatusRow) => `name="${esc(r.name)}",where="${esc(r.where)}"`;
  const seconds = (r: StatusRow) => Math.floor(Date.parse(r.notAfter!) / 1000);
  const files = rows.filter((r) => r.notAfter && !r.served);
  const served = rows.filter((r) => r.notAfter && r.served);
  return [
    '# HELP kubetls_certificate_not_after_seconds When the certificate file expires (Unix time).',
    '# TYPE kubetls_certificate_not_after_seconds gauge',
    ...files.map((r) => `kubetls_certificate_not_after_seconds{${labels(r)}} ${seconds(r)}`),
    '# HELP kubetls_served_certificate_not_after_seconds When the certificate a port serves right now expires (Unix time), read from the TLS handshake.',
    '# TYPE kubetls_served_certificate_not_after_seconds gauge',
    ...served.map((r) => `kubetls_served_certificate_not_after_seconds{cert="${esc(r.served!)}",where="${esc(r.where.replace(/ \(served\)$/, ''))}"} ${seconds(r)}`),
    '# HELP kubetls_certificate_ok 1 when the certificate is in date, not due and matches the inventory.',
    '# TYPE kubetls_certificate_ok gauge',
    ...rows.map((r) => `kubetls_certificate_ok{${labels(r)},status="${statusCategory(r.status)}"} ${r.status === 'ok' ? 1 : 0}`),
    '# HELP kubetls_renew_last_success_timestamp_seconds When scripts/renew.ts last finished without error (Unix time).',
    '# TYPE kubetls_renew_last_success_timestamp_seconds gauge',
    `kubetls_renew_last_success_timestamp_seconds ${last ? Math.floor(last.getTime() / 1000) : 0}`,
    '',
  ].join('\n');
}

export function writePrometheus(file: string, text: string): void {
  if (existsSync(file) && statSync(file).isDirectory()) throw new ExitError(`--prometheus expects a file (node_exporter's textfile collector reads <dir>/<name>.prom): ${file} is a folder`, 2);
  writeAtomic(file, text, 0o644);
}
