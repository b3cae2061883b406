/**
 * The bad-inventory corpus: test/fixtures/inventory/corpus/*.yaml, each opening with the exact message(s) a user must
 * see, one `# expect: ERROR: FILE:LINE: key: expected …, found …` line per problem (FILE stands for the path given).
 * Every fixture goes through loadInventory, which must throw an InventoryError (scripts turn it into exit 2) saying
 * exactly that; a sample goes through master.ts as a user runs it.
 */
import { copyFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { InventoryError } from '../lib/inventory/errors.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { repoRoot, tempDir } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

const corpus = path.join(repoRoot, 'test/fixtures/inventory/corpus');
const fixtures = readdirSync(corpus).filter((f) => f.endsWith('.yaml')).sort();

/** The expected lines of a fixture, with FILE replaced by the path the inventory is loaded as. */
function expected(file: string, shownAs: string): string[] {
  const lines = readFileSync(path.join(corpus, file), 'utf8').split('\n');
  return lines.filter((l) => l.startsWith('# expect: ')).map((l) => l.slice('# expect: '.length).replace('FILE', shownAs));
}

test('the corpus holds at least 60 bad inventories, each with its expected message', (t) => {
  t.true(fixtures.length >= 60, `${fixtures.length} fixtures`);
  for (const f of fixtures) t.true(expected(f, 'x').length > 0, `${f} has no '# expect:' line`);
});

for (const file of fixtures) {
  test(`corpus ${file} is refused with its exact message`, (t) => {
    const rel = path.relative(process.cwd(), path.join(corpus, file));
    const e = t.throws(() => loadInventory(rel), { instanceOf: InventoryError });
    t.deepEqual(e!.message.split('\n'), expected(file, rel));
    for (const line of e!.message.split('\n')) t.regex(line, /^ERROR: .+:\d+: /);
    t.false(existsSync(path.join(corpus, 'pki')));
  });
}

// One of each family, the way a user meets them: exit 2, the exact lines on stderr, nothing on stdout, no pki/.
const cli = ['minion-ca.yaml', 'remote-dir-srv.yaml', 'cn-subject-injection.yaml', 'ip-zone-id.yaml', 'yaml-alias-bomb.yaml',
  'cn-newline-forged-error.yaml', 'minion-same-endpoint.yaml', 'no-san.yaml'];
for (const file of cli) {
  test(`master.ts --pki-only with corpus ${file} exits 2 with its message and creates no pki folder`, async (t) => {
    const dir = tempDir('kubetls-corpus-');
    const inv = path.join(dir, 'cluster.yaml');
    copyFileSync(path.join(corpus, file), inv);
    const r = await runScript('master.ts', ['--pki-only', '--inventory', inv]);
    t.is(r.code, 2, r.all);
    t.deepEqual(r.stderr.trimEnd().split('\n'), expected(file, inv));
    t.is(r.stdout, '');
    t.deepEqual(readdirSync(dir), ['cluster.yaml']);
  });
}
