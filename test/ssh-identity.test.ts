/**
 * The identity file is judged once, before any host is tried: a FIFO must not hang the run, an
 * unreadable or encrypted key must fail at once with one line saying what to do, not be retried five times per host.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { loadInventory } from '../lib/inventory/load.ts';
import { configureLog } from '../lib/log.ts';
import { applyPki } from '../lib/pki/apply.ts';
import { planPki } from '../lib/pki/plan.ts';
import { writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

configureLog({ sink: () => undefined, tty: false });

async function cluster(identity: (dir: string) => Promise<string>) {
  const file = writeInventory({ master: { name: 'kubemaster', address: '127.0.0.1', port: 1 }, minions: [] });
  const dir = path.dirname(file);
  const key = await identity(dir);
  writeFileSync(file, `${readFileSyncUtf8(file)}ssh:\n  identity_file: ${key}\n  known_hosts: ${path.join(dir, 'known_hosts')}\n`);
  const inv = loadInventory(file);
  await applyPki(inv, planPki(inv));
  return file;
}
const readFileSyncUtf8 = (f: string) => readFileSync(f, 'utf8');

for (const [what, make, message] of [
  ['a FIFO', async (d: string) => { await execa('mkfifo', [path.join(d, 'id')]); return path.join(d, 'id'); }, /identity file .*\/id is not a regular file/],
  ['an encrypted key without an agent', async (d: string) => { await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', path.join(d, 'id')]); return path.join(d, 'id'); },
    /identity file .*\/id is encrypted and no ssh-agent is running \(SSH_AUTH_SOCK is not set\): run 'eval "\$\(ssh-agent\)"; ssh-add .*\/id' first/],
  ['garbage', async (d: string) => { writeFileSync(path.join(d, 'id'), 'not a key\n', { mode: 0o600 }); return path.join(d, 'id'); }, /identity file .*\/id is not a private key ssh2 can read/],
  ['an unreadable file', async (d: string) => { writeFileSync(path.join(d, 'id'), 'x', { mode: 0o600 }); chmodSync(path.join(d, 'id'), 0o000); return path.join(d, 'id'); }, /identity file .*\/id (cannot be read|is not a private key)/],
] as const) {
  test(`an identity file that is ${what} fails the host at once with one line, no retries`, async (t) => {
    const file = await cluster(make);
    const started = Date.now();
    const r = await runScript('master.ts', ['--inventory', file], { SSH_AUTH_SOCK: '' });
    t.is(r.code, 1, r.all);
    t.regex(r.stdout, message);
    t.notRegex(r.all, /attempts/);
    t.true(Date.now() - started < 30_000, 'no hang, no backoff');
  });
}
