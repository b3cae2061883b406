/**
 * The docs a user gets: the README is the front door (one screen), every page of docs/ ends with Next / Previous / Top,
 * every link points at a file a clone has, and no user-facing text names a file outside the repository or an internal
 * work item. The last test feeds the link checker the bad cases.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { repoRoot } from './helpers/inventory.ts';

const pages = readdirSync(path.join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
const userFacing = ['README.md', 'SECURITY.md', 'cluster.yaml', 'lab/README.md', ...pages];
const read = (f: string) => readFileSync(path.join(repoRoot, f), 'utf8');

/** The relative links of a markdown text (`[x](path)`, `[x](path#anchor)`) that do not resolve to a file under `root`. */
function brokenLinks(root: string, file: string, text: string): string[] {
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l) && !l.startsWith('#'))
    .filter((l) => {
      const target = path.resolve(root, path.dirname(file), l.split('#')[0]!);
      return !target.startsWith(`${root}${path.sep}`) || !existsSync(target);
    });
}

/** What a user-facing text must not name: a file outside the clone, or an internal work item. */
function outsideNames(text: string): string[] {
  return [...text.matchAll(/SEED\.md|\.\.\/shared\b|\b[Ii]ssues? #?\d+\b|\bstop \d+\b/g)].map((m) => m[0]);
}

test('the README is one screen: at most 60 lines and 6 KB, with the two commands and the list of docs', (t) => {
  const readme = read('README.md');
  t.true(readme.split('\n').length <= 60, `${readme.split('\n').length} lines`);
  t.true(Buffer.byteLength(readme) <= 6144, `${Buffer.byteLength(readme)} bytes`);
  t.regex(readme, /^npm ci && npm run demo\b/m);
  t.regex(readme, /^npm test\b/m);
  for (const p of pages) t.true(readme.includes(`](${p})`), `the README lists ${p}`);
});

test('every docs page ends with Next / Previous / Top links that resolve', (t) => {
  t.true(pages.length >= 10);
  for (const p of pages) {
    const last = read(p).trimEnd().split('\n').at(-1)!;
    t.regex(last, /^Next: \[[^\]]+\]\([^)]+\) · Previous: \[[^\]]+\]\([^)]+\) · Top: \[README\]\(\.\.\/README\.md\)$/, p);
  }
});

test('every relative link of the README and the docs points at a file the clone has', (t) => {
  for (const f of userFacing.filter((x) => x.endsWith('.md'))) t.deepEqual(brokenLinks(repoRoot, f, read(f)), [], f);
});

test('no user-facing text names a file outside the repository or an internal work item', (t) => {
  for (const f of userFacing) t.deepEqual(outsideNames(read(f)), [], f);
  // nor what the commands print: the log lines and help texts live in scripts/, lib/ and bin/
  for (const dir of ['scripts', 'lib', 'config', 'bin']) {
    for (const f of readdirSync(path.join(repoRoot, dir), { recursive: true, encoding: 'utf8' }).filter((x) => /\.(ts|mjs)$/.test(x))) {
      t.deepEqual(outsideNames(read(`${dir}/${f}`)), [], `${dir}/${f}`);
    }
  }
});

test('the checks themselves: a link outside the clone or to a missing file, SEED.md and a work item number are found', (t) => {
  t.deepEqual(brokenLinks(repoRoot, 'docs/x.md', '[a](../README.md) [b](recipe.md#step-2) [c](../../shared/SEED.md) [d](nope.md) [e](https://k8s.io) [f](#top)'),
    ['../../shared/SEED.md', 'nope.md']);
  t.deepEqual(outsideNames('see ../shared/SEED.md (issue 19); issues 12 and 20; the stop 25 note; a CA issued by'), ['../shared', 'SEED.md', 'issue 19', 'issues 12', 'stop 25']);
});
