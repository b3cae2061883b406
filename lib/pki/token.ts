/**
 * The token's life (the recipe's step 8): made once, read by every kubeconfig of a kubelet, rotated on request
 * (`renew.ts --cert tokens --force`) with the old token kept on a second line until every host has the new one, then
 * retired (lib/renew.ts rolls that out). The token itself is never printed: registered with the logger, masked.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { local as localModes } from '../../config/files.ts';
import { TOKEN_USER } from '../../config/profiles.ts';
import { writeAtomic } from '../atomic.ts';
import type { Inventory } from '../inventory.ts';
import { log, registerSecret, shown } from '../log.ts';
import { PkiError, readPkiFile, UnreadableError } from './read.ts';

/**
 * tokens.csv (step 8): `TOKEN,kubelet,kubelet`, TOKEN 32 characters of base64 without `=+/`. Undefined when absent.
 * A file that is there but unreadable is a PkiError naming it, never replaced silently: a new token would go to every
 * host and lock out whatever else uses the old one. (The token itself is never quoted in the message.)
 * The first line is the kubelet's token, the one every kubeconfig gets (a fourth column, the groups, is allowed as
 * in Kubernetes). During a token rotation the token being retired is kept on another line until every kubeconfig has
 * the new one; which line that is, .token-retiring says (its sha256, never the token). Any other line (a token the
 * operator added for something else) is kept as it is, in every rewrite.
 */
export function readToken(inv: Inventory): string | undefined {
  return readTokenFile(inv)?.current;
}

/** The token a running rotation still accepts (see readToken), if any. */
export function retiringToken(inv: Inventory): string | undefined {
  return readTokenFile(inv)?.retiring;
}

export interface TokenFile { current: string; currentLine: string; retiring?: string; others: string[] }
const TOKEN_LINE = /^([A-Za-z0-9]{32}),([^,\n]+),([^,\n]+)(,[^\n]*)?$/;
export const retiringMarker = (inv: Inventory) => path.join(inv.pki.dir, '.token-retiring');
const sha = (t: string) => createHash('sha256').update(t).digest('hex');

export function readTokenFile(inv: Inventory): TokenFile | undefined {
  const file = path.join(inv.pki.dir, 'tokens.csv');
  if (!existsSync(file)) return undefined;
  const text = readPkiFile(file).toString('latin1');
  const [first = '', ...rest] = text.split('\n').filter((l) => l !== '');
  const m = TOKEN_LINE.exec(first);
  if (!m || m[2] !== TOKEN_USER) {
    throw new UnreadableError(`${shown(file)}: ${text.trim() ? `not one "TOKEN,${TOKEN_USER},${TOKEN_USER}" line (truncated?)` : 'empty (truncated?)'}; `
      + 'restore it, or move it away to make a new token (every host then gets the new one)');
  }
  registerSecret(m[1]!);
  let marker: string | undefined;
  try { marker = readFileSync(retiringMarker(inv), 'utf8').trim(); } catch { /* no rotation running */ }
  let retiring: string | undefined;
  const others: string[] = [];
  for (const line of rest) {
    const t = TOKEN_LINE.exec(line)?.[1];
    if (t) registerSecret(t);
    if (t && marker && !retiring && sha(t) === marker) retiring = t;
    else others.push(line);
  }
  return { current: m[1]!, currentLine: first, retiring, others };
}

/** tokens.csv's content: the current line, during a rotation the retiring token's line, then the other lines as they were. */
export function tokensCsv(currentLine: string, retiringLine?: string, others: string[] = []): string {
  return [currentLine, retiringLine, ...others].filter((l): l is string => !!l).map((l) => `${l}\n`).join('');
}

/** Step 8 with a cryptographic RNG: 128 random bytes → base64 → drop `=+/` → the first 32 characters. */
export function newToken(): string {
  for (;;) {
    const t = randomBytes(128).toString('base64').replace(/[=+/]/g, '').slice(0, 32);
    if (t.length === 32) return t;
  }
}

/**
 * Step 8: a new token in `tokens.csv.new`, renamed into place by applyPki with the rest of the plan. `rotate`: the
 * current token is being replaced (`renew --cert tokens --force`): it stays accepted on a second line until every
 * kubeconfig holds the new one (lib/renew.ts then retires it), so no client is refused during the switch.
 */
export function writeNewToken(inv: Inventory, rotate: boolean, dryRun?: boolean): void {
  const file = path.join(inv.pki.dir, 'tokens.csv');
  log.action(`echo "\${TOKEN},${TOKEN_USER},${TOKEN_USER}" > ${shown(`${file}.new`)}  # TOKEN: 32 chars of base64(128 random bytes) without =+/`);
  if (dryRun) return;
  const token = newToken();
  registerSecret(token);
  let old: TokenFile | undefined;
  try { old = rotate ? readTokenFile(inv) : undefined; } catch { /* malformed: nothing to keep */ }
  if (old?.retiring) throw new PkiError('tokens.csv: a token rotation is still running (the old token is still accepted): finish it first with renew.ts, then rotate again');
  if (old) {
    log.info('tokens.csv: the old token stays valid (second line) until every kubeconfig has the new one');
    // the marker first: a run killed between the two writes leaves a marker naming a line that is not there (harmless)
    writeAtomic(retiringMarker(inv), `${sha(old.current)}\n`, localModes.secret);
  }
  // the new token on the kubelet's own line (its uid and groups columns kept), the old one below it, the rest as is
  const line = old ? `${token}${old.currentLine.slice(32)}` : `${token},${TOKEN_USER},${TOKEN_USER}`;
  writeAtomic(file, tokensCsv(line, old?.currentLine, old?.others), localModes.secret, false);
}

/** The end of a rotation, here: tokens.csv keeps only the current token (and the operator's own lines); no marker. */
export function dropRetiringToken(inv: Inventory): void {
  const current = readTokenFile(inv)!;
  writeAtomic(path.join(inv.pki.dir, 'tokens.csv'), tokensCsv(current.currentLine, undefined, current.others), localModes.secret);
  rmSync(retiringMarker(inv), { force: true });
}
