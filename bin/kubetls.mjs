#!/usr/bin/env node
/**
 * `kubetls <command> [flags]`: one entry point for the scripts (package.json "bin"), so that `npx kubetls master` works
 * from the checkout and `kubetls master` after `npm install -g`. It runs exactly what `npx zx scripts/<command>.ts`
 * runs: TypeScript is loaded through tsx's API (a runtime dependency, so `npm ci --omit=dev` is enough).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

const COMMANDS = {
  master: 'build the PKI and install it on the master and the minions (SEED.md steps 1-13)',
  minions: 'kubeconfigs, flags and restarts on the minions (steps 14-18)',
  verify: 'check the cluster with real TLS clients (steps 19-20, without -k)',
  status: 'what expires when, and what drifted (--remote, --json, --prometheus FILE)',
  renew: 'renew what is due, from cron (--quiet)',
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
register();
const script = new URL(`../scripts/${command}.ts`, import.meta.url);
// the script sees the argv it would see under `npx zx scripts/<command>.ts`: its own path, then its flags
process.argv = [process.argv[0], script.pathname, ...rest];
await import(pathToFileURL(script.pathname).href);
