/**
 * `npm pack` + `npm install -g`, end to end, the way an operator installs kubetls: the tarball is installed into a
 * fresh prefix and its `kubetls` builds a real PKI in a folder outside the checkout.
 *
 * Without the Internet. `npm install -g --offline` cannot work from the cache `npm ci` filled: `npm ci` fetches the
 * tarballs the lockfile names, never the registry's package documents (packuments) that `npm install <tarball>` needs
 * to resolve the tarball's version ranges, so it fails with ENOTCACHED. Instead the test serves a registry on
 * 127.0.0.1: one packument per package built from package-lock.json (the versions `npm ci` installed), and each
 * tarball's bytes read from npm's cache by the lockfile's integrity. npm then runs unchanged, with its own (empty) cache
 * folder, and nothing leaves loopback. A tarball missing from the cache is a 404, and the install fails: no fallback.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { repoRoot, writeInventory } from './helpers/inventory.ts';

interface LockEntry {
  name?: string; version: string; integrity?: string; link?: boolean; [key: string]: unknown;
}

/** The environment of an operator's shell: none of what `npx ava` (and the checkout's .npmrc) set for us. */
const operatorEnv = (): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !/^npm_/i.test(k)));

/** A read-only npm registry on loopback for the packages of package-lock.json, tarballs from npm's cache. */
async function lockfileRegistry(cache: string): Promise<{ url: string; served: string[]; close: () => void }> {
  const lock = JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const byName = new Map<string, Map<string, LockEntry>>();
  for (const [key, e] of Object.entries(lock.packages)) {
    if (!key || e.link || !e.integrity) continue;
    const name = e.name ?? key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
    byName.set(name, (byName.get(name) ?? new Map()).set(e.version, e));
  }
  const served: string[] = [];
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent((req.url ?? '/').slice(1));
    const tgz = /^(.+)\/-\/(.+)\.tgz$/.exec(url); // <name>/-/<base name>-<version>.tgz, as dist.tarball below says
    if (tgz) {
      const version = tgz[2].slice(tgz[1].split('/').at(-1)!.length + 1);
      const e = byName.get(tgz[1])?.get(version);
      // cacache's layout: content-v2/<algorithm>/<hex digest, split 2/2/rest>
      const [algo, b64] = (e?.integrity ?? '').split(/-(.*)/s);
      const hex = Buffer.from(b64 ?? '', 'base64').toString('hex');
      const file = path.join(cache, '_cacache', 'content-v2', algo, hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
      if (!e || !hex || !existsSync(file)) { res.writeHead(404).end(); return; }
      served.push(`${tgz[1]}@${version}`);
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(readFileSync(file));
      return;
    }
    const versions = byName.get(url);
    if (!versions) { res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}'); return; }
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const doc = {
      name: url,
      'dist-tags': { latest: [...versions.keys()].at(-1) },
      versions: Object.fromEntries([...versions].map(([v, e]) => {
        const { integrity, name: _n, version: _v, resolved: _r, dev: _d, optional: _o, devOptional: _do, peer: _p, license: _l, funding: _f, ...meta } = e;
        return [v, { name: url, version: v, ...meta, dist: { integrity, tarball: `${base}/${url}/-/${url.split('/').at(-1)}-${v}.tgz` } }];
      })),
    };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, served, close: () => server.close() };
}

/** What the tarball must not carry: tests, npm's config, the lab, a PKI, anything that looks like a key or a token. */
const forbidden = (files: string[]) => files.filter((f) => /^(test|bench|\.lab|pki|node_modules|\.stryker-tmp|reports)\//.test(f)
  || /(^|\/)(\.npmrc|\.gitignore|tokens\.csv|id_ed25519|known_hosts)$/.test(f) || /\.(key|pem|crt|csr|srl|prom)$/.test(f) || (/(^|\/)pki\//.test(f) && !f.startsWith('lib/pki/')));

test('the forbidden-files check flags a PKI, the lab, the tests and .npmrc', (t) => {
  t.deepEqual(forbidden(['pki/ca.key', '.lab/lab/id_ed25519', 'test/pack.test.ts', '.npmrc', 'lib/x/server.crt', 'lib/pki/plan.ts', 'config/files.ts', 'lab/pki/x.ts']),
    ['pki/ca.key', '.lab/lab/id_ed25519', 'test/pack.test.ts', '.npmrc', 'lib/x/server.crt', 'lab/pki/x.ts']);
});

test('npm pack + npm install -g (no Internet) gives a kubetls that answers --version and --help and builds a PKI that openssl verifies, outside the checkout', async (t) => {
  t.timeout(240_000); // about 15-25 s alone; npm is slow when the 2 cores are busy with other test files
  const tmp = mkdtempSync(path.join(tmpdir(), 'kubetls-pack-'));
  const env = operatorEnv();
  const npm = (args: string[], cwd: string) => execa('npm', args, { cwd, env, extendEnv: false, reject: false, all: true });
  const cache = (await npm(['config', 'get', 'cache'], repoRoot)).stdout.trim();
  const registry = await lockfileRegistry(cache);
  try {
    // 1. the tarball: what the scripts load at run time, and nothing secret
    const packed = await npm(['pack', '--json', '--pack-destination', tmp], repoRoot);
    t.is(packed.exitCode, 0, packed.all);
    const [{ filename, files }] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    const paths = files.map((f) => f.path);
    for (const need of ['bin/kubetls.mjs', 'package.json', 'scripts/master.ts', 'scripts/status.ts', 'scripts/lab.ts', 'lib/pki/plan.ts',
      'lab/rootfs.sh', 'lab/kube/build.sh', 'lab/standins/kube-apiserver.ts', 'config/openssl.ts', 'config/profiles.ts',
      'config/cron/kubetls-renew.cron', 'config/systemd/kubetls-renew.timer', 'tsconfig.json']) t.true(paths.includes(need), `${need} is not in the tarball`);
    // every file a script or module reads beside itself (an import, new URL('./x', import.meta.url)) is in the tarball
    const shipped = paths.filter((p) => /\.(ts|mjs)$/.test(p));
    for (const p of shipped) {
      const src = readFileSync(path.join(repoRoot, p), 'utf8');
      for (const [, rel] of src.matchAll(/(?:from |import\(|new URL\()'(\.{1,2}\/[^']+)'/g)) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(p), rel));
        t.true(rel.endsWith('/') ? paths.some((x) => x.startsWith(target)) : paths.includes(target), `${p} loads ${rel}, which is not in the tarball`);
      }
    }
    t.deepEqual(forbidden(paths), []);
    t.true(existsSync(path.join(repoRoot, '.npmrc')) && existsSync(path.join(repoRoot, 'test')), 'the checkout has what must stay out');

    // 2. the install, into a fresh prefix, from outside the checkout
    const prefix = path.join(tmp, 'prefix');
    const install = await npm(['install', '-g', '--prefix', prefix, '--registry', registry.url, '--cache', path.join(tmp, 'npm-cache'),
      '--no-audit', '--no-fund', '--no-update-notifier', path.join(tmp, filename)], tmp);
    t.is(install.exitCode, 0, install.all);
    // npm >= 11 runs no install script of a dependency in a global install unless allowed (esbuild, ssh2 and
    // cpu-features ask): kubetls needs none of them (esbuild finds its binary package, ssh2 falls back to JavaScript)
    t.log(install.all.split('\n').filter((l) => /^added \d+ packages|install-scripts/.test(l)).join('\n'), `(${registry.served.length} tarballs from ${registry.url})`);
    t.true(registry.served.some((s) => s.startsWith('tsx@')), `tsx came from the loopback registry: ${registry.served.join(' ')}`);
    const installed = path.join(prefix, 'lib', 'node_modules', 'kubetls');
    const top = readdirSync(installed);
    t.false(top.includes('test'), 'test/ was installed');
    t.false(top.includes('.npmrc'), '.npmrc was installed');
    t.true(existsSync(path.join(installed, 'node_modules', 'tsx')), 'tsx (a runtime dependency) is missing');
    t.false(existsSync(path.join(installed, 'node_modules', 'ava')), 'a devDependency was installed');
    t.false(existsSync(path.join(installed, 'node_modules', 'typescript')), 'a devDependency was installed');

    // 3. the command, run as an operator runs it: no NODE_OPTIONS, in a folder with no cluster.yaml and no node_modules
    const bin = path.join(prefix, 'bin', 'kubetls');
    const work = path.join(tmp, 'work');
    mkdirSync(work);
    const kubetls = (args: string[], cwd = work, extra: NodeJS.ProcessEnv = {}) => execa(bin, args, { cwd, env: { ...env, ...extra }, extendEnv: false, reject: false, all: true });
    const { version } = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const v = await kubetls(['--version']);
    t.is(v.exitCode, 0, v.all);
    t.is(v.stdout, `kubetls ${version}`);
    const help = await kubetls(['--help']);
    t.is(help.exitCode, 0, help.all);
    for (const c of ['master', 'minions', 'verify', 'status', 'renew', 'lab', 'demo']) t.regex(help.stdout, new RegExp(`^  ${c} `, 'm'));
    const statusHelp = await kubetls(['status', '--help']);
    t.is(statusHelp.exitCode, 0, statusHelp.all);
    t.regex(statusHelp.stdout, /^usage: .*status/m);
    t.regex(statusHelp.stdout, /--prometheus FILE/);
    const none = await kubetls(['status']);
    t.is(none.exitCode, 2, `no cluster.yaml in ${work}: ${none.all}`);

    const inventory = writeInventory({ pki: { key: 'ecdsa-p256' } }, mkdtempSync(path.join(tmp, 'op-')));
    const pki = await kubetls(['master', '--pki-only', '--inventory', inventory]);
    t.is(pki.exitCode, 0, pki.all);
    const dir = path.join(path.dirname(inventory), 'pki');
    for (const f of ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'kubeminion1.crt', 'kubeminion2.crt', 'tokens.csv']) t.true(existsSync(path.join(dir, f)), `${f} was not built`);
    const verified = await execa('openssl', ['verify', '-CAfile', path.join(dir, 'ca.crt'), ...['server.crt', 'kubeminion1.crt', 'kubeminion2.crt'].map((f) => path.join(dir, f))], { reject: false, all: true });
    t.is(verified.exitCode, 0, verified.all);
    t.is(verified.stdout.split('\n').filter((l) => / OK$/.test(l)).length, 3, verified.all);
    t.deepEqual(readdirSync(work), [], 'kubetls wrote into the current folder');

    // 4. the checkout's .npmrc (node-options=--import=tsx) puts NODE_OPTIONS on what npm runs there: the installed
    // kubetls, which registers its own tsx, still works with the checkout's tsx already loaded
    const inCheckout = await kubetls(['status', '--inventory', inventory, '--json'], repoRoot, { NODE_OPTIONS: '--import=tsx' });
    t.is(inCheckout.exitCode, 0, inCheckout.all);
    t.true((JSON.parse(inCheckout.stdout) as { ok: boolean }).ok);
  } finally {
    registry.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});
