/**
 * pki.dir itself: the rule for which folder kubetls may use and how it makes it ready (0700, never another user's,
 * never a link), the modes of the secrets in it, and the one way kubetls writes a local file (`.new`, then rename).
 */
import {
  chmodSync, closeSync, constants as fsc, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readlinkSync,
  statSync, type Stats,
} from 'node:fs';
import path from 'node:path';
import { caSpecs, leafSpecs } from '../../config/certs.ts';
import { local as localModes } from '../../config/files.ts';
import { ExitError } from '../cli.ts';
import type { Inventory } from '../inventory.ts';
import { oneLine } from '../inventory/errors.ts';
import { log, shown } from '../log.ts';

/** The secrets kubetls keeps in pki.dir (keys and the token), as base names: owner-only (0600), always. */
export function secretFiles(inv: Inventory): string[] {
  // with the keys of a CA rotation (lib/pki/trust.ts): the new ones before they sign, the old ones until they are dropped
  const rotated = caSpecs(inv).map((c) => c.name as string).concat(inv.profile === 'modern' ? ['sa'] : []).flatMap((n) => [`${n}.next.key`, `${n}.prev.key`]);
  return [...caSpecs(inv).map((c) => `${c.name}.key`), ...leafSpecs(inv).map((s) => `${s.name}.key`), 'tokens.csv', ...(inv.profile === 'modern' ? ['sa.key'] : []), ...rotated];
}

/** `0644` when others may read or write the file (any group or other bit), undefined when owner-only or absent. */
export function insecureMode(file: string): string | undefined {
  let mode: number;
  try { mode = statSync(file).mode & 0o777; } catch { return undefined; }
  return mode & 0o077 ? `0${mode.toString(8).padStart(3, '0')}` : undefined;
}

/**
 * master.ts and renew.ts: a secret of ours that others can read (a copy with `cp`, an untar, a umask 022 editor) is set
 * back to 0600, with a warning and the shell line; status.ts only reports it (`insecure mode 0644`), it writes nothing.
 * Only the files kubetls owns are touched, never the folder or foreign files in it. Returns the base names fixed.
 */
export function tightenModes(inv: Inventory, dryRun = false): string[] {
  inspectPkiDir(inv.pki.dir); // a pki.dir that is not kubetls's to use is refused before any of its files is touched
  const fixed: string[] = [];
  for (const f of secretFiles(inv)) {
    const file = path.join(inv.pki.dir, f);
    const mode = insecureMode(file);
    if (!mode) continue;
    log.warn(`${shown(file)} had mode ${mode}: other accounts could read this secret; setting it to 0600`);
    log.cmd(['chmod', '600', file]);
    if (!dryRun) chmodSync(file, localModes.secret);
    fixed.push(f);
  }
  return fixed;
}


/** A pki.dir kubetls will not use as it is: exit 2 with one line (lib/cli.ts main), and the folder left as it was. */
export class PkiDirError extends ExitError {
  constructor(message: string) { super(oneLine(message), 2); this.name = 'PkiDirError'; }
}

/**
 * What an existing pki.dir is to kubetls (see inspectPkiDir): `ours`, used as it is; `tighten`, ours to set to 0700;
 * `shared`, used with its mode left as it is (and a warning).
 */
export type PkiDirState =
  | { state: 'missing' }
  | { state: 'ours' }
  | { state: 'tighten'; st: Stats }
  | { state: 'shared'; st: Stats; strangers: string[] };

/**
 * The rule for pki.dir. `me` is the uid kubetls
 * runs as (root); an entry is "kubetls's own" when its name is one kubetls writes (PKI_FILE) and `me` owns it.
 *   - missing: created 0700 (with its parents).
 *   - a symlink (even to a good folder), or anything but a folder: refused. lstat, never followed: the link's target
 *     may be anyone's folder.
 *   - a folder owned by another uid: refused, even empty: never ours to change or to fill.
 *   - owned by `me`, no group/other bits (0700, or stricter such as 0500): used as it is, never changed.
 *   - owned by `me`, group/other bits, holding nothing but kubetls's own entries (or nothing: a folder just made with
 *     mkdir, even 1777): set to 0700. If another user slipped a file in before the chmod took effect (they could
 *     write there), the mode is put back and the folder refused.
 *   - owned by `me`, others can read/enter but not write (e.g. 0755), holding other files (a checkout pointed at by
 *     mistake): used, its mode left as it is with a warning (nobody else can plant anything there; keys are 0600).
 *   - owned by `me`, group- or world-writable (0775, 0777, 1777…), holding anything that is not kubetls's own:
 *     refused. A folder others write to is a folder others use: chmod would lock them out, and writing there would let
 *     them plant links openssl follows.
 * A refusal is a PkiDirError (exit 2, one line naming the folder, its owner and mode), with or without --dry-run, and
 * nothing in the folder is touched: tightenModes and applyPki look first (master.ts and renew.ts call tightenModes
 * before planPki reads anything).
 */
export function inspectPkiDir(dir: string): PkiDirState {
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    throw e;
  }
  const me = process.getuid?.(); // undefined on Windows: no owners to compare
  const at = `pki.dir ${shown(dir)}`;
  const mode = octal(st.mode);
  if (st.isSymbolicLink()) throw new PkiDirError(`${at} is a symlink (to ${readlinkSync(dir)}): refusing to follow it; point pki.dir at the folder itself`);
  if (!st.isDirectory()) throw new PkiDirError(`${at} is ${fileKind(st)} (mode ${mode}, owned by uid ${st.uid}), not a folder: point pki.dir at a folder of its own`);
  if (me !== undefined && st.uid !== me) {
    throw new PkiDirError(`${at} is owned by uid ${st.uid} (mode ${mode}), not by uid ${me} that runs kubetls: refusing to change a folder others own; point pki.dir at a folder of its own`);
  }
  if ((st.mode & 0o077) === 0) return { state: 'ours' };
  const others = strangers(dir, me);
  if (!others.length) return { state: 'tighten', st };
  if (st.mode & 0o022) throw sharedFolder(dir, st, others);
  return { state: 'shared', st, strangers: others };
}

/** Entries of `dir` that are not kubetls's own: a name it does not write, or an owner other than `me`. */
function strangers(dir: string, me: number | undefined): string[] {
  return readdirSync(dir).filter((f) => {
    if (!PKI_FILE.test(f)) return true;
    try { return me !== undefined && lstatSync(path.join(dir, f)).uid !== me; } catch { return false; } // gone meanwhile
  });
}
const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');
const named = (files: string[]) => `${files.slice(0, 3).join(', ')}${files.length > 3 ? ', …' : ''}`;
const sharedFolder = (dir: string, st: Stats, others: string[]) => new PkiDirError(`pki.dir ${shown(dir)} is mode ${octal(st.mode)} owned by uid ${st.uid} and holds files kubetls did not make (${named(others)}): refusing to change a folder others use; point pki.dir at a folder of its own`);
function fileKind(st: Stats): string {
  if (st.isFile()) return 'a file';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a folder';
}

/** pki.dir made ready to write into, by the rule of inspectPkiDir (refusals throw PkiDirError, nothing changed). */
export function ensureDir(dir: string, dryRun?: boolean): void {
  const found = inspectPkiDir(dir);
  if (found.state === 'missing') {
    log.cmd(['mkdir', '-m', '700', dir]);
    if (!dryRun) mkdirSync(dir, { recursive: true, mode: localModes.dir });
  } else if (found.state === 'shared') {
    log.warn(oneLine(`${shown(dir)} holds files that are not part of the PKI (${named(found.strangers)}): its mode is left as it is (${octal(found.st.mode)}); give the PKI a folder of its own`));
  } else if (found.state === 'tighten') {
    log.cmd(['chmod', '700', dir]);
    if (!dryRun) tightenDir(dir, found.st);
  }
}

/**
 * chmod 0700 on the very folder inspectPkiDir judged (opened without following a link, same inode), then a second
 * look: an entry another user added before the chmod (the folder was writable by others) gives the folder its old
 * mode back and refuses it. After the chmod nobody else can add one.
 */
function tightenDir(dir: string, judged: Stats): void {
  const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  try {
    const now = fstatSync(fd);
    if (now.dev !== judged.dev || now.ino !== judged.ino) throw new PkiDirError(`pki.dir ${shown(dir)} was replaced while kubetls looked at it: nothing was changed; run again`);
    fchmodSync(fd, localModes.dir);
    const late = strangers(dir, process.getuid?.());
    if (late.length) {
      fchmodSync(fd, judged.mode & 0o7777);
      throw sharedFolder(dir, judged, late);
    }
  } finally {
    closeSync(fd);
  }
}
/** What kubetls itself keeps in pki.dir: <name>.key/.csr/.crt, sa.pub, ca.srl, openssl.cnf, tokens.csv, `.new` leftovers, its state files. */
const PKI_FILE = /^(?:[a-z0-9-]+(?:\.next|\.prev|\.root)?\.(?:key|csr|crt|pub|srl|cnf|csv|kubeconfig)|\.renew-pending\.json|\.last-renew|\.kubetls\.lock|\.token-retiring|\.rotate-ca\.json)(?:\.new)?$/;

