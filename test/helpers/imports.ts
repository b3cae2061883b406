/**
 * The import graph of a tree of our TypeScript, read from the source text: every `import … from '…'`, `export … from
 * '…'`, `import '…'` and `import('…')` with a literal relative specifier (either quote) (type-only imports included: a circle of types
 * is still a circle a reader has to untie). Every import in this codebase is one of those; a package name or `node:`
 * specifier is outside the tree and ignored.
 *
 * Why our own 80 lines and not madge (which zx runs as `madge --circular`): madge's TypeScript reader parses with the
 * `typescript` package's JavaScript API, and the TypeScript 7 package this project uses exports none
 * (`import('typescript')` gives `default`, `version`, `versionMajorMinor`); it would also bring a dependency tree of
 * its own to answer one question that our imports, all of one plain shape, answer in a few lines.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** file (relative to root, `/`-separated) → the files of the tree it imports */
export type Graph = Map<string, string[]>;

const SPECIFIER = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*(['"])([^'"]+)\1|(?:^|[\s;])import\s*(['"])([^'"]+)\3|import\(\s*(['"])([^'"]+)\5\s*\)/g;

/** The relative specifiers a source text imports (comments stripped first, so a commented-out import is no arrow). */
export function specifiers(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  return [...code.matchAll(SPECIFIER)].map((m) => m[2] ?? m[4] ?? m[6]!).filter((s) => s.startsWith('.'));
}

/** Every .ts file below `dirs` of `root`, and what each imports inside `root`. */
export function importGraph(root: string, dirs: string[]): Graph {
  const graph: Graph = new Map();
  for (const dir of dirs) {
    for (const f of readdirSync(path.join(root, dir), { recursive: true, encoding: 'utf8' })) {
      if (!f.endsWith('.ts')) continue;
      const file = path.posix.join(dir, f.split(path.sep).join('/'));
      const to = specifiers(readFileSync(path.join(root, file), 'utf8')).map((s) => path.posix.normalize(path.posix.join(path.posix.dirname(file), s)));
      graph.set(file, [...new Set(to)]);
    }
  }
  return graph;
}

/** The circles of a graph (Tarjan's strongly connected components of more than one file, or a file importing itself). */
export function circles(graph: Graph): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do { w = stack.pop()!; on.delete(w); scc.push(w); } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return found;
}

/** `a.ts → b.ts` for every import of a file matching `from` into a file that `allowed` refuses. */
export function forbiddenImports(graph: Graph, from: (f: string) => boolean, allowed: (to: string) => boolean): string[] {
  return [...graph].filter(([f]) => from(f)).flatMap(([f, to]) => to.filter((t) => !allowed(t)).map((t) => `${f} → ${t}`));
}
