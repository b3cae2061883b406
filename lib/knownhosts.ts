/**
 * Host keys checked the way OpenSSH checks them (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): plain and hashed (`|1|salt|hash`)
 * host patterns, `[host]:port` for ports other than 22, `*`/`?` wildcards, `!negation`, `@revoked`.
 * An unknown key stops the host unless --accept-new-host-keys; a changed key always stops it.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

export interface KnownKey { type: string; blob: Buffer; line: number; revoked: boolean }
export type Verdict =
  | { kind: 'known'; line: number }
  | { kind: 'unknown' }
  | { kind: 'changed'; line: number; expected: string }
  | { kind: 'revoked'; line: number };

/** `SHA256:…` as ssh-keygen -l prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob (its first string). */
export function blobType(blob: Buffer): string {
  const n = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + n).toString();
}

/** The names a host is looked up under: `addr` for port 22, `[addr]:port` otherwise. */
export function lookupName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

function hostsMatch(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  let matched = false;
  for (const p of field.split(',')) {
    if (p.startsWith('!')) { if (globMatch(p.slice(1), name)) return false; }
    else if (globMatch(p, name)) matched = true;
  }
  return matched;
}

/** Every key known_hosts holds for any of `names`. */
export function keysFor(file: string, names: string[]): KnownKey[] {
  if (!existsSync(file)) return [];
  const out: KnownKey[] = [];
  readFileSync(file, 'utf8').split('\n').forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/);
    if (!fields[0] || fields[0].startsWith('#')) return;
    let revoked = false;
    if (fields[0].startsWith('@')) {
      if (fields[0] !== '@revoked') return; // @cert-authority: host certificates are not used here
      revoked = true;
      fields.shift();
    }
    const [hosts, type, b64] = fields;
    if (!b64 || !names.some((n) => hostsMatch(hosts, n))) return;
    out.push({ type, blob: Buffer.from(b64, 'base64'), line: i + 1, revoked });
  });
  return out;
}

/** Compare the key a server offered with known_hosts. */
export function check(file: string, names: string[], offered: Buffer): Verdict {
  const keys = keysFor(file, names);
  const revoked = keys.find((k) => k.revoked && k.blob.equals(offered));
  if (revoked) return { kind: 'revoked', line: revoked.line };
  const same = keys.find((k) => !k.revoked && k.blob.equals(offered));
  if (same) return { kind: 'known', line: same.line };
  const type = blobType(offered);
  const other = keys.find((k) => !k.revoked && k.type === type);
  if (other) return { kind: 'changed', line: other.line, expected: fingerprint(other.blob) };
  return { kind: 'unknown' };
}

/** The key types known for a host, so that the server is asked for one of them (as OpenSSH orders its algorithms). */
export function knownTypes(file: string, names: string[]): string[] {
  return [...new Set(keysFor(file, names).filter((k) => !k.revoked).map((k) => k.type))];
}

/** --accept-new-host-keys: append a hashed entry, as `ssh -o StrictHostKeyChecking=accept-new` with HashKnownHosts does. */
export function add(file: string, name: string, blob: Buffer): void {
  const salt = randomBytes(20);
  const hash = createHmac('sha1', salt).update(name).digest('base64');
  appendFileSync(file, `|1|${salt.toString('base64')}|${hash} ${blobType(blob)} ${blob.toString('base64')}\n`, { mode: 0o600 });
}
