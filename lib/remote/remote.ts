/**
 * What kubetls can do on a host, as one interface (the interface first, its implementations as siblings, as cfssl's
 * signer/ does): lib/remote/ssh.ts over one real SSH connection, lib/remote/dry.ts for --dry-run (logs every action
 * as a shell line and connects nowhere). The connection itself is lib/remote/connect.ts; the scripts run on the far
 * side, lib/remote/survey.ts and install.ts.
 *
 *   const r = await connect(inv, host, { acceptNewHostKeys })
 *   await r.write('/srv/kubernetes/ca.crt', bytes, masterPki, 'pki/ca.crt')   // atomic, backed up, skipped if equal
 *   await r.run(['systemctl', 'restart', 'kube-apiserver'])
 *   await r.close()
 *
 * Commands are strings for the remote login shell, built only with lib/sh.ts quoting. With `ssh.sudo: true` the
 * user is not root: files are staged in ~/.kubetls-staging (0700, files 0600) and installed by one `sudo -n` command.
 */
import type { FileMode } from '../../config/files.ts';
import type { Host } from '../inventory.ts';

export interface ExecResult { code: number; stdout: string; stderr: string }
/** What is at a remote path. `kind` is from lstat: a symlink is reported as one, never followed. */
export interface FileState { kind: 'file' | 'link' | 'other'; owner: string; group: string; mode: number; size: number; sha256: string }
/** A write done in this run: what to put back if the host must be rolled back. */
export interface Written { path: string; backup?: string }

export interface Remote {
  readonly host: Host;
  readonly writes: Written[];
  /** True for --dry-run: nothing is read or sent, so callers need not prepare content. */
  readonly dry: boolean;
  /** Run an argv (quoted for sh, with sudo when needed); logs it; throws RemoteError on a non-zero exit unless `ok` allows it. */
  run(argv: string[], o?: { ok?: number[]; quiet?: boolean; timeoutMs?: number }): Promise<ExecResult>;
  /** lstat + sha256 of each path (undefined when absent), in one round trip. Symlinks are reported, not followed. */
  inspect(paths: string[]): Promise<Map<string, FileState | undefined>>;
  /** The content of a regular file (undefined when absent); refuses a symlink or anything else. */
  read(file: string): Promise<Buffer | undefined>;
  /**
   * Make sure `dir` is a folder that only root can change, all the way from `/` (see `dirProblem`), creating it
   * root-owned with `m.mode` when missing. An existing folder's owner and mode are never changed, except `takeOver`:
   * the recipe's own `chown -R kube:nogroup /srv/kubernetes` left pki.remote_dir owned by the service account, which
   * could then plant links where root writes; that one folder is given back to root (a tightening only).
   * Returns true when something was created or changed.
   */
  ensureDir(dir: string, m: FileMode, takeOver?: string): Promise<boolean>;
  /** Refuse a folder that exists and is not root's only (dirProblem); a missing one is fine. Creates nothing. */
  proveDir(dir: string): Promise<void>;
  /**
   * Everything a rollout needs to know about a host, in ONE round trip: the folders' ownership from `/` down (judged
   * by the next `ensureDir` of each, which then costs nothing), temp files a killed run left there, lstat + sha256 of
   * `paths`, the contents of `read` (regular files only, at most MAX_READ bytes) and the names in `list`.
   */
  survey(q: SurveyQuery): Promise<Survey>;
  /** Write unless content, owner and mode already match. Returns true when written. */
  write(file: string, content: Buffer, m: FileMode, label: string, known?: FileState): Promise<boolean>;
  /**
   * Write several files: every upload first, then one command installs them all, in order, each exactly as `write`
   * does (verified, backed up, renamed); it stops at the first that fails. Returns how many were written.
   */
  writeAll(items: WriteItem[]): Promise<number>;
  /** Put back what this run replaced on this host (newest first): the backup, or remove a file that was new. */
  rollback(): Promise<void>;
  close(): Promise<void>;
}

export interface SurveyQuery { dirs: { dir: string; takeOver?: string }[]; paths: string[]; read: string[]; list?: string }
export interface Survey { states: Map<string, FileState | undefined>; contents: Map<string, Buffer | undefined>; listing: string[]; deferred: boolean }
/** `known`: what a survey saw at `file` (null: nothing there); undefined: not looked at yet, writeAll looks first. */
export interface WriteItem { file: string; content: Buffer; mode: FileMode; label: string; known?: FileState | null }

/** The largest file `read`/`survey` return (env files and kubeconfigs are a few KiB): a planted huge file is refused. */
export const MAX_READ = 1024 * 1024;

export class RemoteError extends Error {
  constructor(readonly host: string, message: string, readonly retriable = false) {
    super(message);
    this.name = 'RemoteError';
  }
}

/** The longest a remote command may run: above systemd's default start timeout (90 s), so a slow restart still fits. */
export const EXEC_TIMEOUT_MS = 120_000;

/** `<file>.bak-20261128T220000Z`: the UTC time of this run, so a run's backups sort together and after older ones. */
export const backupStamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

export const modeStr = (m: number) => m.toString(8).padStart(4, '0');
export const describeMode = (m: FileMode) => `${m.owner}:${m.group} ${modeStr(m.mode)}`;
