#!/usr/bin/env node
/**
 * `kubetls <command> [flags]`: one entry point for the scripts (package.json "bin"), so that `npx kubetls master` works
 * from the checkout and `kubetls master` after `npm install -g`. It runs exactly what `npx zx scripts/<command>.ts`
 * runs: the five commands cron and operators run (master, minions, verify, status, renew) from precompiled bundles in
 * dist/ when they match the sources (bin/build.mjs says how that is checked), everything else, or when they cannot be
 * built, TypeScript through tsx's API (a runtime dependency, so `npm ci --omit=dev` is enough). KUBETLS_NO_BUNDLE=1
 * forces tsx.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const COMMANDS = {
  master: 'build the PKI and install it on the master and the minions (docs/recipe.md steps 1-13)',
  minions: 'kubeconfigs, flags and restarts on the minions (steps 14-18)',
  verify: 'check the cluster with real TLS clients (steps 19-20, without -k)',
  status: 'what expires when, and what drifted (--remote, --json, --prometheus FILE)',
  renew: 'renew what is due, from cron (--quiet)',
  ca: 'your own root: a CA of kubetls as an intermediate (request NAME, import NAME)',
  join: 'a node of cluster.yaml joins by bootstrap token (kubelet.certificates: api)',
  approve: "approve the kubelets' serving-certificate requests that cluster.yaml allows (--watch)",
  lab: 'a lab of real OpenSSH hosts on this machine (up, down, status)',
  demo: 'lab up, the whole recipe, verify, status, lab down',
};
const usage = `usage: kubetls <command> [options]     (kubetls <command> --help for its options)\n\n${
  Object.entries(COMMANDS).map(([c, what]) => `  ${c.padEnd(8)} ${what}`).join('\n')}\n`;

const [command, ...rest] = process.argv.slice(2);
if (command === '--version') {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  process.stdout.write(`kubetls ${version}\n`);
  process.exit(0);
}
if (command === '-h' || command === '--help') {
  process.stdout.write(usage);
  process.exit(0);
}
if (!command || !Object.hasOwn(COMMANDS, command)) {
  process.stderr.write(`ERROR: ${command ? `unknown command '${command}'` : 'no command'}\n\n${usage}`);
  process.exit(2);
}
const script = new URL(`../scripts/${command}.ts`, import.meta.url);
// the script sees the argv it would see under `npx zx scripts/<command>.ts`: its own path, then its flags
process.argv = [process.argv[0], script.pathname, ...rest];
// the precompiled bundle when it matches the sources (bin/build.mjs), rebuilt when they changed; tsx otherwise
const bundle = process.env.KUBETLS_NO_BUNDLE ? undefined : await bundled(command);
if (bundle) await import(pathToFileURL(bundle).href);
else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(script.pathname).href);
}

async function bundled(name) {
  const { BUNDLED, build, freshBundle } = await import('./build.mjs');
  if (!BUNDLED.includes(name)) return undefined;
  const fresh = freshBundle(name);
  if (fresh) return fresh;
  try {
    await build();
  } catch {
    return undefined; // dist/ not writable (a global install run by another user), or no esbuild: run the sources
  }
  return freshBundle(name);
}
