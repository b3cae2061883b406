import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { loadInventory } from '../lib/inventory/load.ts';
import { acquireLock, lockPath } from '../lib/lock.ts';
import { configureLog } from '../lib/log.ts';
import { applyPki } from '../lib/pki/apply.ts';
import { planPki } from '../lib/pki/plan.ts';
import { readCert } from '../lib/pki/read.ts';
import { writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

configureLog({ sink: () => undefined, tty: false });

async function build(patch = {}) {
  const file = writeInventory(patch);
  const inv = loadInventory(file);
  await applyPki(inv, planPki(inv));
  return { file, inv, dir: inv.pki.dir };
}

test('status reports every certificate, kubeconfig and the token as ok and exits 0', async (t) => {
  const { file } = await build();
  const r = await runScript('status.ts', ['--inventory', file, '--json']);
  t.is(r.code, 0, r.all);
  const { ok, rows } = JSON.parse(r.stdout) as { ok: boolean; rows: { name: string; where: string; status: string; daysLeft: number }[] };
  t.true(ok);
  t.deepEqual(rows.map((x) => x.name), ['ca.crt', 'server.crt', 'kubeminion1.crt', 'kubeconfig', 'kubeminion2.crt', 'kubeconfig', 'tokens.csv']);
  t.true(rows.every((x) => x.status === 'ok'));
  t.is(rows.find((x) => x.name === 'server.crt')!.daysLeft, 364);
  t.is(rows[3].where, 'kubeminion1:/var/lib/kubelet/kubeconfig');
});

test('status shows renew due, drift with what drifted, and missing, and exits 1', async (t) => {
  const { file, dir } = await build({ pki: { days: 2, renew_before_days: 1 } });
  // 2-day certificates under a 30-day window are due (with 2/1 they are not: the window compares exact durations)
  writeInventory({ pki: { days: 365, renew_before_days: 30 }, apiserver: { ip: ['10.24.0.1', '10.0.0.5'] }, minions: ['kubeminion1', 'kubeminion2', 'kubeminion3'] }, path.dirname(file));
  rmSync(path.join(dir, 'tokens.csv'));
  const r = await runScript('status.ts', ['--inventory', file]);
  t.is(r.code, 1, r.all);
  const line = (name: string) => r.stdout.split('\n').find((l) => l.startsWith(name)) ?? '';
  t.regex(line('server.crt'), /drift: SAN added: IP:10\.0\.0\.5$/);
  t.regex(line('kubeminion1.crt'), /renew due$/);
  t.regex(line('kubeminion3.crt'), /missing$/);
  t.regex(line('tokens.csv'), /missing$/);
  t.regex(line('ca '), / ok$/, 'the CA, in its own table');
  t.regex(r.stdout, /^CERTIFICATE\s+WHERE\s+EXPIRES\s+RESIDUAL TIME\s+AUTHORITY\s+STATUS$/m);
  t.regex(r.stdout, /^CERTIFICATE AUTHORITY\s+EXPIRES\s+RESIDUAL TIME\s+STATUS$/m);
});

test('--prometheus writes node_exporter textfile metrics: one series per certificate', async (t) => {
  const { file, dir } = await build();
  const out = path.join(dir, '..', 'kubetls.prom');
  const r = await runScript('status.ts', ['--inventory', file, '--prometheus', out]);
  t.is(r.code, 0, r.all);
  const text = readFileSync(out, 'utf8');
  const series = text.split('\n').filter((l) => l && !l.startsWith('#'));
  for (const l of series) t.regex(l, /^[a-z_]+(\{([a-z]+="(?:[^"\\]|\\.)*",?)+\})? \d+$/, l);
  const notAfter = series.filter((l) => l.startsWith('kubetls_certificate_not_after_seconds{'));
  t.deepEqual(notAfter.map((l) => /name="([^"]+)"/.exec(l)![1]), ['ca.crt', 'server.crt', 'kubeminion1.crt', 'kubeconfig', 'kubeminion2.crt', 'kubeconfig']);
  const server = Number(notAfter[1].split(' ').at(-1));
  t.true(Math.abs(server - (Date.now() / 1000 + 365 * 86400)) < 3600);
  t.regex(text, /# TYPE kubetls_certificate_not_after_seconds gauge/);
  t.regex(text, /^kubetls_renew_last_success_timestamp_seconds 0$/m);
});

test('renew with nothing due prints one line naming the next due certificate, writes no certificate and exits 0', async (t) => {
  const { file, dir } = await build();
  const before = readFileSync(path.join(dir, 'server.crt'));
  const r = await runScript('renew.ts', ['--inventory', file]);
  t.is(r.code, 0, r.all);
  // the leaf signed first expires first: leaves are signed one after another as their keys are ready, so which one
  // that is (server or a minion, when a second boundary falls between them) is read from the files, first of equals
  const notAfter = (n: string) => readCert(path.join(dir, `${n}.crt`))!.notAfter.getTime();
  const first = ['server', 'kubeminion1', 'kubeminion2'].reduce((a, b) => (notAfter(b) < notAfter(a) ? b : a));
  t.regex(r.stdout, new RegExp(`nothing to renew; next due: ${first}\\.crt in 334 d$`, 'm'));
  t.notRegex(r.all, /\$ (openssl|sftp|systemctl)/);
  t.deepEqual(readFileSync(path.join(dir, 'server.crt')), before);
  const quiet = await runScript('renew.ts', ['--inventory', file, '--quiet']);
  t.is(quiet.code, 0);
  t.is(quiet.all, '');
  const prom = await runScript('status.ts', ['--inventory', file, '--prometheus', path.join(dir, 'm.prom')]);
  t.is(prom.code, 0);
  t.notRegex(readFileSync(path.join(dir, 'm.prom'), 'utf8'), /^kubetls_renew_last_success_timestamp_seconds 0$/m);
});

test('renew refuses to create a CA and says to run master.ts first', async (t) => {
  const file = writeInventory();
  const r = await runScript('renew.ts', ['--inventory', file]);
  t.is(r.code, 1);
  t.regex(r.stderr, /no CA in .*: run scripts\/master\.ts first/);
});

test('a second run while the lock is held says who holds it and exits 75', async (t) => {
  const { file, inv } = await build();
  const release = acquireLock(inv, 'test');
  try {
    const r = await runScript('renew.ts', ['--inventory', file]);
    t.is(r.code, 75, r.all);
    t.regex(r.stderr, new RegExp(`another kubetls run holds .*\\.kubetls\\.lock: pid ${process.pid} \\(test\\)`));
  } finally {
    release();
  }
});

test('a stale lock whose process is gone is taken over with a message', async (t) => {
  const { file, inv } = await build();
  const dead = spawn('true');
  await new Promise((r) => dead.on('exit', r));
  writeFileSync(lockPath(inv), JSON.stringify({ pid: dead.pid, host: (await import('node:os')).hostname(), since: '2026-01-01T00:00:00Z', command: 'renew.ts' }));
  const r = await runScript('renew.ts', ['--inventory', file]);
  t.is(r.code, 0, r.all);
  t.regex(r.stderr, new RegExp(`taking over the stale lock .* of pid ${dead.pid} \\(renew\\.ts, since 2026-01-01T00:00:00Z\\), which is no longer running`));
});

// ---- the renewal window compares exact durations -------------------------------------------------------

test('a fresh certificate is not due with days 2 / renew_before_days 1, nor with 365 / 364, and renew.ts says nothing to renew', async (t) => {
  const { localStatus } = await import('../lib/status.ts');
  for (const [days, before] of [[2, 1], [365, 364]]) {
    const { file, inv } = await build({ pki: { key: 'ecdsa-p256', days, renew_before_days: before } });
    t.deepEqual(localStatus(inv).filter((r) => r.status !== 'ok').map((r) => `${r.name}: ${r.status}`), [], `${days}/${before}`);
    t.deepEqual(planPki(inv).items.filter((i) => i.action !== 'keep').map((i) => i.name), [], `${days}/${before}: planPki reissues`);
    if (days === 2) {
      const r = await runScript('renew.ts', ['--inventory', file]);
      t.is(r.code, 0, r.all);
      t.regex(r.stdout, /nothing to renew; next due: \S+\.crt in 0 d$/m);
    }
  }
});

test('a certificate with 23 h left is due under a 1-day window and one with 25 h left is not; the same for the CA', async (t) => {
  const { checkCa, checkLeaf } = await import('../lib/pki/check.ts');
  const { leafSpecs } = await import('../config/certs.ts');
  const { inv } = await build({ pki: { key: 'ecdsa-p256', days: 2, renew_before_days: 1 } });
  const ca = checkCa(inv);
  const spec = leafSpecs(inv)[0];
  const notAfter = checkLeaf(inv, spec, ca.info).info!.notAfter.getTime();
  const at = (t0: number, h: number) => new Date(t0 - h * 3_600_000);
  t.like(checkLeaf(inv, spec, ca.info, at(notAfter, 23)), { status: 'renew due', reasons: ['expires in 0 d'] });
  t.is(checkLeaf(inv, spec, ca.info, at(notAfter, 25)).status, 'ok');
  t.is(checkLeaf(inv, spec, ca.info, at(notAfter, 0)).status, 'expired');
  const caEnd = ca.info!.notAfter.getTime();
  t.is(checkCa(inv, at(caEnd, 23)).status, 'renew due');
  t.is(checkCa(inv, at(caEnd, 25)).status, 'ok');
});

// ---- the served certificate's own expiry, from the wire ---------------------------------------------------

test('--prometheus exposes the expiry of the certificate 6443 really serves, read from the handshake, not from the local server.crt', async (t) => {
  const tls = await import('node:tls');
  const { prometheus, servedStatus } = await import('../lib/status.ts');
  const { file, dir } = await build({ pki: { key: 'ecdsa-p256', days: 2, renew_before_days: 1 }, master: { name: 'kubemaster', address: '127.0.0.1' } });
  const old = { cert: readFileSync(path.join(dir, 'server.crt')), key: readFileSync(path.join(dir, 'server.key')) };
  // renewed locally (365 days), but the apiserver still serves the old 2-day certificate
  writeInventory({ pki: { key: 'ecdsa-p256', days: 365, renew_before_days: 30 }, master: { name: 'kubemaster', address: '127.0.0.1' } }, path.dirname(file));
  const inv = loadInventory(file);
  await applyPki(inv, planPki(inv));
  const server = tls.createServer(old, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    const atPort = loadInventory(writeInventory({ pki: { key: 'ecdsa-p256', days: 365, renew_before_days: 30 }, master: { name: 'kubemaster', address: '127.0.0.1' }, apiserver: { port } }, path.dirname(file)));
    const row = await servedStatus(atPort);
    const servedEnd = new (await import('node:crypto')).X509Certificate(old.cert).validTo;
    t.is(row.notAfter, new Date(servedEnd).toISOString());
    t.regex(row.status, /^drift: serves serial [0-9A-F]+, local is [0-9A-F]+$/);
    const text = prometheus([row]);
    const line = text.split('\n').find((l) => l.startsWith('kubetls_served_certificate_not_after_seconds'));
    t.is(line, `kubetls_served_certificate_not_after_seconds{cert="apiserver",where="127.0.0.1:${port}"} ${Math.floor(Date.parse(servedEnd) / 1000)}`);
    const local = readFileSync(path.join(dir, 'server.crt'));
    t.true(Date.parse(new (await import('node:crypto')).X509Certificate(local).validTo) - Date.parse(servedEnd) > 300 * 86_400_000, 'the local file was renewed');
    t.regex(text, /^kubetls_certificate_ok\{name="server\.crt",where="127\.0\.0\.1:\d+ \(served\)",.*\} 0$/m);
    // nothing listening: a row that is not ok, and no served expiry at all (never the local file's)
    server.close();
    const gone = await servedStatus(atPort);
    t.regex(gone.status, /^missing: /);
    t.notRegex(prometheus([gone]), /^kubetls_served_certificate_not_after_seconds\{/m);
  } finally {
    server.close();
  }
});

test('every series of the textfile has a label set of its family\'s names and no two series are the same', async (t) => {
  const { prometheus } = await import('../lib/status.ts');
  const { file } = await build();
  const out = path.join(path.dirname(file), 'm.prom');
  await runScript('status.ts', ['--inventory', file, '--prometheus', out]);
  const series = readFileSync(out, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  const names = (l: string) => [...l.matchAll(/([a-z]+)="(?:[^"\\]|\\.)*"/g)].map((m) => m[1]).join(',');
  const byFamily = new Map<string, Set<string>>();
  for (const l of series) byFamily.set(l.split('{')[0].split(' ')[0], (byFamily.get(l.split('{')[0].split(' ')[0]) ?? new Set()).add(names(l)));
  for (const [family, sets] of byFamily) t.is(sets.size, 1, `${family}: ${[...sets].join(' | ')}`);
  const keys = series.map((l) => l.replace(/ \d+$/, ''));
  t.is(new Set(keys).size, keys.length);
  t.true(prometheus([]).includes('kubetls_renew_last_success_timestamp_seconds 0'));
});

// ---- the cron line and the systemd unit refresh the metrics whatever renew returned ----------------------

test('the cron line runs status --prometheus after renew whatever renew returned (0, 1, 75) and exits with renew\'s status', async (t) => {
  const { mkdtempSync, chmodSync, rmSync } = await import('node:fs');
  const { execa } = await import('execa');
  const { repoRoot } = await import('./helpers/inventory.ts');
  const line = readFileSync(path.join(repoRoot, 'config/cron/kubetls-renew.cron'), 'utf8').split('\n').find((l) => /^\d/.test(l))!;
  const body = line.trim().replace(/^(\S+\s+){6}/, ''); // after m h dom mon dow user
  t.regex(body, /node bin\/kubetls\.mjs renew --quiet; rc=\$\?; node bin\/kubetls\.mjs status --prometheus \S+ >\/dev\/null; exit \$rc$/);
  // run the line's own shell logic with a node on PATH that records each call and exits like renew would
  const bin = mkdtempSync(path.join((await import('node:os')).tmpdir(), 'kubetls-cron-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  writeFileSync(path.join(bin, 'node'), '#!/bin/sh\necho "$*" >> "$CALLS"\ncase "$*" in *" renew "*) exit "$RENEW_EXIT";; esac\nexit 1\n');
  chmodSync(path.join(bin, 'node'), 0o755);
  for (const code of [0, 1, 75]) {
    const calls = path.join(bin, `calls-${code}`);
    const r = await execa('/bin/sh', ['-c', body], { reject: false, env: { PATH: `${bin}:/usr/bin:/bin`, KUBETLS_DIR: bin, CALLS: calls, RENEW_EXIT: String(code) } });
    t.is(r.exitCode, code, `renew exit ${code}`);
    t.deepEqual(readFileSync(calls, 'utf8').trim().split('\n').map((c) => c.split(' ')[1]), ['renew', 'status'], `renew exit ${code}`);
  }
});

test('the systemd unit refreshes the metrics in ExecStopPost (after success and failure), never in ExecStartPost', async (t) => {
  const { repoRoot } = await import('./helpers/inventory.ts');
  const unit = readFileSync(path.join(repoRoot, 'config/systemd/kubetls-renew.service'), 'utf8');
  t.regex(unit, /^ExecStopPost=-\/usr\/bin\/node bin\/kubetls\.mjs status --prometheus \S+$/m);
  t.regex(unit, /^ExecStart=\/usr\/bin\/node bin\/kubetls\.mjs renew$/m);
  t.notRegex(unit, /^ExecStartPost=/m);
  t.regex(unit, /^SuccessExitStatus=75$/m);
});

test('a renewal owed to a host that left the inventory is forgotten with a warning, not retried forever', async (t) => {
  const { file, dir } = await build();
  writeFileSync(path.join(dir, '.renew-pending.json'), '["kubeminion9"]\n', { mode: 0o600 });
  const r = await runScript('renew.ts', ['--inventory', file]);
  t.is(r.code, 0, r.all);
  t.regex(r.stderr, /kubeminion9 no longer in the inventory: forgotten/);
  t.regex(r.stdout, /nothing to renew/);
  const again = await runScript('renew.ts', ['--inventory', file]);
  t.is(again.code, 0, again.all);
  t.notRegex(again.all, /kubeminion9/);
});

test('--prometheus pointed at a folder is refused with exit 2 and leaves no stray .new file', async (t) => {
  const { file, dir } = await build();
  const folder = path.join(dir, 'textfiles');
  mkdirSync(folder);
  const r = await runScript('status.ts', ['--inventory', file, '--prometheus', folder]);
  t.is(r.code, 2, r.all);
  t.regex(r.stderr, /--prometheus expects a file .*textfiles is a folder/);
  t.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.new')), []);
});

test('master.ts refuses to sign with an expired CA and writes nothing', async (t) => {
  const file = writeInventory();
  const dir = path.join(path.dirname(file), 'pki');
  mkdirSync(dir, { mode: 0o700 });
  // an expired self-signed CA, made with `openssl ca -selfsign` (the only openssl command that takes a start date)
  writeFileSync(path.join(dir, 'ca.cnf'), '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\nx509_extensions=v3\n'
    + '[p]\ncommonName=supplied\n[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  writeFileSync(path.join(dir, 'index.txt'), '');
  writeFileSync(path.join(dir, 'serial'), '01\n');
  const o = (args: string[]) => execa('openssl', args, { cwd: dir });
  await o(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-subj', '/CN=kubemaster', '-out', 'ca.csr']);
  await o(['ca', '-batch', '-notext', '-config', 'ca.cnf', '-selfsign', '-keyfile', 'ca.key', '-in', 'ca.csr', '-out', 'ca.crt', '-startdate', '20200101000000Z', '-enddate', '20200201000000Z']);
  const before = readdirSync(dir).sort();
  const r = await runScript('master.ts', ['--inventory', file, '--pki-only']);
  t.is(r.code, 1, r.all);
  t.regex(r.stderr, /CA expired \d+ d ago: refusing to sign with an expired CA \(nothing was written\)/);
  t.deepEqual(readdirSync(dir).sort(), before, 'no certificate signed, no file added');
});

test('the Prometheus textfile passes promtool and loads in a real node_exporter with no error, also with an unreadable row', async (t) => {
  const { promtool, nodeExporterScrape } = await import('./helpers/prometheus.ts');
  const { file, dir } = await build();
  const prom = path.join(dir, 'kubetls.prom');
  t.is((await runScript('status.ts', ['--inventory', file, '--prometheus', prom])).code, 0);
  const clean = readFileSync(prom, 'utf8');
  t.deepEqual(await promtool(clean), { code: 0, said: '' });
  const scraped = await nodeExporterScrape(clean);
  t.is(scraped.scrapeError, 0);
  t.deepEqual(scraped.gatherErrors, []);
  t.regex(scraped.body, /^kubetls_certificate_not_after_seconds\{name="server\.crt",.*\} \d/m);
  // the check can fail: the same file with a series repeated is rejected by node_exporter
  const dup = `${clean}${clean.split('\n').find((l) => l.startsWith('kubetls_certificate_ok{'))}\n`;
  t.regex((await nodeExporterScrape(dup)).gatherErrors.join('\n'), /was collected before with the same name and label values/);
  // a damaged file: the row says so and the textfile still loads
  writeFileSync(path.join(dir, 'server.crt'), 'garbage\n');
  t.is((await runScript('status.ts', ['--inventory', file, '--prometheus', prom])).code, 1);
  const damaged = readFileSync(prom, 'utf8');
  t.regex(damaged, /^kubetls_certificate_ok\{name="server\.crt",.*\} 0$/m);
  t.is((await promtool(damaged)).code, 0);
  t.like(await nodeExporterScrape(damaged), { scrapeError: 0, gatherErrors: [] });
});

test('Prometheus labels carry no free text: status is a fixed category, the subject is not a label', async (t) => {
  const { prometheus, statusCategory } = await import('../lib/status.ts');
  t.is(statusCategory('drift: SAN added: IP:10.0.0.5'), 'drift');
  t.is(statusCategory('insecure mode 0644: pki/ca.key'), 'insecure_mode');
  t.is(statusCategory('unreadable: pki/server.crt: not a PEM certificate (truncated?)'), 'unreadable');
  t.is(statusCategory('not signed by CA'), 'not_signed_by_ca');
  t.is(statusCategory('renew due'), 'renew_due');
  t.is(statusCategory('something new'), 'other');
  const text = prometheus([{ name: 'server.crt', where: 'pki/server.crt', subject: 'CN=x', sans: '-', issuer: 'CN=ca', notAfter: new Date(0).toISOString(), status: 'drift: SAN added: IP:10.0.0.5' }]);
  t.regex(text, /^kubetls_certificate_ok\{name="server\.crt",where="pki\/server\.crt",status="drift"\} 0$/m);
  t.regex(text, /^kubetls_certificate_not_after_seconds\{name="server\.crt",where="pki\/server\.crt"\} 0$/m);
  t.notRegex(text, /subject=|SAN added/);
});

// ---- the default table fits in 120 columns whatever the path and name lengths ---------------------------------

/** A cell cut with an ellipsis in the middle stands for `full` when it keeps its start and its end. */
const names = (cell: string, full: string) => cell === full || (cell.includes('…') && full.startsWith(cell.split('…')[0]) && full.endsWith(cell.split('…')[1]));

test('with a 100-character pki.dir, a long pki.remote_dir and long host names every line of the default table is under 120 columns and still names each certificate and its place; --wide shows the SANs', async (t) => {
  const file = writeInventory({});
  const pkiDir = path.join(path.dirname(file), 'operator/clusters/production-eu-west');
  const longDir = `${pkiDir}/${'x'.repeat(100 - pkiDir.length - 5)}/pki`;
  t.is(longDir.length, 100);
  const remoteDir = '/srv/kubetls/production-eu-west-1/control-plane/certificates-managed-by-kubetls-for-the-operators';
  // modern minion names have at most 52 characters; these two differ only at their end, as fleets name them
  const m = (n: number) => `production-eu-west-1-kubernetes-worker-node-00${n}`.padEnd(52, '0').slice(0, 50) + `-${n}`;
  const minions = [m(1), m(2)];
  const master = 'production-eu-west-1-kubernetes-control-plane-node-0001';
  writeInventory({ profile: 'modern', pki: { dir: longDir, remote_dir: remoteDir, key: 'ecdsa-p256' }, master: { name: master, address: master },
    apiserver: { dns: ['kubernetes.default.svc', master], ip: ['10.24.0.1'] }, minions }, path.dirname(file));
  const inv = loadInventory(file);
  await applyPki(inv, planPki(inv));
  const r = await runScript('status.ts', ['--inventory', file]);
  t.is(r.code, 0, r.all);
  const lines = r.stdout.split('\n');
  for (const l of lines) t.true(l.length < 120, `${l.length} columns: ${l}`);
  // every row of --json has a row in the table that names the certificate (file name in its folder) and its place
  const { rows } = JSON.parse((await runScript('status.ts', ['--inventory', file, '--json'])).stdout) as { rows: { name: string; where: string }[] };
  const expected = rows.filter((x) => !/^(ca|etcd-ca|front-proxy-ca)\.crt$/.test(x.name)).map((x) => {
    const at = /^([a-z0-9-]+):(\/.*)$/.exec(x.where);
    return at ? { cert: at[2].startsWith(`${remoteDir}/`) ? at[2].slice(remoteDir.length + 1) : at[2], where: at[1] } : { cert: x.name, where: 'local' };
  });
  t.true(expected.some((e) => e.where === minions[1] && e.cert === '/var/lib/kubelet/kubeconfig'));
  t.true(expected.some((e) => e.where === master && e.cert === 'scheduler.conf'));
  const table = lines.slice(lines.findIndex((l) => l.startsWith('CERTIFICATE ')) + 1, lines.indexOf(''));
  const cells = table.map((l) => l.split(/ {2,}/));
  const certs = [...new Set(expected.map((e) => e.cert))];
  const places = [...new Set(expected.map((e) => e.where))];
  for (const e of expected) {
    const hits = cells.filter(([c, w]) => names(c, e.cert) && names(w, e.where));
    t.is(hits.length, 1, `${e.cert} at ${e.where}: ${hits.length} rows name it\n${r.stdout}`);
    if (hits.length !== 1) continue;
    // a cut name stands for one name only
    t.deepEqual(certs.filter((c) => names(hits[0][0], c)), [e.cert]);
    t.deepEqual(places.filter((p) => names(hits[0][1], p)), [e.where]);
  }
  t.true(r.stdout.includes(longDir), 'the pki.dir is printed in full once');
  const wide = await runScript('status.ts', ['--inventory', file, '--wide']);
  t.is(wide.code, 0, wide.all);
  t.regex(wide.stdout, new RegExp(`^kubelet-${minions[1]}\\.crt +local .* CN=system:node:${minions[1]} +DNS:${minions[1]}$`, 'm'));
  t.true(wide.stdout.split('\n').some((l) => l.length >= 120), '--wide cuts nothing');
  // a folder inside a status is cut to its last part: the row fits and still names the file
  chmodSync(path.join(longDir, 'ca.key'), 0o644);
  const insecure = await runScript('status.ts', ['--inventory', file]);
  t.is(insecure.code, 1, insecure.all);
  const ca = insecure.stdout.split('\n').find((l) => l.startsWith('ca ')) ?? '';
  t.regex(ca, / insecure mode 0644: …\/pki\/ca\.key$/);
  t.true(ca.length < 120, ca);
});

test('two names that differ only in their middle are never cut to the same text, and a table that fits is not cut', async (t) => {
  const { fitTable } = await import('../lib/table.ts');
  const a = 'kubelet-production-eu-west-1a-kubernetes-worker-node-01.crt';
  const b = 'kubelet-production-eu-west-1b-kubernetes-worker-node-01.crt';
  const c = 'kubelet-production-eu-west-1c-kubernetes-worker-node-99.crt';
  const fit = { width: 40, cut: [0], last: 16 };
  const cells = (text: string) => text.split('\n').slice(1).map((l) => l.split(/ {2,}/)[0]);
  const apart = fitTable(['CERTIFICATE', 'STATUS'], [[a, 'ok'], [b, 'ok']], fit);
  t.true(apart.cut);
  const [x, y] = cells(apart.text);
  t.not(x, y, apart.text);
  t.true(names(x, a) && !names(x, b) && names(y, b) && !names(y, a), apart.text);
  // names that differ at their end are cut to the width asked
  const short = fitTable(['CERTIFICATE', 'STATUS'], [[a, 'ok'], [c, 'renew due']], fit);
  for (const l of short.text.split('\n')) t.true(l.length <= 40, l);
  t.deepEqual(cells(short.text).map((s, i) => names(s, [a, c][i])), [true, true]);
  const fits = fitTable(['CERTIFICATE', 'STATUS'], [['server.crt', 'ok']], fit);
  t.false(fits.cut);
  t.is(fits.text, 'CERTIFICATE  STATUS\nserver.crt   ok');
});
