import test from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadInventory } from '../lib/inventory.ts';
import { configureLog } from '../lib/log.ts';
import { acquireLock, lockPath } from '../lib/lock.ts';
import { applyPki, planPki } from '../lib/pki.ts';
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
  writeInventory({ pki: { days: 2, renew_before_days: 1 }, apiserver: { ip: ['10.24.0.1', '10.0.0.5'] }, minions: ['kubeminion1', 'kubeminion2', 'kubeminion3'] }, path.dirname(file));
  rmSync(path.join(dir, 'tokens.csv'));
  const r = await runScript('status.ts', ['--inventory', file]);
  t.is(r.code, 1, r.all);
  const line = (name: string) => r.stdout.split('\n').find((l) => l.startsWith(name)) ?? '';
  t.regex(line('server.crt'), /drift: SAN added: IP:10\.0\.0\.5$/);
  t.regex(line('kubeminion1.crt'), /renew due$/);
  t.regex(line('kubeminion3.crt'), /missing$/);
  t.regex(line('tokens.csv'), /missing$/);
  t.regex(line('ca.crt'), / ok$/);
  t.regex(r.stdout, /SUBJECT\s+SANS\s+NOT AFTER\s+DAYS\s+ISSUER\s+STATUS/);
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
  t.regex(r.stdout, /nothing to renew; next due: server\.crt in 334 d$/m);
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
