/**
 * Start-up cost. The commands an operator and cron run (master, minions, verify, status, renew) run from
 * one precompiled JavaScript file each instead of compiling TypeScript through tsx on every start and resolving a few
 * hundred module files: a cron run with nothing to do costs about a fifth of the CPU.
 *
 * - esbuild (the compiler tsx itself runs on) bundles scripts/<command>.ts with lib/, config/ and the pure-JavaScript
 *   dependencies; ssh2 and ssh2-sftp-client stay outside (ssh2 loads an optional native addon at run time).
 * - The bundles live in dist/, one folder below the package root like scripts/ and lib/, so the few paths our code
 *   takes from import.meta.url (package.json, scripts/) still resolve. The lab (lab/) is never bundled: it finds
 *   its scripts (rootfs.sh, kube/build.sh) and the stand-ins next to its own source, and lab/demo are not commands a cron job runs.
 * - Content-addressed: a bundle is dist/<command>-<H>.mjs, H the sha256 of every file it was built from (esbuild's
 *   metafile: our sources by content, each bundled dependency by its package.json) plus our package.json, as they
 *   were when the build started. dist/.inputs.json lists those files. On every start bin/kubetls.mjs hashes them again
 *   (about 2 ms) and runs dist/<command>-<H>.mjs only if that exact file exists; a source changed since means another
 *   H, no such file, and a rebuild (about 1 s), or, when dist/ cannot be written (a global install run by another
 *   user), the TypeScript through tsx exactly as before. Two starts building at once write different names or the
 *   same bytes: no interleaving can pair a list with a bundle built from other sources.
 * - `npm pack` runs this file (prepack), so an installed package starts with current bundles.
 *   node bin/build.mjs            build (or rebuild) dist/
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
export const DIST = path.join(ROOT, 'dist');
export const BUNDLED = ['master', 'minions', 'verify', 'status', 'renew'];
const LIST = path.join(DIST, '.inputs.json');

const readOrUndefined = (f) => (existsSync(path.join(ROOT, f)) ? readFileSync(path.join(ROOT, f)) : undefined);
function hashOf(files, read = readOrUndefined) {
  const h = createHash('sha256');
  for (const f of [...files, 'package.json']) h.update(`${f}\0`).update(read(f) ?? Buffer.from('\0absent'));
  return h.digest('hex').slice(0, 20);
}
const bundleFile = (command, hash) => path.join(DIST, `${command}-${hash}.mjs`);

/** The bundle for `command` built from exactly the sources on disk now, if there is one; else undefined. */
export function freshBundle(command) {
  if (!BUNDLED.includes(command)) return undefined;
  let inputs;
  try { inputs = JSON.parse(readFileSync(LIST, 'utf8')).inputs; } catch { return undefined; }
  // a list that does not name the command's own script, or names a file that is gone, describes another tree
  if (!Array.isArray(inputs) || !inputs.includes(`scripts/${command}.ts`) || !inputs.every((f) => existsSync(path.join(ROOT, f)))) return undefined;
  const file = bundleFile(command, hashOf(inputs));
  return existsSync(file) ? file : undefined;
}

/** Build every bundle into a private folder, then move them into dist/ under their content names, the list last. */
export async function build() {
  const { build: esbuild } = await import('esbuild');
  const tmp = path.join(DIST, `.tmp-${process.pid}`);
  mkdirSync(tmp, { recursive: true });
  // the sources as they are when the build starts: a file edited during the build makes the names stale, not wrong
  const before = new Map();
  const snap = (f) => { if (!before.has(f)) before.set(f, readOrUndefined(f)); return before.get(f); };
  for (const d of ['scripts', 'lib', 'config']) for (const f of readdirSync(path.join(ROOT, d), { recursive: true })) if (/\.(ts|mjs|json)$/.test(f)) snap(path.join(d, f));
  snap('package.json');
  try {
    const r = await esbuild({
      absWorkingDir: ROOT, // metafile paths relative to the package, wherever the build was started from
      entryPoints: BUNDLED.map((c) => ({ in: path.join('scripts', `${c}.ts`), out: c })),
      outdir: tmp, outExtension: { '.js': '.mjs' },
      bundle: true, platform: 'node', format: 'esm', target: 'node20', metafile: true, logLevel: 'error', legalComments: 'none',
      external: ['ssh2', 'ssh2-sftp-client', 'cpu-features', 'esbuild', 'tsx', 'tsx/*'],
      // CommonJS dependencies bundled into an ES module still call require() for node's own modules
      banner: { js: "import { createRequire as __kubetlsRequire } from 'node:module'; const require = __kubetlsRequire(import.meta.url);" },
    });
    const inputs = new Set();
    for (const f of Object.keys(r.metafile.inputs)) {
      const parts = f.split('/');
      const nm = parts.lastIndexOf('node_modules');
      if (nm < 0) { inputs.add(f); continue; }
      // a dependency stands for itself by its package.json (name and version): hashing every file of it each start would cost more than it saves
      // (named from the package's own node_modules/, also when that folder is a link to another checkout's)
      const pkg = parts.slice(parts.indexOf('node_modules'), nm + (parts[nm + 1]?.startsWith('@') ? 3 : 2)).join('/');
      inputs.add(`${pkg}/package.json`);
    }
    const list = [...inputs].sort();
    const hash = hashOf(list, (f) => (before.has(f) ? before.get(f) : snap(f)));
    for (const c of BUNDLED) renameSync(path.join(tmp, `${c}.mjs`), bundleFile(c, hash));
    writeFileSync(path.join(tmp, 'inputs'), `${JSON.stringify({ inputs: list }, null, 1)}\n`);
    renameSync(path.join(tmp, 'inputs'), LIST);
    // bundles of older sources: not needed any more (a process still running one keeps its open file)
    for (const f of readdirSync(DIST)) if (/^[a-z]+-[0-9a-f]{20}\.mjs$/.test(f) && !f.endsWith(`-${hash}.mjs`)) rmSync(path.join(DIST, f), { force: true });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await build();
  // stderr: `npm pack --json` runs this as prepack, and its stdout must stay JSON
  process.stderr.write(`built ${BUNDLED.map((c) => `dist/${c}-*.mjs`).join(', ')}\n`);
}
