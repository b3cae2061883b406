/**
 * Property-based tests (fast-check), bounded so that the file runs in seconds:
 *  - the inventory parser: whatever the text or the value of a key, it returns a valid inventory or throws an
 *    InventoryError whose every line is `ERROR: FILE:LINE: …` and holds no raw newline; and what it accepts is safe;
 *  - the remote quoting: any string (quotes, newlines, `$()`, backslashes, unicode; no NUL, which no argv can hold)
 *    quoted by lib/sh.ts reaches a real /bin/sh as exactly one argument equal to itself; so does every logged line.
 */
import { existsSync, realpathSync } from 'node:fs';
import test from 'ava';
import { execa } from 'execa';
import fc from 'fast-check';
import { stringify } from 'yaml';
import type { Inventory } from '../lib/inventory.ts';
import { InventoryError } from '../lib/inventory/errors.ts';
import { parseInventory } from '../lib/inventory/load.ts';
import { RESERVED_NAMES } from '../lib/inventory/schema.ts';
import { configureLog, log } from '../lib/log.ts';
import { command, quote } from '../lib/sh.ts';
import { baseInventory } from './helpers/inventory.ts';

const RUNS = 200;
const FILE = '/work/kubetls-props/cluster.yaml';

/** Parse; an inventory or an InventoryError are the only outcomes allowed. */
function outcome(text: string): Inventory | InventoryError {
  try {
    return parseInventory(text, FILE, 'cluster.yaml');
  } catch (e) {
    if (e instanceof InventoryError) return e;
    throw new Error(`not an InventoryError: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}\n--- text:\n${JSON.stringify(text)}`);
  }
}

/** The properties every result must have. */
function check(r: Inventory | InventoryError): void {
  if (r instanceof InventoryError) {
    const lines = r.message.split('\n');
    if (lines.length !== r.problems.length || !lines.length) throw new Error(`${r.problems.length} problems, ${lines.length} lines: ${JSON.stringify(r.message)}`);
    for (const l of lines) {
      if (!/^ERROR: cluster\.yaml:\d+: /.test(l)) throw new Error(`bad line: ${JSON.stringify(l)}`);
      if (/[\r\u0085\u2028\u2029\u0000-\u001f]/.test(l)) throw new Error(`raw control character in: ${JSON.stringify(l)}`);
    }
    return;
  }
  // What is accepted is safe where it goes: remote shell lines and flags, subjects, file names.
  const bad = (what: string, v: unknown) => { throw new Error(`accepted ${what}: ${JSON.stringify(v)}`); };
  if (!/^(\/[A-Za-z0-9._-]+)+$/.test(r.pki.remoteDir) || r.pki.remoteDir.split('/').includes('..')) bad('pki.remote_dir', r.pki.remoteDir);
  if (/[/=+,\\"<>;\u0000-\u001f]/.test(r.apiserver.cn) || r.apiserver.cn.length > 64) bad('apiserver.cn', r.apiserver.cn);
  if (!r.apiserver.dns.length && !r.apiserver.ip.length) bad('no SAN', r.apiserver);
  if (r.apiserver.ip.some((ip) => ip.includes('%'))) bad('a zone id', r.apiserver.ip);
  for (const h of [r.master, ...r.minions]) {
    if (!/^[a-z0-9-]{1,63}$/.test(h.name) || (RESERVED_NAMES as readonly string[]).includes(h.name)) bad('host name', h.name);
  }
  const endpoints = [r.master, ...r.minions].map((h) => `${h.address}:${h.port}`);
  if (new Set(endpoints).size !== endpoints.length) bad('a shared address and port', endpoints);
  if (r.pki.dir === '/' || r.pki.dir === '/work/kubetls-props') bad('pki.dir', r.pki.dir);
}

/** Pieces YAML is made of, and the characters that break naive code. */
const token = fc.constantFrom(
  'cluster: lab', 'profile: legacy', 'profile: modern', 'pki:', '  remote_dir: /srv/kubernetes', '  remote_dir: ', 'apiserver:',
  '  cn: k', '  ip: [10.0.0.1]', '  dns: [a]', 'master: m', 'minions:', '  - ', 'ca', 'server', ' ', '  ', '\n', '\r\n', '\t',
  ':', ': ', '- ', '[', ']', '{', '}', ',', '&a ', '*a', '*b', '<<: *a', '"', "'", '#', '!!str ', '!!binary ', '!!map ', '!x ',
  '~', 'null', '1', '-1', '0x1F', '1e400', '.nan', '---\n', '...\n', '? ', '|\n', '>-\n', '\\', '\\n', '%YAML 1.2\n', '%TAG ! x\n',
  '\u0000', '\u0007', '\u001b[31m', 'é', '\u2028', '\u202e', '😀', '\ud800', 'ERROR: x', '/O=system:masters', 'fe80::1%eth0',
);
const yamlish = fc.array(token, { maxLength: 40 }).map((a) => a.join(''));

test('the inventory parser turns any YAML-ish text into an inventory or an InventoryError of one-line messages', (t) => {
  fc.assert(fc.property(yamlish, (text) => check(outcome(text))), { numRuns: RUNS });
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (text) => check(outcome(text))), { numRuns: RUNS });
  t.pass();
});

/** Every key of the shipped shape, plus keys that are not there (for unknown-key messages). */
const keyPaths: string[][] = [
  ['cluster'], ['profile'], ['pki'], ['pki', 'dir'], ['pki', 'remote_dir'], ['pki', 'key'], ['pki', 'ca_bits'], ['pki', 'bits'],
  ['pki', 'ca_days'], ['pki', 'days'], ['pki', 'renew_before_days'], ['apiserver'], ['apiserver', 'cn'], ['apiserver', 'dns'],
  ['apiserver', 'ip'], ['apiserver', 'port'], ['cluster_dns'], ['cluster_domain'], ['ssh'], ['ssh', 'user'], ['ssh', 'port'],
  ['ssh', 'identity_file'], ['ssh', 'known_hosts'], ['ssh', 'sudo'], ['master'], ['minions'], ['minions', '0'], ['minions', '1'],
  ['master', 'name'], ['master', 'address'], ['master', 'port'], ['pki', 'x\nERROR: y'], ['\u2028evil'],
];
const nasty = fc.constantFrom('/', '/srv', '/srv/kube rnetes', '/srv/$(id)', '..', 'ca', 'server', 'sa', 'x/O=system:masters', 'a\nERROR: b',
  'fe80::1%eth0', '10.0.0.1', 'kubemaster', '', ' ', '\u0000', '~', '.', '-1', '0600');
const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.string({ unit: 'binary', maxLength: 40 }), nasty, fc.array(nasty, { maxLength: 3 }),
  fc.integer(), fc.double(), fc.boolean(), fc.constant(null));

test('the inventory parser turns any value of any key into an inventory or an InventoryError of one-line messages', (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom(...keyPaths), value), { minLength: 1, maxLength: 3 }), (edits) => {
    const doc = baseInventory() as Record<string, unknown>;
    for (const [p, v] of edits) {
      let at = doc as Record<string, unknown>;
      for (const k of p.slice(0, -1)) {
        if (!at[k] || typeof at[k] !== 'object') at[k] = {};
        at = at[k] as Record<string, unknown>;
      }
      at[p.at(-1)!] = v;
    }
    check(outcome(stringify(doc)));
  }), { numRuns: RUNS });
  t.pass();
});

// ---- remote quoting ------------------------------------------------------------------------------------------------------

/** The arguments `shell -c "printf '%s\0' WORDS"` receives, as strings. */
async function argsThrough(shell: string, words: string): Promise<string[]> {
  const r = await execa(shell, ['-c', `printf '%s\\0' ${words}`], { encoding: 'buffer', stdin: 'ignore' });
  const out = Buffer.from(r.stdout).toString('utf8');
  return out.split('\0').slice(0, -1);
}

/** Any well-formed string without NUL (an argv cannot hold NUL; lone surrogates are not text). */
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom("'", '"', '\\', '$', '(', ')', '`', '\n', ' ', '\t', '*', '?', '[', ']', '~', '#', '!', '&', ';', '|', '<', '>', '{', '}', '=', '%', '-', 'a', 'é', '😀'), maxLength: 30 }),
).filter((s) => !s.includes('\0') && !LONE_SURROGATE.test(s));
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

// /bin/sh (dash on Debian) is what `sh -c` runs here; bash is the usual login shell on the far side
const shells = [...new Set(['/bin/sh', '/bin/bash'].filter((s) => existsSync(s)).map((s) => realpathSync(s)))];

for (const shell of shells) {
  test(`any string quoted by lib/sh.ts reaches ${shell} as exactly one argument equal to itself`, async (t) => {
    await fc.assert(fc.asyncProperty(anyString, async (s) => {
      const args = await argsThrough(shell, quote(s));
      if (args.length !== 1 || args[0] !== s) throw new Error(`${JSON.stringify(s)} → ${quote(s)} → ${JSON.stringify(args)}`);
    }), { numRuns: RUNS });
    // and a whole argv: as many arguments, in order
    await fc.assert(fc.asyncProperty(fc.array(anyString, { minLength: 1, maxLength: 6 }), async (argv) => {
      const args = await argsThrough(shell, command(argv));
      if (JSON.stringify(args) !== JSON.stringify(argv)) throw new Error(`${JSON.stringify(argv)} → ${command(argv)} → ${JSON.stringify(args)}`);
    }), { numRuns: 50 });
    t.pass();
  });
}

test('a logged command line replays in sh to the same argv (log.cmd quotes through lib/sh.ts)', async (t) => {
  const lines: string[] = [];
  configureLog({ sink: (s) => lines.push(s), tty: false });
  await fc.assert(fc.asyncProperty(fc.array(anyString.filter((s) => !s.startsWith('/')), { minLength: 1, maxLength: 5 }), async (argv) => {
    lines.length = 0;
    log.cmd(argv);
    const logged = lines.join('\n');
    const replayed = await argsThrough('/bin/sh', logged.slice(logged.indexOf('$ ') + 2));
    if (JSON.stringify(replayed) !== JSON.stringify(argv)) throw new Error(`${JSON.stringify(argv)} logged as ${JSON.stringify(logged)}`);
  }), { numRuns: 100 });
  t.pass();
});

test('a quoted argv runs its first word as a program, never as a variable assignment', async (t) => {
  const r = await execa('/bin/sh', ['-c', command(['KUBETLS_X=1', 'true'])], { reject: false, stdin: 'ignore' });
  t.is(r.exitCode, 127, r.stderr); // "KUBETLS_X=1: not found": bare, the line would have run `true` and exited 0
  t.is(quote('--tls-cert-file=/srv/kubernetes/server.crt'), '--tls-cert-file=/srv/kubernetes/server.crt'); // flags stay readable
});
