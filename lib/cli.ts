/**
 * What every script does around its work: parse flags strictly (a bad flag prints the usage and exits 2), turn
 * known errors into one clear line and an exit code, and never print a stack trace to an operator.
 *   exit 0 ok · 1 something failed · 2 bad flags or bad inventory · 75 another run holds the lock (EX_TEMPFAIL)
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InventoryError, oneLine } from './inventory/errors.ts';
import { log, mask } from './log.ts';

export class UsageError extends Error {}

/** kubetls's version: package.json's, printed by `--version` on every script. */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
/** An error that already has an exit code of its own (e.g. 75 for a held lock). */
export class ExitError extends Error {
  constructor(message: string, readonly code: number) { super(message); }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** The flags several scripts share, and their help lines. */
export const common = {
  inventory: { type: 'string' }, // default: $KUBETLS_INVENTORY, else ./cluster.yaml (lib/inventory.ts)
  'dry-run': { type: 'boolean', default: false },
  only: { type: 'string' },
  concurrency: { type: 'string' },
  json: { type: 'boolean', default: false },
  'accept-new-host-keys': { type: 'boolean', default: false },
} as const;

const commonHelp: Record<keyof typeof common, string> = {
  inventory: '--inventory PATH   the inventory (default $KUBETLS_INVENTORY, else ./cluster.yaml)',
  'dry-run': '--dry-run          print every action as a shell line; write nothing, connect nowhere',
  only: '--only NAME[,NAME] only these hosts',
  concurrency: '--concurrency N    hosts handled at once (default 16)',
  json: '--json             print the result as JSON (logs go to stderr)',
  'accept-new-host-keys': '--accept-new-host-keys  add unknown host keys to known_hosts (never replaces a changed key)',
};

/** Help lines for the shared flags a script takes, plus -h. */
export function helpFor(...names: (keyof typeof common)[]): string {
  return [...names.map((n) => `  ${commonHelp[n]}`), '  --version          print kubetls\'s version', '  -h, --help         this text'].join('\n');
}

/**
 * Parse this process's flags strictly (`npx zx script.ts -- …` passes a lone `--`: ignored). Only a script with
 * subcommands (ca.ts request NAME) takes positional arguments: `master.ts other.yaml` is refused (exit 2), never run
 * against ./cluster.yaml.
 */
export function parseFlags<O extends Options>(options: O, usage: string, allowPositionals = false) {
  const argv = scriptArgs(process.argv).filter((a) => a !== '--');
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } }, allowPositionals, strict: true });
    if ((values as { version?: boolean }).version) {
      process.stdout.write(`kubetls ${VERSION}\n`);
      process.exit(0);
    }
    if ((values as { help?: boolean }).help) {
      process.stdout.write(`${usage.trim()}\n`);
      process.exit(0);
    }
    return { values, positionals };
  } catch (e) {
    const positional = (e as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL';
    usageError(`${(e as Error).message}${positional ? ' (an inventory is given as --inventory PATH)' : ''}`, usage);
  }
}

/**
 * The script's own arguments: what follows its path. `node scripts/x.ts …` puts the path at argv[1]; `npx zx
 * scripts/x.ts …` at argv[2] (after zx, and after zx's own options if any), so the path is looked up, not counted.
 */
export function scriptArgs(argv: readonly string[]): string[] {
  const scripts = path.resolve(import.meta.dirname, '../scripts') + path.sep;
  const at = argv.findIndex((a, i) => i >= 1 && path.resolve(a).startsWith(scripts));
  return argv.slice(at >= 1 ? at + 1 : 2);
}

/** Reject a bad combination of flags at once: `ERROR: --pki-only and --only cannot be used together`. */
export function usageError(message: string, usage: string): never {
  process.stderr.write(`ERROR: ${oneLine(message)}\n\n${usage.trim()}\n`);
  failJson(2, message);
  process.exit(2);
}

/**
 * With --json, the kind of result object the script prints (main's `json`): a consumer reads one object on stdout
 * whatever happened, also when the run stopped on a bad flag (2), a bad inventory (2), a held lock (75) or an error (1).
 */
let jsonKind: string | undefined;
function failJson(code: number, message: string): void {
  if (!jsonKind) return;
  process.stdout.write(`${JSON.stringify({ apiVersion: 'kubetls/v1', kind: jsonKind, ok: false, exitCode: code, error: mask(message) }, null, 2)}\n`);
  jsonKind = undefined; // once
}

/**
 * `--only NAME[,NAME]`, checked before anything else happens: an empty list (`--only ,`) or an empty name is a bad
 * flag (exit 2), never "no host" or "every host". Whether each name is a host of the inventory is checked by
 * lib/remote/hosts.ts (selectHosts), which scripts call before any work.
 */
export function onlyFlag(v: string | undefined, usage: string): string | undefined {
  if (v === undefined) return undefined;
  const names = v.split(',').map((s) => s.trim());
  if (names.some((n) => n === '')) usageError(`--only expects NAME[,NAME] (no empty name), found '${v}'`, usage);
  return names.join(',');
}

export function intFlag(v: string | undefined, name: string, dflt: number, usage: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) usageError(`${name} expects a whole number >= 1, found '${v}'`, usage);
  return n;
}

/**
 * Run a script's body: exit with its code, or with the right code for the error it threw. `json`: the kind of result
 * the script prints with --json (Status, Verify, RenewResult), which an error then prints too, with `ok: false`.
 */
export async function main(body: () => Promise<number | void>, o: { json?: string } = {}): Promise<void> {
  jsonKind = o.json && scriptArgs(process.argv).includes('--json') ? o.json : undefined;
  watchParent();
  try {
    process.exitCode = (await body()) ?? 0;
  } catch (e) {
    if (e instanceof InventoryError) {
      process.stderr.write(`${mask(e.message)}\n`);
      process.exitCode = 2;
    } else if (e instanceof ExitError) {
      log.error(e.message);
      process.exitCode = e.code;
    } else {
      log.error((e as Error).message ?? String(e));
      if (process.env.KUBETLS_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
      process.exitCode = 1;
    }
    failJson(process.exitCode, (e as Error).message ?? String(e));
  }
}

/**
 * A supervisor that stops `npx zx scripts/X.ts` (systemd, a CI runner, a terminal's Ctrl-C through some wrappers)
 * signals the main PID only, which is npx's: the node process running the script would go on alone, a whole CA
 * rotation after its parent exited 130. So every script watches the process that started it, and when it is gone
 * (this one was handed to init or a subreaper) stops the way SIGTERM stops it: at once, its lock released on exit.
 * A run stopped at any instant leaves each file old or new and its restarts owed on the hosts: the next run finishes.
 */
function watchParent(): void {
  const parent = process.ppid;
  if (parent <= 1) return; // started by init or systemd itself: nothing above it can go away unseen
  setInterval(() => {
    if (process.ppid === parent) return;
    log.error(`the process that started this run (pid ${parent}) is gone: stopping, as SIGTERM would; the next run finishes what this one began`);
    process.exit(143);
  }, 500).unref();
}
