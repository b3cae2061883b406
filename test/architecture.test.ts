/**
 * The layout kept honest (docs/architecture.md): the product's modules (lib/ and config/) form no import circle,
 * lib/ holds the product only (it imports nothing of scripts/, test/, bench/ or the lab), config/ is data (it imports
 * only config/ and the inventory's types), the lab and the bench stand apart from the tests, and no module of the
 * product grows past 400 lines. The graph is
 * read from the source text by test/helpers/imports.ts; the last tests feed that reader the bad cases.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { circles, forbiddenImports, importGraph, specifiers } from './helpers/imports.ts';
import { repoRoot, tempDir } from './helpers/inventory.ts';

const graph = importGraph(repoRoot, ['lib', 'config']);
const MAX_LINES = 400;

test('the product has no import circle', (t) => {
  t.true(graph.size > 40, `the reader found ${graph.size} modules: it reads lib/ and config/`);
  t.deepEqual(circles(graph), []);
});

test('lib/ and config/ import nothing of scripts/, test/, bench/, bin/ or the lab', (t) => {
  t.deepEqual(forbiddenImports(graph, () => true, (to) => to.startsWith('lib/') || to.startsWith('config/')), []);
});

test('config/ imports only config/ and the inventory\'s types (lib/inventory.ts)', (t) => {
  t.deepEqual(forbiddenImports(graph, (f) => f.startsWith('config/'), (to) => to.startsWith('config/') || to === 'lib/inventory.ts'), []);
  // and lib/inventory.ts is types and pure questions: it imports nothing of ours, so config/ stays a leaf
  t.deepEqual(graph.get('lib/inventory.ts'), []);
});

test('the lab stands apart (it imports nothing of the product, the scripts or the tests) and bench/ reaches into no test helper', (t) => {
  const lab = importGraph(repoRoot, ['lab']);
  t.true(lab.size > 10);
  t.deepEqual(forbiddenImports(lab, () => true, (to) => to.startsWith('lab/')), []);
  t.deepEqual(forbiddenImports(importGraph(repoRoot, ['bench']), () => true, (to) => !to.startsWith('test/')), []);
});

test(`no module under lib/ or config/ is longer than ${MAX_LINES} lines`, (t) => {
  const long = [...graph.keys()].map((f) => [f, readFileSync(path.join(repoRoot, f), 'utf8').split('\n').length - 1] as const).filter(([, n]) => n > MAX_LINES);
  t.deepEqual(long.map(([f, n]) => `${f}: ${n}`), []);
});

// ---- the reader and the checks, fed the bad cases ---------------------------------------------------------------------

/** A throwaway tree: path → source. */
function tree(files: Record<string, string>): string {
  const root = tempDir('kubetls-arch-');
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    writeFileSync(path.join(root, f), text);
  }
  return root;
}

test('a module made to import a module that imports it is a circle, named with both files', (t) => {
  const root = tree({
    'lib/a.ts': "import { b } from './sub/b.ts';\nexport const a = b;\n",
    'lib/sub/b.ts': "import type { A } from '../a.ts';\nexport const b = 1; export type B = A;\n",
    'lib/c.ts': "import { a } from './a.ts';\n",
  });
  t.deepEqual(circles(importGraph(root, ['lib'])), [['lib/a.ts', 'lib/sub/b.ts']]);
});

test('a longer circle, a self-import and a dynamic import are found too; a straight chain is none', (t) => {
  const root = tree({
    'lib/x.ts': "export { y } from './y.ts';\n",
    'lib/y.ts': "const z = await import('./z.ts');\nexport const y = z;\n",
    'lib/z.ts': "import './x.ts';\n",
    'lib/self.ts': "import { s } from './self.ts';\nexport const t = s;\n",
    'config/one.ts': "import { two } from './two.ts';\n",
    'config/two.ts': 'export const two = 2;\n',
  });
  t.deepEqual(circles(importGraph(root, ['lib', 'config'])), [['lib/self.ts'], ['lib/x.ts', 'lib/y.ts', 'lib/z.ts']]);
});

test('lib/ importing scripts/ or the lab, and config/ importing lib/, are named', (t) => {
  const root = tree({
    'lib/a.ts': "import { main } from '../scripts/x.ts';\nimport { labUp } from '../lab/index.ts';\nimport type { Host } from './inventory.ts';\n",
    'lib/inventory.ts': 'export interface Host { name: string }\n',
    'config/c.ts': "import type { Host } from '../lib/inventory.ts';\nimport { log } from '../lib/log.ts';\n",
    'lib/log.ts': 'export const log = 1;\n',
  });
  const g = importGraph(root, ['lib', 'config']);
  t.deepEqual(forbiddenImports(g, () => true, (to) => to.startsWith('lib/') || to.startsWith('config/')), ['lib/a.ts → scripts/x.ts', 'lib/a.ts → lab/index.ts']);
  t.deepEqual(forbiddenImports(g, (f) => f.startsWith('config/'), (to) => to.startsWith('config/') || to === 'lib/inventory.ts'), ['config/c.ts → lib/log.ts']);
});

test('an import in a comment or a string is no arrow; a package or node: import is outside the tree', (t) => {
  t.deepEqual(specifiers([
    "import { a } from './a.ts';",
    "// import { b } from './b.ts';",
    "/* import { c } from './c.ts'; */",
    "const s = 'import nothing';",
    "import { x } from 'node:fs';",
    "import { z } from 'zod';",
    'import {\n  d,\n  type E,\n} from "./d.ts";', // over several lines, in double quotes
  ].join('\n')), ['./a.ts', './d.ts']);
});
