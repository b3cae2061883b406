/**
 * The records kubetls keeps beside the PKI (lib/state.ts) are read strictly: `.renew-pending.json` names the hosts an
 * earlier run left owed their files, and a damaged one is an error that names the file and says what to do — never
 * "nothing pending", which would let renew.ts say "nothing to renew" for ever, or retire a token a host still uses.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { loadInventory } from '../lib/inventory/load.ts';
import { readTokenFile } from '../lib/pki/token.ts';
import { writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

async function pki(patch: Record<string, unknown> = {}) {
  const file = writeInventory(patch);
  const r = await runScript('master.ts', ['--pki-only', '--inventory', file]);
  if (r.code !== 0) throw new Error(r.all);
  const inv = loadInventory(file);
  return { file, inv, p: (f: string) => path.join(inv.pki.dir, f) };
}

const damaged: [string, string, RegExp][] = [
  ['a stray comma', '["kubeminion1",]\n', /not JSON \(/],
  ['valid JSON that is not a list', '{"hosts":["kubeminion1"]}\n', /not a list of host names \(found \{"hosts":\["kubeminion1"\]\}\)/],
  ['a list of something else', '[1, 2]\n', /not a list of host names/],
  ['an empty file', '', /not JSON/],
];

for (const [what, text, why] of damaged) {
  test(`renew.ts refuses a .renew-pending.json with ${what}: exit 1, the file named and what to do, nothing renewed`, async (t) => {
    const { file, p } = await pki();
    writeFileSync(p('.renew-pending.json'), text, { mode: 0o600 });
    const before = readFileSync(p('server.crt'));
    const r = await runScript('renew.ts', ['--inventory', file]);
    t.is(r.code, 1, r.all);
    t.regex(r.stderr, why);
    t.regex(r.stderr, /ERROR: \S*\.renew-pending\.json: .* It lists the hosts an earlier run left owed the current files, so it cannot be guessed: fix it, or write the name of every host in it/);
    t.notRegex(r.all, /nothing to renew|is not a function/);
    t.deepEqual(readFileSync(p('server.crt')), before);
    t.is(readFileSync(p('.renew-pending.json'), 'utf8'), text, 'the record is left for the operator, as it was');
  });
}

test('during an unfinished token rotation a damaged record never lets renew retire the token a host may still use', async (t) => {
  const { file, inv, p } = await pki();
  // a rotation half done: the new token first, the old one still accepted on the second line (what renew --cert tokens --force leaves)
  const old = readTokenFile(inv)!;
  writeFileSync(p('tokens.csv'), `${'N'.repeat(32)},kubelet,kubelet\n${old.currentLine}\n`, { mode: 0o600 });
  writeFileSync(p('.token-retiring'), `${createHash('sha256').update(old.current).digest('hex')}\n`, { mode: 0o600 });
  writeFileSync(p('.renew-pending.json'), '["kubeminion1",', { mode: 0o600 });
  const r = await runScript('renew.ts', ['--inventory', file]);
  t.is(r.code, 1, r.all);
  t.regex(r.stderr, /\.renew-pending\.json: not JSON/);
  t.is(readFileSync(p('tokens.csv'), 'utf8').split('\n').filter(Boolean).length, 2, 'the old token is still accepted');
  t.notRegex(r.all, /retire the old token/);
});

test('status says the record is unreadable (exit 1, a row of its own), and names the hosts a readable one owes', async (t) => {
  const { file, p } = await pki();
  writeFileSync(p('.renew-pending.json'), '["kubeminion1",]', { mode: 0o600 });
  const bad = await runScript('status.ts', ['--inventory', file, '--json']);
  t.is(bad.code, 1);
  const row = (JSON.parse(bad.stdout) as { rows: { name: string; status: string }[] }).rows.find((x) => x.name === 'renew pending');
  t.regex(row?.status ?? 'no row', /^unreadable: \S*\.renew-pending\.json: not JSON/);
  writeFileSync(p('.renew-pending.json'), '["kubeminion1"]\n', { mode: 0o600 });
  const owed = await runScript('status.ts', ['--inventory', file, '--json']);
  t.is(owed.code, 1);
  t.is((JSON.parse(owed.stdout) as { rows: { name: string; status: string }[] }).rows.find((x) => x.name === 'renew pending')?.status,
    'renew due: kubeminion1 is still owed the current files by an earlier run; renew.ts finishes it');
});

test('a CA rotation is refused before it starts when the record is damaged', async (t) => {
  const { file, p } = await pki({ profile: 'modern' });
  writeFileSync(p('.renew-pending.json'), '{', { mode: 0o600 });
  const r = await runScript('renew.ts', ['--inventory', file, '--rotate-ca', 'cluster']);
  t.is(r.code, 1, r.all);
  t.regex(r.stderr, /\.renew-pending\.json: not JSON/);
  t.false(readFileSync(p('.renew-pending.json'), 'utf8') !== '{');
  t.throws(() => readFileSync(p('.rotate-ca.json')), undefined, 'no rotation recorded');
});
