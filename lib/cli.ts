/**
 * What every script does around its work: parse flags strictly (a bad flag prints the usage and exits 2), turn
 * known errors into one clear line and an exit code, and never print a stack trace to an operator.
 *   exit 0 ok · 1 something failed · 2 bad flags or bad inventory · 75 another run holds the lock (EX_TEMPFAIL)
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InventoryError } from './inventory.ts';
import { log, mask } from './log.ts';

export class UsageError extends Error {}
/** An error that already has an exit code of its own (e.g. 75 for a held lock). */
export class ExitError extends Error {
  constructor(message: string, readonly code: number) { super(message); }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** The flags several scripts share, and their help lines. */
export const common = {
  inventory: { type: 'string', default: 'cluster.yaml' },
  'dry-run': { type: 'boolean', default: false },
  only: { type: 'string' },
  concurrency: { type: 'string' },
  json: { type: 'boolean', default: false },
  'accept-new-host-keys': { type: 'boolean', default: false },
} as const;

const commonHelp: Record<keyof typeof common, string> = {
  inventory: '--inventory PATH   the inventory (default ./cluster.yaml)',
  'dry-run': '--dry-run          print every action as a shell line; write nothing, connect nowhere',
  only: '--only NAME[,NAME] only these hosts',
  concurrency: '--concurrency N    hosts handled at once (default 16)',
  json: '--json             print the result as JSON (logs go to stderr)',
  'accept-new-host-keys': '--accept-new-host-keys  add unknown host keys to known_hosts (never replaces a changed key)',
};

/** Help lines for the shared flags a script takes, plus -h. */
export function helpFor(...names: (keyof typeof common)[]): string {
  return [...names.map((n) => `  ${commonHelp[n]}`), '  -h, --help         this text'].join('\n');
}

/** Parse this process's flags strictly (`npx zx script.ts -- …` passes a lone `--`: ignored). */
export function parseFlags<O extends Options>(options: O, usage: string) {
  const argv = process.argv.slice(2).filter((a) => a !== '--');
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    if ((values as { help?: boolean }).help) {
      process.stdout.write(`${usage.trim()}\n`);
      process.exit(0);
    }
    return { values, positionals };
  } catch (e) {
    process.stderr.write(`ERROR: ${(e as Error).message}\n\n${usage.trim()}\n`);
    process.exit(2);
  }
}

/** Reject a bad combination of flags at once: `ERROR: --pki-only and --only cannot be used together`. */
export function usageError(message: string, usage: string): never {
  process.stderr.write(`ERROR: ${message}\n\n${usage.trim()}\n`);
  process.exit(2);
}

export function intFlag(v: string | undefined, name: string, dflt: number, usage: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) usageError(`${name} expects a whole number >= 1, found '${v}'`, usage);
  return n;
}

/** Run a script's body: exit with its code, or with the right code for the error it threw. */
export async function main(body: () => Promise<number | void>): Promise<void> {
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
  }
}
