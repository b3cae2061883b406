import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { add, check, fingerprint, hasAuthority, keysFor, knownTypes, lookupName, markedKeys } from '../lib/remote/knownhosts.ts';
import { command, quote } from '../lib/sh.ts';
import { tempDir } from './helpers/inventory.ts';

/** A fake ssh-ed25519 public key blob: string "ssh-ed25519" then 32 bytes. */
function blob(seed: number): Buffer {
  const type = Buffer.from('ssh-ed25519');
  const key = Buffer.alloc(32, seed);
  const len = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
  return Buffer.concat([len(type.length), type, len(key.length), key]);
}
const line = (hosts: string, b: Buffer) => `${hosts} ssh-ed25519 ${b.toString('base64')}`;
const file = (lines: string[]) => {
  const f = path.join(tempDir('kubetls-kh-'), 'known_hosts');
  writeFileSync(f, `${lines.join('\n')}\n`);
  return f;
};
const hashed = (name: string) => {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
};

test('a plain entry with several names, a hashed entry and a [host]:port entry are each found', (t) => {
  const f = file(['# comment', line('kubemaster,127.5.0.1', blob(1)), line(hashed('127.5.0.2'), blob(2)), line('[127.5.0.3]:2222', blob(3))]);
  t.is(check(f, ['127.5.0.1'], blob(1)).kind, 'known');
  t.is(check(f, ['127.5.0.2'], blob(2)).kind, 'known');
  t.is(check(f, [lookupName('127.5.0.3', 2222)], blob(3)).kind, 'known');
  t.is(check(f, [lookupName('127.5.0.3', 22)], blob(3)).kind, 'unknown', 'port 22 does not match a [host]:2222 entry');
});

test('a different key of the same type is a changed key, with the known fingerprint and line', (t) => {
  const f = file([line('kubemaster', blob(1))]);
  t.deepEqual(check(f, ['kubemaster'], blob(9)), { kind: 'changed', line: 1, expected: fingerprint(blob(1)) });
  t.regex(fingerprint(blob(1)), /^SHA256:[A-Za-z0-9+/]{43}$/);
});

test('wildcards and negations match like OpenSSH, and @revoked keys are refused', (t) => {
  const f = file([line('kubeminion*,!kubeminion9', blob(4)), `@revoked ${line('*', blob(5))}`]);
  t.is(check(f, ['kubeminion1'], blob(4)).kind, 'known');
  t.is(check(f, ['kubeminion9'], blob(4)).kind, 'unknown');
  t.is(check(f, ['anything'], blob(5)).kind, 'revoked');
  t.deepEqual(knownTypes(f, ['kubeminion2']), ['ssh-ed25519']);
});

test('a @cert-authority line is a CA key, never a host key: the same key offered by the host stays unknown', (t) => {
  const f = file([`@cert-authority kubemaster,[127.5.0.1]:2222 ${line('', blob(6)).trim()}`, `@revoked kubemaster ${line('', blob(8)).trim()}`, `@unknown-marker kubemaster ${line('', blob(9)).trim()}`]);
  t.is(check(f, ['kubemaster'], blob(6)).kind, 'unknown', 'not known');
  t.is(check(f, ['kubemaster'], blob(7)).kind, 'unknown', 'not a changed key either');
  t.deepEqual(knownTypes(f, ['kubemaster']), [], 'the CA key type is not asked of the server');
  t.deepEqual(keysFor(f, ['kubemaster']).map((k) => k.line), [2]);
  t.deepEqual(markedKeys(f, ['kubemaster']).map((k) => [k.line, k.ca, k.revoked]), [[1, true, false], [2, false, true]]);
  t.true(markedKeys(f, ['kubemaster'])[0].blob.equals(blob(6)));
  t.true(hasAuthority(['/nonexistent', f], [lookupName('127.5.0.1', 2222)]));
  t.false(hasAuthority([f], [lookupName('127.5.0.1', 22)]), 'port 22 does not match [127.5.0.1]:2222');
  t.false(hasAuthority([file([line('kubemaster', blob(1))])], ['kubemaster']), 'a plain line is no CA');
});

test('an accepted new key is appended hashed and found afterwards', (t) => {
  const f = file([]);
  add(f, '127.5.0.7', blob(7));
  t.regex(readFileSync(f, 'utf8'), /^\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+ ssh-ed25519 \S+$/m);
  t.false(readFileSync(f, 'utf8').includes('127.5.0.7'));
  t.is(check(f, ['127.5.0.7'], blob(7)).kind, 'known');
});

test('values are quoted for POSIX sh so that no inventory value is ever parsed as shell', (t) => {
  t.is(quote('/srv/kubernetes/ca.crt'), '/srv/kubernetes/ca.crt');
  t.is(quote("it's; rm -rf /"), `'it'\\''s; rm -rf /'`);
  t.is(quote(''), "''");
  t.is(quote('$(id)'), "'$(id)'");
  t.is(command(['install', '-o', 'kube', '-m', '0600', 'a b']), "install -o kube -m 0600 'a b'");
});
