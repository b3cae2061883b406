/**
 * Host keys checked the way OpenSSH checks them (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): plain and hashed (`|1|salt|hash`)
 * host patterns, `[host]:port` for ports other than 22, `*`/`?` wildcards, `!negation`, `@revoked`, and
 * `@cert-authority` CA keys (read here, used by lib/remote/hostcert.ts when the plain key is unknown).
 * An unknown key stops the host unless --accept-new-host-keys; a changed key always stops it.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

export interface KnownKey { type: string; blob: Buffer; line: number; revoked: boolean; ca: boolean }
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

/**
 * Every line of known_hosts that matches any of `names`: plain keys, `@revoked` keys and `@cert-authority` keys (the
 * last are CA keys for host certificates, lib/remote/hostcert.ts: never a host's own key). Other markers are skipped.
 */
export function markedKeys(file: string, names: string[]): KnownKey[] {
  if (!existsSync(file)) return [];
  const out: KnownKey[] = [];
  readFileSync(file, 'utf8').split('\n').forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/);
    if (!fields[0] || fields[0].startsWith('#')) return;
    const marker = fields[0].startsWith('@') ? fields.shift() : undefined;
    if (marker && marker !== '@revoked' && marker !== '@cert-authority') return;
    const [hosts, type, b64] = fields;
    if (!b64 || !names.some((n) => hostsMatch(hosts, n))) return;
    out.push({ type, blob: Buffer.from(b64, 'base64'), line: i + 1, revoked: marker === '@revoked', ca: marker === '@cert-authority' });
  });
  return out;
}

/** Every key known_hosts holds for any of `names` (plain and `@revoked`; CA keys are not host keys). */
export function keysFor(file: string, names: string[]): KnownKey[] {
  return markedKeys(file, names).filter((k) => !k.ca);
}

/** Is there a `@cert-authority` line for any of `names` (so that the host's certificate is worth fetching)? */
export function hasAuthority(files: string[], names: string[]): boolean {
  return files.some((f) => markedKeys(f, names).some((k) => k.ca));
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
