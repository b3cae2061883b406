/**
 * Opening the one connection to a host: where to connect (cluster.yaml, then ssh_config: lib/remote/sshconfig.ts),
 * the host key checked like OpenSSH (lib/remote/knownhosts.ts, host certificates: hostcert.ts), the identity file
 * judged once, through the jump hosts, retried with backoff when dropped early (OpenSSH's MaxStartups).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import ssh2, { type Client, type ConnectConfig } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import type { Host, Inventory } from '../inventory.ts';
import { log } from '../log.ts';
import * as hostCert from './hostcert.ts';
import * as knownHosts from './knownhosts.ts';
import { RemoteError, type Remote } from './remote.ts';
import { SshRemote } from './ssh.ts';
import { sshTarget, type SshTarget } from './sshconfig.ts';

export interface ConnectOptions {
  acceptNewHostKeys?: boolean;
  /** ssh2's readyTimeout: from the TCP connect to the end of authentication (default 10 s) */
  readyTimeoutMs?: number;
  /** how long a jump host may take to open the channel to the next hop (default: readyTimeoutMs) */
  channelTimeoutMs?: number;
  attempts?: number;
}

/**
 * The identity file, read once per run and judged before any host is tried (an unusable file fails every host the
 * same way; retrying it per host only hides the reason): it must be a regular file (a FIFO would block the read),
 * readable, and a key ssh2 can use. An encrypted key is left to ssh-agent, as OpenSSH does when the agent holds it;
 * without an agent, one line says how to fix it. Absent, the agent alone is used.
 */
let identity: { file: string; key?: Buffer; problem?: string } | undefined;
export function loadIdentity(file: string, agent: string | undefined): Buffer | undefined {
  if (identity?.file !== file) identity = { file, ...judgeIdentity(file, agent) };
  if (identity.problem) throw new RemoteError('-', identity.problem);
  return identity.key;
}
function judgeIdentity(file: string, agent: string | undefined): { key?: Buffer; problem?: string } {
  let st;
  try { st = statSync(file); } catch { return agent ? {} : { problem: `no SSH credential: ${file} does not exist and SSH_AUTH_SOCK is not set` }; }
  if (!st.isFile()) return { problem: `identity file ${file} is not a regular file` };
  let key: Buffer;
  try { key = readFileSync(file); } catch (e) { return { problem: `identity file ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` }; }
  const parsed = ssh2.utils.parseKey(key);
  if (!(parsed instanceof Error)) return { key };
  const encrypted = /encrypted|passphrase/i.test(parsed.message);
  if (agent) {
    log.info(`identity file ${file} ${encrypted ? 'is encrypted' : 'is not a key ssh2 can read'}: using the keys in ssh-agent`);
    return {};
  }
  return {
    problem: encrypted
      ? `identity file ${file} is encrypted and no ssh-agent is running (SSH_AUTH_SOCK is not set): run 'eval "$(ssh-agent)"; ssh-add ${file}' first`
      : `identity file ${file} is not a private key ssh2 can read: ${parsed.message}`,
  };
}

/**
 * The host-key check of one endpoint against every known_hosts file it has (the first file is where new keys go).
 * A key known, changed or revoked by plain lines is decided by them. An unknown key of a host that a `@cert-authority`
 * line matches is tried by its host certificate (lib/remote/hostcert.ts: fetched with ssh-keyscan, since ssh2 negotiates no
 * certificate algorithms; accepted only for the key ssh2 saw the server prove). As OpenSSH does (sshconnect.c
 * check_host_key), a certificate that fails falls back to the plain-key rules, so --accept-new-host-keys may still
 * add the plain key (with a warning saying why the certificate was not used); a certificate signed by a @revoked CA
 * key is a hard refusal. Deliberately stricter than OpenSSH: a plain line with another key for the host still stops
 * it as CHANGED even when a valid certificate exists (remove the stale line). A host reached through a jump host has
 * no certificate fetched (ssh-keyscan cannot go through ProxyJump): its key must be in known_hosts.
 */
function hostVerifier(t: SshTarget, label: string, o: ConnectOptions, problem: (p: string) => void, viaJump = false): { names: string[]; types: string[]; verify: (key: Buffer, done: (ok: boolean) => void) => void } {
  const names = [...new Set([knownHosts.lookupName(t.address, t.port), knownHosts.lookupName(t.name, t.port)])];
  const files = t.knownHosts;
  const types = [...new Set(files.flatMap((f) => knownHosts.knownTypes(f, names)))];
  return {
    names,
    types,
    verify: (key: Buffer, done: (ok: boolean) => void) => {
      const verdicts = files.map((f) => ({ file: f, v: knownHosts.check(f, names, key) }));
      const fp = `${knownHosts.blobType(key)} ${knownHosts.fingerprint(key)}`;
      const bad = verdicts.find((x) => x.v.kind === 'changed' || x.v.kind === 'revoked');
      if (!bad && verdicts.some((x) => x.v.kind === 'known')) return done(true);
      const unknown = (whyNoCert?: string) => {
        const cert = whyNoCert ? `; its host certificate was not accepted: ${whyNoCert}` : '';
        if (o.acceptNewHostKeys) {
          knownHosts.add(files[0], names[0], key);
          log.warn(`added host key ${fp} for ${names[0]} to ${files[0]}${cert}`, label);
          return done(true);
        }
        problem(`host key ${fp} for ${names[0]} is not in ${files.join(' or ')}${cert}: check it, then add it (ssh-keyscan, or --accept-new-host-keys)`);
        return done(false);
      };
      if (!bad && knownHosts.hasAuthority(files, names)) {
        if (viaJump) return unknown('host certificates are not fetched through a jump host (ssh-keyscan cannot use ProxyJump), so this host key must be in known_hosts');
        const timeoutMs = Math.min(5_000, (o.readyTimeoutMs ?? 10_000) / 2); // inside ssh2's readyTimeout
        hostCert.verifyHostByCert({ address: t.address, hosts: [t.address, t.name], port: t.port, hostKey: key, files, timeoutMs })
          .then((c) => {
            if (c.ok) {
              log.info(`host key ${fp} for ${c.name} accepted by its host certificate (@cert-authority ${c.file}:${c.line})`, label);
              return done(true);
            }
            if (!c.revoked) return unknown(c.reason);
            problem(`host certificate for ${names[0]} refused: ${c.reason}`);
            return done(false);
          }, (e: Error) => unknown(e.message))
          .catch((e: Error) => { problem(`host key ${fp} for ${names[0]}: ${e.message}`); done(false); }); // e.g. known_hosts not writable
        return;
      }
      if (!bad) return unknown();
      const v = bad.v;
      problem(v.kind === 'changed'
        ? `HOST KEY CHANGED for ${names[0]}: offered ${fp}, ${bad.file}:${v.line} has ${v.expected}. Someone may be intercepting; nothing was sent. If the host was reinstalled, remove that line.`
        : `host key ${fp} for ${names[0]} is revoked (${bad.file}:${'line' in v ? v.line : '?'})`);
      return done(false);
    },
  };
}

function sshConfigFor(t: SshTarget, label: string, o: ConnectOptions, problem: (p: string) => void, sock?: NodeJS.ReadableStream): ConnectConfig {
  const hv = hostVerifier(t, label, o, problem, !!sock);
  const identity = t.identityFiles.find((f) => existsSync(f)) ?? t.identityFiles[0];
  return {
    host: t.address,
    port: t.port,
    username: t.user,
    readyTimeout: o.readyTimeoutMs ?? 10_000,
    // a peer that vanishes mid-run (host down, network cut) is noticed within a minute instead of hanging the run
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
    privateKey: loadIdentity(identity, process.env.SSH_AUTH_SOCK),
    agent: process.env.SSH_AUTH_SOCK,
    localAddress: sock ? undefined : t.bindAddress,
    sock: sock as never,
    algorithms: hv.types.length ? { serverHostKey: hv.types.flatMap((x) => (x === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [x])) as never } : undefined,
    hostVerifier: hv.verify,
  };
}

/**
 * Through the jump hosts (ssh_config's ProxyJump), outermost first: each is an SSH connection of its own, host key
 * checked like any host, and the next hop is a `direct-tcpip` channel through it (what `ssh -J` does). Returns the
 * stream to the target and the jump connections, which close with it.
 */
async function jumpTo(t: SshTarget, label: string, o: ConnectOptions): Promise<{ sock: NodeJS.ReadableStream; clients: Client[] }> {
  const clients: Client[] = [];
  let sock: NodeJS.ReadableStream | undefined;
  try {
    for (const [i, j] of t.jumps.entries()) {
      let problem: string | undefined;
      const c = new ssh2.Client();
      await new Promise<void>((resolve, reject) => {
        c.once('ready', () => resolve());
        c.once('error', (e) => reject(new RemoteError(label, problem ?? `jump host ${j.user}@${j.address}:${j.port}: ${e.message}`)));
        c.connect(sshConfigFor(j, label, o, (p) => { problem = `jump host ${j.name}: ${p}`; }, sock));
      });
      clients.push(c);
      const next = t.jumps[i + 1] ?? t;
      sock = await new Promise<NodeJS.ReadableStream>((resolve, reject) => {
        // bounded like every other step: a jump host that never answers the channel open must not hold a cron run
        const channelMs = o.channelTimeoutMs ?? o.readyTimeoutMs ?? 10_000;
        const timer = setTimeout(() => reject(new RemoteError(label, `jump host ${j.name}: no answer to opening ${next.address}:${next.port} in ${channelMs / 1000} s`, true)), channelMs);
        c.forwardOut('127.0.0.1', 0, next.address, next.port, (err, stream) => {
          clearTimeout(timer);
          if (err) reject(new RemoteError(label, `jump host ${j.name} cannot reach ${next.address}:${next.port}: ${err.message}`));
          else resolve(stream);
        });
      });
    }
    return { sock: sock!, clients };
  } catch (e) {
    for (const c of clients) c.end();
    throw e;
  }
}

/**
 * Open the one connection to a host: host key checked first, auth by key file or agent, through its jump hosts, retried
 * when dropped early. Where to connect comes from cluster.yaml, then ssh_config, then the defaults (lib/remote/sshconfig.ts).
 */
export async function connect(inv: Inventory, host: Host, o: ConnectOptions = {}): Promise<Remote> {
  let t: SshTarget;
  try { t = sshTarget(inv, host); } catch (e) { throw new RemoteError(host.name, (e as Error).message); }
  const via = t.jumps.length ? ` via ${t.jumps.map((j) => j.name).join(' → ')}` : '';
  // an unusable identity file fails every attempt the same way: judged once, before the first, never retried
  for (const x of [...t.jumps, t]) {
    try { loadIdentity(x.identityFiles.find((f) => existsSync(f)) ?? x.identityFiles[0], process.env.SSH_AUTH_SOCK); } catch (e) { throw new RemoteError(host.name, (e as Error).message); }
  }
  const attempts = o.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    let hostKeyProblem: string | undefined;
    let jumps: Client[] = [];
    const sftp = new SftpClient(host.name, { error: () => undefined, end: () => undefined, close: () => undefined });
    try {
      let sock: NodeJS.ReadableStream | undefined;
      if (t.jumps.length) ({ sock, clients: jumps } = await jumpTo(t, host.name, o));
      const config = sshConfigFor(t, host.name, o, (p) => { hostKeyProblem = p; }, sock);
      await sftp.connect(config);
      const remote = new SshRemote(host, sftp, inv.ssh.sudo && t.user !== 'root', jumps);
      if (inv.ssh.sudo && t.user !== 'root') await remote.cleanStaging(); // a key a cut-off run staged does not wait for the next write
      return remote;
    } catch (e) {
      await sftp.end().catch(() => undefined);
      for (const c of jumps) c.end();
      if (hostKeyProblem) throw new RemoteError(host.name, hostKeyProblem);
      if (e instanceof RemoteError && !e.retriable && /jump host .*(HOST KEY|host key|is not in|revoked)/.test(e.message)) throw e;
      const msg = (e as Error).message.replace(/^connect: /, '');
      const auth = /authentication methods failed/i.test(msg);
      if (auth) throw new RemoteError(host.name, `ssh ${t.user}@${t.address}:${t.port}${via}: authentication failed (key ${t.identityFiles.find((f) => existsSync(f)) ?? t.identityFiles[0]}${process.env.SSH_AUTH_SOCK ? ' or the agent' : ''})`);
      if (attempt >= attempts) throw new RemoteError(host.name, `ssh ${t.user}@${t.address}:${t.port}${via}: ${msg} (after ${attempt} attempts)`, true);
      await sleep(200 * 2 ** (attempt - 1) + Math.floor(Math.random() * 100)); // OpenSSH MaxStartups drops early connections: back off
    }
  }
}
