/**
 * The Remote of a real host: one SSH connection (ssh2 through ssh2-sftp-client) used for SFTP and exec alike. Every
 * folder root writes below is proven root's first (survey, ensureDir); every file is uploaded, then installed by one
 * command that verifies what landed before it renames (writeAll); what this run replaced can be put back (rollback).
 */
import { createHash } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Client, ClientChannel } from 'ssh2';
import type SftpClient from 'ssh2-sftp-client';
import type { FileMode } from '../../config/files.ts';
import { faultIs, faultPoint } from '../fault.ts';
import type { Host } from '../inventory.ts';
import { log } from '../log.ts';
import { command, quote } from '../sh.ts';
import { installScript, SHORT_WRITE } from './install.ts';
import {
  backupStamp, describeMode, EXEC_TIMEOUT_MS, modeStr, RemoteError,
  type ExecResult, type FileState, type Remote, type Survey, type SurveyQuery, type WriteItem, type Written,
} from './remote.ts';
import { dirProblem, dirScript, inspectScript, parseDirs, parseInspect, parseSurvey, surveyScript, type SurveyedDir } from './survey.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export class SshRemote implements Remote {
  readonly writes: Written[] = [];
  readonly dry = false;
  private staging?: string;
  /** Folders proven root-only in this connection (dirProblem), so each is checked once per run. */
  private safe = new Set<string>();
  /** Folders proven in this run that hold no temp file of ours: an upload there needs no `rm -f` first. */
  private clean = new Set<string>();
  /** What the last survey saw of each folder, used (once) by ensureDir instead of asking again. */
  private surveyed = new Map<string, SurveyedDir>();
  private uploads = 0;
  constructor(readonly host: Host, private sftp: SftpClient, private sudo: boolean, private jumps: Client[] = []) {}

  private exec(script: string, asRoot = true, timeoutMs = EXEC_TIMEOUT_MS): Promise<ExecResult> {
    // always POSIX sh, whatever root's login shell is (zsh splits words differently), in the C locale (stat's %F)
    const wrapped = `LC_ALL=C; export LC_ALL\n${script}`;
    const cmd = asRoot && this.sudo ? `sudo -n sh -c ${quote(wrapped)}` : `sh -c ${quote(wrapped)}`;
    return new Promise((resolve, reject) => {
      const client = (this.sftp as unknown as { client: Client }).client;
      if (!client) return reject(new RemoteError(this.host.name, 'exec: the connection is gone'));
      try {
        client.exec(cmd, (err: Error | undefined, stream: ClientChannel) => {
          if (err) return reject(new RemoteError(this.host.name, `exec: ${err.message}`));
          // a command that never ends (a hung `systemctl restart`) must not hold a cron run forever
          const timer = setTimeout(() => {
            reject(new RemoteError(this.host.name, `no answer after ${timeoutMs / 1000} s from: ${script.slice(0, 120)}`));
            stream.close();
          }, timeoutMs);
          const out: Buffer[] = [];
          const errs: Buffer[] = [];
          stream.on('data', (d: Buffer) => out.push(d));
          stream.stderr.on('data', (d: Buffer) => errs.push(d));
          stream.on('close', (code: number | null) => {
            clearTimeout(timer);
            const stderr = Buffer.concat(errs).toString();
            if (this.sudo && asRoot && /a password is required|a terminal is required/.test(stderr)) {
              return reject(new RemoteError(this.host.name, `sudo asks for a password for ${this.host.user}: allow it with NOPASSWD in sudoers (kubetls runs 'sudo -n')`));
            }
            resolve({ code: code ?? 255, stdout: Buffer.concat(out).toString(), stderr });
          });
        });
      } catch (e) {
        reject(new RemoteError(this.host.name, `exec: ${(e as Error).message}`)); // ssh2 throws when the connection is gone
      }
    });
  }

  async run(argv: string[], o: { ok?: number[]; quiet?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
    if (!o.quiet) log.cmd(this.sudo ? ['sudo', '-n', ...argv] : argv, this.host.name);
    const r = await this.exec(command(argv), true, o.timeoutMs);
    if (!(o.ok ?? [0]).includes(r.code)) {
      throw new RemoteError(this.host.name, `${command(argv)} exited ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-4).join(' | ')}`);
    }
    return r;
  }

  async inspect(paths: string[]): Promise<Map<string, FileState | undefined>> {
    if (!paths.length) return new Map();
    const r = await this.exec(inspectScript(paths));
    if (r.code !== 0) throw new RemoteError(this.host.name, `inspect ${paths.join(' ')}: ${r.stderr.trim()}`);
    try { return parseInspect(paths, r.stdout); } catch (e) { throw new RemoteError(this.host.name, (e as Error).message); }
  }

  async read(file: string): Promise<Buffer | undefined> {
    const r = await this.exec(`if [ -L ${quote(file)} ]; then echo LINK; elif [ -f ${quote(file)} ]; then base64 < ${quote(file)}; elif [ -e ${quote(file)} ]; then echo OTHER; else echo MISSING; fi`);
    if (r.code !== 0) throw new RemoteError(this.host.name, `read ${file}: ${r.stderr.trim()}`);
    const o = r.stdout.trim();
    if (o === 'LINK' || o === 'OTHER') throw new RemoteError(this.host.name, `${file} is ${o === 'LINK' ? 'a symlink' : 'not a regular file'}: kubetls reads and writes only regular files there; remove it`);
    return o === 'MISSING' ? undefined : Buffer.from(r.stdout.replace(/\s/g, ''), 'base64');
  }

  async survey(q: SurveyQuery): Promise<Survey> {
    const nonce = randomBytes(16).toString('hex');
    const r = await this.exec(surveyScript(q, nonce));
    if (r.code !== 0) throw new RemoteError(this.host.name, `survey: ${r.stderr.trim() || `exit ${r.code}`}`);
    const { dirs, ...rest } = parseSurvey(q, r.stdout, this.host.name, nonce);
    for (const [d, e] of dirs) if (!this.safe.has(d)) this.surveyed.set(d, e);
    return rest;
  }

  async proveDir(dir: string): Promise<void> {
    if (this.safe.has(dir)) return;
    const pre = this.surveyed.get(dir);
    let e = pre;
    if (!e) {
      const r = await this.exec(dirScript([dir]));
      if (r.code !== 0) throw new RemoteError(this.host.name, `check ${dir}: ${r.stderr.trim()}`);
      e = { ...(parseDirs(r.stdout).get(dir) ?? { entries: [], real: [] }), leftovers: [] };
    }
    const v = dirProblem(dir, e.entries, e.real);
    if (v.problem) throw new RemoteError(this.host.name, `refusing to use ${dir}: ${v.problem}`);
  }

  async ensureDir(dir: string, m: FileMode, takeOver?: string): Promise<boolean> {
    if (this.safe.has(dir)) return false;
    const look = async () => {
      const r = await this.exec(dirScript([dir]));
      if (r.code !== 0) throw new RemoteError(this.host.name, `check ${dir}: ${r.stderr.trim()}`);
      const e = parseDirs(r.stdout).get(dir) ?? { entries: [], real: [] };
      return e;
    };
    // what a survey just saw, if there was one (the common case: no round trip at all for a folder already right)
    const pre = this.surveyed.get(dir);
    this.surveyed.delete(dir);
    let uid: string | undefined;
    if (pre) uid = pre.uid;
    else if (takeOver) uid = (await this.exec(`id -u ${quote(takeOver)} 2>/dev/null || true`)).stdout.trim() || undefined;
    const e = pre ?? await look();
    const v = dirProblem(dir, e.entries, e.real, uid ? { uid } : undefined);
    if (v.problem) throw new RemoteError(this.host.name, `refusing to write below ${dir}: ${v.problem}`);
    let changed = false;
    if (v.missing) {
      await this.run(['install', '-d', '-o', 'root', '-g', 'root', '-m', modeStr(m.mode), '--', dir]);
      changed = true;
    } else if (v.takeOver) {
      log.warn(`${dir} belongs to ${takeOver} (the recipe's chown -R): giving the folder back to root so that ${takeOver} cannot plant links where root writes; its files keep their owner`, this.host.name);
      await this.run(['chown', '-h', 'root:root', '--', dir]);
      await this.run(['chmod', modeStr(m.mode), '--', dir]);
      // and whatever that user left at the names kubetls writes (temp files, backups) goes, if it is not a plain file
      await this.run(['find', dir, '-mindepth', '1', '-maxdepth', '1', '(', '-name', '.*.kubetls-tmp', '-o', '-name', '*.bak-*', ')', '(', '-type', 'l', '-o', '!', '-user', 'root', ')', '-delete']);
      changed = true;
    }
    if (changed) {
      const again = await look();
      const w = dirProblem(dir, again.entries, again.real);
      if (w.problem || w.missing) throw new RemoteError(this.host.name, `refusing to write below ${dir}: ${w.problem ?? 'still missing'}`);
    }
    this.safe.add(dir);
    // temp files a killed or cut-off run left here (the folder is root's now, so they can only be ours): no stray key
    // copies. A survey that saw none (the folder was already root's) saves the round trip.
    if (!pre || pre.leftovers.length || changed) {
      await this.exec(`find -H ${quote(dir)} -mindepth 1 -maxdepth 1 -name '.*.kubetls-tmp' -type f -delete 2>/dev/null; true`);
    }
    this.clean.add(dir);
    return changed;
  }

  async write(file: string, content: Buffer, m: FileMode, label: string, known?: FileState): Promise<boolean> {
    return (await this.writeAll([{ file, content, mode: m, label, known }])) > 0;
  }

  async writeAll(items: WriteItem[]): Promise<number> {
    const todo: { it: WriteItem; tmp: string; backup?: string; staged?: string; hash: string }[] = [];
    for (const it of items) {
      const { file, content, mode: m } = it;
      const state = it.known !== undefined ? it.known ?? undefined : (await this.inspect([file])).get(file);
      const hash = sha256(content);
      if (state?.kind === 'file' && state.sha256 === hash && state.owner === m.owner && state.group === m.group && state.mode === m.mode) continue;
      if (state && state.kind !== 'file') throw new RemoteError(this.host.name, `${file} is ${state.kind === 'link' ? 'a symlink' : 'not a regular file'}: refusing to write through it; remove it`);
      const dir = path.posix.dirname(file);
      if (!this.safe.has(dir)) await this.ensureDir(dir, { owner: 'root', group: 'root', mode: 0o755 });
      todo.push({ it, hash, tmp: `${dir}/.${path.posix.basename(file)}.kubetls-tmp`, backup: state ? `${file}.bak-${backupStamp}` : undefined });
    }
    if (!todo.length) return 0;
    // every upload first (each one verified by the install command below, so a short upload is caught there)
    for (const w of todo) {
      const { file, content, mode: m, label } = w.it;
      const dir = path.posix.dirname(file);
      log.action(`sftp put ${label} → ${file} (${describeMode(m)}${w.backup ? `, old one kept as ${path.posix.basename(w.backup)}` : ''})`, this.host.name);
      try {
        if (this.sudo) {
          // unique per upload: two files of one batch may share a base name (the kubelet's and kube-proxy's kubeconfig)
          w.staged = `${await this.stagingDir()}/${path.posix.basename(file)}.${process.pid}.${++this.uploads}`;
          await this.sftp.put(content, w.staged, { writeStreamOptions: { mode: 0o600, flags: 'w' } });
        } else {
          // O_EXCL: never open through a name someone else made (the folder is root's, so only a leftover of ours,
          // which ensureDir removed; the rm below is for a folder this run already wrote to and failed in)
          if (!this.clean.has(dir)) {
            const rm = await this.exec(`rm -f -- ${quote(w.tmp)}`);
            if (rm.code !== 0) throw new RemoteError(this.host.name, `${w.tmp} is in the way (${rm.stderr.trim()}): remove it`);
          }
          await this.sftp.put(content, w.tmp, { writeStreamOptions: { mode: 0o600, flags: 'wx' as 'w' } });
        }
      } catch (e) {
        this.clean.delete(dir);
        await this.discard(todo);
        if (e instanceof RemoteError) throw e;
        const into = w.staged ? path.posix.dirname(w.staged) : dir;
        const full = await this.freeKiB(into, !w.staged);
        if (full !== undefined && full * 1024 < content.length) throw new RemoteError(this.host.name, `no space left on ${into}: ${file} was not replaced`);
        const code = (e as { code?: number }).code;
        throw new RemoteError(this.host.name, `upload ${file}: ${(e as Error).message.replace(/^_?\w+: /, '')}${code ? ` (sftp code ${code})` : ''}; ${file} was not replaced`);
      }
      if (faultIs('disconnect')) (this.sftp as unknown as { client: Client }).client.end();
    }
    // then one command installs them in order, each in a subshell of its own; `@@ok i` after each one that landed
    const batches = faultIs('wrote-1') && todo.length > 1 ? [todo.slice(0, 1), todo.slice(1)] : [todo];
    let done = 0;
    for (const batch of batches) {
      const script = batch.map((w, i) => `(\n${installScript(w.tmp, w.it.file, w.backup, w.it.mode, w.it.content.length, w.hash, w.staged)}\n); rc=$?; [ $rc -eq 0 ] || exit $rc; echo @@ok ${i}`).join('\n');
      let r: ExecResult;
      try {
        r = await this.exec(script);
      } catch (e) {
        // no answer (a timeout, a lost connection): any of the batch may have landed, so every one goes on the rollback
        // list (putting back a file that was never replaced only fails, harmlessly, on a backup that does not exist)
        for (const w of batch) this.writes.push({ path: w.it.file, backup: w.backup });
        await this.discard(todo.slice(done));
        throw e;
      }
      const landed = r.stdout.split('\n').filter((l) => l.startsWith('@@ok ')).length;
      for (const w of batch.slice(0, landed)) this.writes.push({ path: w.it.file, backup: w.backup });
      done += landed;
      if (r.code !== 0) {
        const failed = batch[landed]!;
        await this.discard(todo.slice(done)); // the failed one too: its temp copy may still be there
        const { file, content } = failed.it;
        const dir = path.posix.dirname(file);
        this.clean.delete(dir);
        if (r.code === SHORT_WRITE) {
          const got = /landed (\d+) of/.exec(r.stderr)?.[1];
          const free = Number(/free: (\d+) KiB/.exec(r.stderr)?.[1] ?? NaN);
          const why = free * 1024 < content.length ? `no space left on ${dir}` : `the upload to ${dir} failed`;
          throw new RemoteError(this.host.name, `${why}: ${got ?? '?'} of ${content.length} bytes of ${path.posix.basename(file)} landed; ${file} was not replaced`);
        }
        throw new RemoteError(this.host.name, `install ${file}: ${r.stderr.trim() || `exit ${r.code}`}`);
      }
      if (batch !== batches.at(-1)) faultPoint('wrote-1');
    }
    return done;
  }

  /** Remove the uploads that will not be installed (a key must not linger in a temp or staging name). */
  private async discard(items: { tmp: string; staged?: string }[]): Promise<void> {
    const staged = items.flatMap((w) => (w.staged ? [w.staged] : []));
    const tmps = items.filter((w) => !w.staged).map((w) => w.tmp);
    if (staged.length) await this.exec(`rm -f -- ${staged.map(quote).join(' ')}`, false).catch(() => undefined);
    if (tmps.length) await this.exec(`rm -f -- ${tmps.map(quote).join(' ')}`).catch(() => undefined);
  }

  /** sudo mode: remove what an earlier run left in ~/.kubetls-staging (it holds only kubetls's staged copies). */
  async cleanStaging(): Promise<void> {
    await this.exec('d="$HOME/.kubetls-staging"; [ -d "$d" ] && [ ! -L "$d" ] && find "$d" -mindepth 1 -maxdepth 1 -type f -delete; true', false);
  }

  /** Free space of the file system holding `dir`, in KiB (undefined when df cannot tell). */
  private async freeKiB(dir: string, asRoot: boolean): Promise<number | undefined> {
    const r = await this.exec(`df -Pk -- ${quote(dir)} | awk 'NR==2 {print $4}'`, asRoot).catch(() => undefined);
    const n = Number(r?.stdout.trim());
    return r && r.stdout.trim() && Number.isFinite(n) ? n : undefined;
  }

  /**
   * sudo mode: ~/.kubetls-staging, 0700, owned by the SSH user (who can become root anyway, so trusting the folder
   * gives nothing away). Leftovers of an earlier run that died are removed first: no key lingers there.
   */
  private async stagingDir(): Promise<string> {
    if (!this.staging) {
      const r = await this.exec('d="$HOME/.kubetls-staging"; if [ -L "$d" ]; then echo "$d is a symlink" >&2; exit 1; fi; mkdir -p -m 700 "$d" && chmod 700 "$d" && find "$d" -mindepth 1 -maxdepth 1 -type f -delete && cd "$d" && pwd -P', false);
      if (r.code !== 0) throw new RemoteError(this.host.name, `staging folder: ${r.stderr.trim()}`);
      this.staging = r.stdout.trim();
    }
    return this.staging;
  }

  async rollback(): Promise<void> {
    const errors: string[] = [];
    for (const w of [...this.writes].reverse()) { // every file gets its chance: one failed restore must not stop the rest
      try {
        if (w.backup) await this.run(['mv', '-fT', '--', w.backup, w.path]);
        else await this.run(['rm', '-f', '--', w.path]);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    this.writes.length = 0;
    if (errors.length) throw new RemoteError(this.host.name, `rollback incomplete: ${errors.join('; ')}`);
  }

  async close(): Promise<void> {
    await this.sftp.end().catch(() => undefined);
    for (const c of this.jumps) c.end();
  }
}
