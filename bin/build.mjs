/**
 * Start-up cost (issue 11). The commands an operator and cron run (master, minions, verify, status, renew) run from
 * one precompiled JavaScript file each, dist/<command>.mjs, instead of compiling TypeScript through tsx on every start
 * and resolving a few hundred module files: a cron run with nothing to do costs about a fifth of the CPU.
 *
 * - esbuild (the compiler tsx itself runs on) bundles scripts/<command>.ts with lib/, config/ and the pure-JavaScript
 *   dependencies; ssh2 and ssh2-sftp-client stay outside (ssh2 loads an optional native addon at run time).
 * - The bundles live in dist/, one folder below the package root like scripts/ and lib/, so the few paths our code
 *   takes from import.meta.url (package.json, scripts/) still resolve. The lab (lib/lab) is never bundled: it finds
 *   host-init.sh and the stand-ins next to its own source, and lab/demo are not commands a cron job runs.
 * - dist/.stamp.json records the sha256 of every source file a bundle was built from (esbuild's metafile) plus
 *   package.json and package-lock.json. bin/kubetls.mjs hashes them again on every start (about 2 ms) and runs a
 *   bundle only when nothing changed; otherwise it rebuilds (about 1 s, written atomically: concurrent starts
 *   produce identical files), or, when dist/ cannot be written (a global install run by another user), runs the
 *   TypeScript through tsx exactly as before. Nothing can run a bundle older than its sources.
 * - `npm pack` runs this file (prepack), so an installed package starts with fresh bundles.
 *   node bin/build.mjs            build (or rebuild) dist/
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
export const DIST = path.join(ROOT, 'dist');
export const BUNDLED = ['master', 'minions', 'verify', 'status', 'renew'];
const STAMP = path.join(DIST, '.stamp.json');
const ALWAYS = ['package.json', 'package-lock.json'];

function hashOf(files, read = (f) => (existsSync(path.join(ROOT, f)) ? readFileSync(path.join(ROOT, f)) : undefined)) {
  const h = createHash('sha256');
  for (const f of files) h.update(`${f}\0`).update(read(f) ?? Buffer.from('\0absent'));
  return h.digest('hex');
}

/** The bundle for `command` when it is there and was built from exactly the sources on disk now; else undefined. */
export function freshBundle(command) {
  if (!BUNDLED.includes(command)) return undefined;
  let stamp;
  try { stamp = JSON.parse(readFileSync(STAMP, 'utf8')); } catch { return undefined; }
  const file = path.join(DIST, `${command}.mjs`);
  if (!Array.isArray(stamp.inputs) || !existsSync(file)) return undefined;
  return hashOf([...stamp.inputs, ...ALWAYS]) === stamp.hash ? file : undefined;
}

/** Build every bundle into a private folder, then move them into dist/ (each rename atomic), the stamp last. */
export async function build() {
  const { build: esbuild } = await import('esbuild');
  const tmp = path.join(DIST, `.tmp-${process.pid}`);
  mkdirSync(tmp, { recursive: true });
  // the sources as they are when the build starts: a file edited during the build makes the stamp stale, not wrong
  const before = new Map();
  const snap = (f) => { if (!before.has(f)) before.set(f, existsSync(path.join(ROOT, f)) ? readFileSync(path.join(ROOT, f)) : undefined); return before.get(f); };
  for (const d of ['scripts', 'lib', 'config']) for (const f of readdirSync(path.join(ROOT, d), { recursive: true })) if (/\.(ts|mjs|json)$/.test(f)) snap(path.join(d, f));
  ALWAYS.forEach(snap);
  try {
    const r = await esbuild({
      entryPoints: BUNDLED.map((c) => ({ in: path.join(ROOT, 'scripts', `${c}.ts`), out: c })),
      outdir: tmp, outExtension: { '.js': '.mjs' },
      bundle: true, platform: 'node', format: 'esm', target: 'node20', metafile: true, logLevel: 'error', legalComments: 'none',
      external: ['ssh2', 'ssh2-sftp-client', 'cpu-features', 'esbuild', 'tsx', 'tsx/*'],
      // CommonJS dependencies bundled into an ES module still call require() for node's own modules
      banner: { js: "import { createRequire as __kubetlsRequire } from 'node:module'; const require = __kubetlsRequire(import.meta.url);" },
    });
    // our own sources (not node_modules: package-lock.json stands for them)
    const inputs = Object.keys(r.metafile.inputs).map((f) => path.relative(ROOT, path.resolve(ROOT, f)))
      .filter((f) => !f.startsWith('..') && !f.split(path.sep).includes('node_modules')).sort();
    for (const c of BUNDLED) renameSync(path.join(tmp, `${c}.mjs`), path.join(DIST, `${c}.mjs`));
    writeFileSync(path.join(tmp, 'stamp'), `${JSON.stringify({ hash: hashOf([...inputs, ...ALWAYS], snap), inputs }, null, 1)}\n`);
    renameSync(path.join(tmp, 'stamp'), STAMP);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await build();
  // stderr: `npm pack --json` runs this as prepack, and its stdout must stay JSON
  process.stderr.write(`built ${BUNDLED.map((c) => `dist/${c}.mjs`).join(', ')}\n`);
}
