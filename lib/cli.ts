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

export function parseFlags<O extends Options>(argv: string[], options: O, usage: string) {
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
