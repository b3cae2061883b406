/**
 * tokens.csv across a token rotation (renew.ts --cert tokens --force): the new token takes the kubelet's line, the old
 * one stays accepted on a line of its own until every host has the new kubeconfig (.token-retiring names it by its
 * sha256), lines the operator added are kept, and what would lock hosts out is refused. The lab side (no request
 * refused during a rotation) is in test/renew.test.ts.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { loadInventory } from '../lib/inventory/load.ts';
import { configureLog } from '../lib/log.ts';
import { applyPki } from '../lib/pki/apply.ts';
import { planPki } from '../lib/pki/plan.ts';
import { PkiError } from '../lib/pki/read.ts';
import { readToken, readTokenFile, retiringToken } from '../lib/pki/token.ts';
import { writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

configureLog({ sink: () => undefined, tty: false });

async function built() {
  const inv = loadInventory(writeInventory());
  await applyPki(inv, planPki(inv));
  return inv;
}
const file = (inv: Awaited<ReturnType<typeof built>>) => path.join(inv.pki.dir, 'tokens.csv');
async function rotate(inv: Awaited<ReturnType<typeof built>>) {
  const plan = planPki(inv);
  for (const i of plan.items) i.action = i.kind === 'token' ? 'reissue' : 'keep';
  await applyPki(inv, plan);
}
const sha = (t: string) => createHash('sha256').update(t).digest('hex');

test('a rotation puts the new token on the kubelet\'s line (groups column kept), keeps the old one and the operator\'s own lines', async (t) => {
  const inv = await built();
  const old = readToken(inv)!;
  const admin = `${'A'.repeat(32)},admin,admin,"system:masters"`;
  writeFileSync(file(inv), `${old},kubelet,kubelet,"system:nodes"\n${admin}\n`, { mode: 0o600 });
  t.is(readToken(inv), old, 'a fourth column (groups) is a valid tokens.csv line');
  t.is(retiringToken(inv), undefined, 'another line is not a token being retired');
  await rotate(inv);
  const now = readToken(inv)!;
  t.not(now, old);
  t.is(readFileSync(file(inv), 'utf8'), `${now},kubelet,kubelet,"system:nodes"\n${old},kubelet,kubelet,"system:nodes"\n${admin}\n`);
  t.is(retiringToken(inv), old);
  t.is(readFileSync(path.join(inv.pki.dir, '.token-retiring'), 'utf8').trim(), sha(old), 'the marker holds the hash, never the token');
  t.deepEqual(readTokenFile(inv)!.others, [admin]);
});

test('a second rotation while the first still runs is refused: it would drop the token some hosts still use', async (t) => {
  const inv = await built();
  await rotate(inv);
  const content = readFileSync(file(inv), 'utf8');
  await t.throwsAsync(rotate(inv), { instanceOf: PkiError, message: /a token rotation is still running/ });
  t.is(readFileSync(file(inv), 'utf8'), content, 'tokens.csv unchanged');
  const r = await runScript('renew.ts', ['--inventory', inv.file, '--cert', 'tokens', '--force']);
  t.is(r.code, 2, r.all);
  t.regex(r.stderr, /a token rotation is still running .*run renew\.ts without --cert to finish it/);
});

test('without the marker a second kubelet line is the operator\'s, never retired; renew --cert tokens --only without the master is refused', async (t) => {
  const inv = await built();
  const cur = readToken(inv)!;
  const second = `${'B'.repeat(32)},kubelet,kubelet`;
  writeFileSync(file(inv), `${cur},kubelet,kubelet\n${second}\n`, { mode: 0o600 });
  t.is(retiringToken(inv), undefined);
  t.deepEqual(readTokenFile(inv)!.others, [second]);
  t.false(existsSync(path.join(inv.pki.dir, '.token-retiring')));
  const r = await runScript('renew.ts', ['--inventory', inv.file, '--cert', 'tokens', '--force', '--only', 'kubeminion1']);
  t.is(r.code, 2, r.all);
  t.regex(r.stderr, /--cert tokens needs the master first: add kubemaster to --only/);
  t.is(readToken(inv), cur, 'nothing rotated');
});

test('with three masters, renew --cert tokens --only needs every master (each apiserver must accept the new token first); without --only it is not refused', async (t) => {
  const inv = loadInventory(writeInventory({ profile: 'modern', pki: { key: 'ecdsa-p256' }, master: undefined,
    masters: [{ name: 'm1', address: '127.0.0.1', port: 1 }, { name: 'm2', address: '127.0.0.2', port: 1 }, { name: 'm3', address: '127.0.0.3', port: 1 }],
    apiserver: { endpoint: { name: 'lb', address: '127.0.0.4' } } }));
  await applyPki(inv, planPki(inv));
  const cur = readToken(inv);
  const r = await runScript('renew.ts', ['--inventory', inv.file, '--cert', 'tokens', '--force', '--only', 'm1,kubeminion1']);
  t.is(r.code, 2, r.all);
  t.regex(r.stderr, /--cert tokens needs the masters first: add m2, m3 to --only/);
  t.is(readToken(inv), cur, 'nothing rotated');
  // without --only every master is in the run: nothing to refuse (an early draft read the missing --only list and threw)
  const all = await runScript('renew.ts', ['--inventory', inv.file, '--cert', 'tokens', '--force', '--dry-run']);
  t.is(all.code, 0, all.all);
  t.notRegex(all.all, /TypeError|needs the master/);
});
