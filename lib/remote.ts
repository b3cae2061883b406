/**
 * One SSH connection per host (ssh2 through ssh2-sftp-client), used for SFTP and exec alike.
 *
 *   const r = await connect(inv, host, { acceptNewHostKeys })
 *   await r.write('/srv/kubernetes/ca.crt', bytes, masterPki, 'pki/ca.crt')   // atomic, backed up, skipped if equal
 *   await r.run(['systemctl', 'restart', 'kube-apiserver'])
 *   await r.close()
 *
 * Commands are strings for the remote login shell, built only with lib/sh.ts quoting. With `ssh.sudo: true` the
 * user is not root: files are staged in ~/.kubetls-staging (0700, files 0600) and installed by one `sudo -n` command.
 * `dryRemote(host)` has the same interface, logs every action as a shell line and connects nowhere.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import SftpClient from 'ssh2-sftp-client';
import type { Client, ClientChannel, ConnectConfig } from 'ssh2';
import { BACKUPS_KEPT, type FileMode } from '../config/files.ts';
import type { Host, Inventory } from './inventory.ts';
import * as knownHosts from './knownhosts.ts';
import { log } from './log.ts';
import { command, quote } from './sh.ts';

export interface ExecResult { code: number; stdout: string; stderr: string }
export interface FileState { owner: string; group: string; mode: number; sha256: string }
/** A write done in this run: what to put back if the host must be rolled back. */
export interface Written { path: string; backup?: string }

export interface Remote {
  readonly host: Host;
  readonly writes: Written[];
  /** True for --dry-run: nothing is read or sent, so callers need not prepare content. */
  readonly dry: boolean;
  /** Run an argv (quoted for sh, with sudo when needed); logs it; throws RemoteError on a non-zero exit unless `ok` allows it. */
  run(argv: string[], o?: { ok?: number[]; quiet?: boolean; timeoutMs?: number }): Promise<ExecResult>;
  /** Owner, group, mode and sha256 of each path (undefined when absent), in one round trip. */
  inspect(paths: string[]): Promise<Map<string, FileState | undefined>>;
  read(file: string): Promise<Buffer | undefined>;
  /** `mkdir -p -m MODE` + chown, when the folder is missing or differs. Returns true when something changed. */
  ensureDir(dir: string, m: FileMode): Promise<boolean>;
  /** Write unless content, owner and mode already match. Returns true when written. */
  write(file: string, content: Buffer, m: FileMode, label: string, known?: FileState): Promise<boolean>;
  /** Put back what this run replaced on this host (newest first): the backup, or remove a file that was new. */
  rollback(): Promise<void>;
  close(): Promise<void>;
}

export class RemoteError extends Error {
  constructor(readonly host: string, message: string, readonly retriable = false) {
    super(message);
    this.name = 'RemoteError';
  }
}

export interface ConnectOptions { acceptNewHostKeys?: boolean; readyTimeoutMs?: number; attempts?: number }

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The longest a remote command may run: above systemd's default start timeout (90 s), so a slow restart still fits. */
export const EXEC_TIMEOUT_MS = 120_000;

/** `<file>.bak-20261128T220000Z`: the UTC time of this run, so a run's backups sort together and after older ones. */
export const backupStamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

const modeStr = (m: number) => m.toString(8).padStart(4, '0');
const describeMode = (m: FileMode) => `${m.owner}:${m.group} ${modeStr(m.mode)}`;

// ---- scripts run on the far side (POSIX sh; every value passes through quote()) ---------------------------------------

function inspectScript(paths: string[]): string {
  return `for f in ${paths.map(quote).join(' ')}; do if [ -f "$f" ]; then printf '%s\\t%s\\t%s\\n' "$f" "$(stat -c '%U:%G:%a' -- "$f")" "$(sha256sum < "$f" | cut -d' ' -f1)"; else printf '%s\\t-\\n' "$f"; fi; done`;
}

/** Back up `file` (a hard link keeps the old inode, owner and mode), keep the newest BACKUPS_KEPT, rename tmp over it. */
function installScript(tmp: string, file: string, backup: string | undefined, m: FileMode, from?: string): string {
  const q = quote;
  return [
    from ? `install -o ${q(m.owner)} -g ${q(m.group)} -m ${modeStr(m.mode)} ${q(from)} ${q(tmp)}` : `chown ${q(`${m.owner}:${m.group}`)} ${q(tmp)} && chmod ${modeStr(m.mode)} ${q(tmp)}`,
    ...(backup ? [`{ [ ! -e ${q(file)} ] || ln -f ${q(file)} ${q(backup)}; }`] : []),
    `{ set -- ${q(file)}.bak-*; [ -e "$1" ] || set --; while [ $# -gt ${BACKUPS_KEPT} ]; do rm -f -- "$1"; shift; done; }`,
    ...(from ? [`mv -f ${q(tmp)} ${q(file)}`, `rm -f ${q(from)}`] : []),
  ].join(' && ');
}

// ---- the real thing --------------------------------------------------------------------------------------------------

class SshRemote implements Remote {
  readonly writes: Written[] = [];
  readonly dry = false;
  private staging?: string;
  constructor(readonly host: Host, private sftp: SftpClient, private sudo: boolean) {}

  private exec(script: string, asRoot = true, timeoutMs = EXEC_TIMEOUT_MS): Promise<ExecResult> {
    const cmd = asRoot && this.sudo ? `sudo -n sh -c ${quote(script)}` : script;
    return new Promise((resolve, reject) => {
      (this.sftp as unknown as { client: Client }).client.exec(cmd, (err: Error | undefined, stream: ClientChannel) => {
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
    const r = await this.exec(inspectScript(paths));
    if (r.code !== 0) throw new RemoteError(this.host.name, `inspect ${paths.join(' ')}: ${r.stderr.trim()}`);
    const out = new Map<string, FileState | undefined>(paths.map((p) => [p, undefined]));
    for (const line of r.stdout.split('\n')) {
      const [f, st, hash] = line.split('\t');
      if (!f || st === '-' || !st) continue;
      const [owner, group, mode] = st.split(':');
      out.set(f, { owner, group, mode: parseInt(mode, 8), sha256: hash });
    }
    return out;
  }

  async read(file: string): Promise<Buffer | undefined> {
    const r = await this.exec(`[ -f ${quote(file)} ] && base64 < ${quote(file)} || echo MISSING`);
    if (r.code !== 0) throw new RemoteError(this.host.name, `read ${file}: ${r.stderr.trim()}`);
    return r.stdout.trim() === 'MISSING' ? undefined : Buffer.from(r.stdout.replace(/\s/g, ''), 'base64');
  }

  async ensureDir(dir: string, m: FileMode): Promise<boolean> {
    const want = `${m.owner}:${m.group}:${m.mode.toString(8)}`;
    const r = await this.exec(`stat -c '%U:%G:%a' -- ${quote(dir)} 2>/dev/null || true`);
    if (r.stdout.trim() === want) return false;
    const argv = ['install', '-d', '-o', m.owner, '-g', m.group, '-m', modeStr(m.mode), dir];
    await this.run(argv);
    return true;
  }

  async write(file: string, content: Buffer, m: FileMode, label: string, known?: FileState): Promise<boolean> {
    const state = known ?? (await this.inspect([file])).get(file);
    if (state && state.sha256 === sha256(content) && state.owner === m.owner && state.group === m.group && state.mode === m.mode) return false;
    const dir = path.posix.dirname(file);
    const base = path.posix.basename(file);
    const tmp = `${dir}/.${base}.kubetls-tmp`;
    const backup = state ? `${file}.bak-${backupStamp}` : undefined;
    log.action(`sftp put ${label} → ${file} (${describeMode(m)}${backup ? `, old one kept as ${path.posix.basename(backup)}` : ''})`, this.host.name);
    try {
      if (this.sudo) {
        const staged = `${await this.stagingDir()}/${base}.${process.pid}`;
        await this.sftp.put(content, staged, { writeStreamOptions: { mode: 0o600, flags: 'w' } });
        await this.must(installScript(tmp, file, backup, m, staged), `install ${file}`);
      } else {
        await this.sftp.put(content, tmp, { writeStreamOptions: { mode: 0o600, flags: 'w' } });
        await this.must(installScript(tmp, file, backup, m), `chown/chmod ${tmp}`);
        await this.sftp.posixRename(tmp, file);
      }
    } catch (e) {
      if (e instanceof RemoteError) throw e;
      const code = (e as { code?: number }).code;
      throw new RemoteError(this.host.name, `upload ${file}: ${(e as Error).message.replace(/^_?\w+: /, '')}${code ? ` (sftp code ${code})` : ''}`);
    }
    this.writes.push({ path: file, backup });
    return true;
  }

  private async must(script: string, what: string): Promise<void> {
    const r = await this.exec(script);
    if (r.code !== 0) throw new RemoteError(this.host.name, `${what}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }

  /** sudo mode: ~/.kubetls-staging, 0700, owned by the SSH user. */
  private async stagingDir(): Promise<string> {
    if (!this.staging) {
      const r = await this.exec('mkdir -p -m 700 "$HOME/.kubetls-staging" && chmod 700 "$HOME/.kubetls-staging" && cd "$HOME/.kubetls-staging" && pwd', false);
      if (r.code !== 0) throw new RemoteError(this.host.name, `staging folder: ${r.stderr.trim()}`);
      this.staging = r.stdout.trim();
    }
    return this.staging;
  }

  async rollback(): Promise<void> {
    for (const w of [...this.writes].reverse()) {
      if (w.backup) await this.run(['mv', '-f', w.backup, w.path]);
      else await this.run(['rm', '-f', w.path]);
    }
    this.writes.length = 0;
  }

  async close(): Promise<void> {
    await this.sftp.end().catch(() => undefined);
  }
}

/** Open the one connection to a host: host key checked first, auth by key file or agent, retried when dropped early. */
export async function connect(inv: Inventory, host: Host, o: ConnectOptions = {}): Promise<Remote> {
  const names = [...new Set([knownHosts.lookupName(host.address, host.port), knownHosts.lookupName(host.name, host.port)])];
  const file = inv.ssh.knownHosts;
  const types = knownHosts.knownTypes(file, names);
  let hostKeyProblem: string | undefined;
  const config: ConnectConfig = {
    host: host.address,
    port: host.port,
    username: host.user,
    readyTimeout: o.readyTimeoutMs ?? 10_000,
    // a peer that vanishes mid-run (host down, network cut) is noticed within a minute instead of hanging the run
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
    privateKey: existsSync(inv.ssh.identityFile) ? readFileSync(inv.ssh.identityFile) : undefined,
    agent: process.env.SSH_AUTH_SOCK,
    algorithms: types.length ? { serverHostKey: types.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t])) as never } : undefined,
    hostVerifier: (key: Buffer) => {
      const v = knownHosts.check(file, names, key);
      const fp = `${knownHosts.blobType(key)} ${knownHosts.fingerprint(key)}`;
      if (v.kind === 'known') return true;
      if (v.kind === 'unknown' && o.acceptNewHostKeys) {
        knownHosts.add(file, names[0], key);
        log.warn(`added host key ${fp} for ${names[0]} to ${file}`, host.name);
        return true;
      }
      hostKeyProblem = v.kind === 'unknown'
        ? `host key ${fp} for ${names[0]} is not in ${file}: check it, then add it (ssh-keyscan, or --accept-new-host-keys)`
        : v.kind === 'changed'
          ? `HOST KEY CHANGED for ${names[0]}: offered ${fp}, ${file}:${v.line} has ${v.expected}. Someone may be intercepting; nothing was sent. If the host was reinstalled, remove that line.`
          : `host key ${fp} for ${names[0]} is revoked (${file}:${v.line})`;
      return false;
    },
  };
  if (!config.privateKey && !config.agent) {
    throw new RemoteError(host.name, `no SSH credential: ${inv.ssh.identityFile} does not exist and SSH_AUTH_SOCK is not set`);
  }
  const attempts = o.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    const sftp = new SftpClient(host.name, { error: () => undefined, end: () => undefined, close: () => undefined });
    try {
      await sftp.connect(config);
      return new SshRemote(host, sftp, inv.ssh.sudo && host.user !== 'root');
    } catch (e) {
      await sftp.end().catch(() => undefined);
      if (hostKeyProblem) throw new RemoteError(host.name, hostKeyProblem);
      const msg = (e as Error).message.replace(/^connect: /, '');
      const auth = /authentication methods failed/i.test(msg);
      if (auth) throw new RemoteError(host.name, `ssh ${host.user}@${host.address}:${host.port}: authentication failed (key ${inv.ssh.identityFile}${config.agent ? ' or the agent' : ''})`);
      if (attempt >= attempts) throw new RemoteError(host.name, `ssh ${host.user}@${host.address}:${host.port}: ${msg} (after ${attempt} attempts)`, true);
      await sleep(200 * 2 ** (attempt - 1) + Math.floor(Math.random() * 100)); // OpenSSH MaxStartups drops early connections: back off
    }
  }
}

// ---- --dry-run ---------------------------------------------------------------------------------------------------------

/** Logs what would be done, as shell lines; connects nowhere; reports every file as absent so every write shows. */
export function dryRemote(host: Host, sudo: boolean): Remote {
  const pre = (argv: string[]) => (sudo && host.user !== 'root' ? ['sudo', '-n', ...argv] : argv);
  return {
    host,
    writes: [],
    dry: true,
    async run(argv, o) { if (!o?.quiet) log.cmd(pre(argv), host.name); return { code: 0, stdout: '', stderr: '' }; },
    async inspect(paths) { return new Map(paths.map((p) => [p, undefined])); },
    async read() { return undefined; },
    async ensureDir(dir, m) { log.cmd(pre(['install', '-d', '-o', m.owner, '-g', m.group, '-m', modeStr(m.mode), dir]), host.name); return true; },
    async write(file, _content, m, label) { log.action(`sftp put ${label} → ${file} (${describeMode(m)})`, host.name); return true; },
    async rollback() {},
    async close() {},
  };
}
