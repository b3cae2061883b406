import test from 'ava';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InventoryError, loadInventory, RESERVED_NAMES, type Inventory } from '../lib/inventory.ts';
import { configureLog } from '../lib/log.ts';
import * as openssl from '../lib/openssl.ts';
import { applyPki, PkiError, planPki } from '../lib/pki.ts';
import { repoRoot, writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

const logged: string[] = [];
configureLog({ sink: (s) => logged.push(s), tty: false });

const fixtures = path.join(repoRoot, 'test/fixtures/inventory');

/** Each invalid fixture: the line and the message a user must see. */
const invalid: Record<string, [number, RegExp]> = {
  'invalid-unknown-key.yaml': [8, /pki\.bitz: expected a known key \(dir, remote_dir, key, ca_bits, bits, .*\), found unknown key 'bitz'/],
  'invalid-duplicate-name.yaml': [26, /minions\[1\]: expected a unique host name, found 'kubeminion2' again \(first at minions\[0\]\)/],
  'invalid-name-not-dns-label.yaml': [25, /minions\[0\]\.name: expected a DNS label .*, found 'Kube_Minion1'/],
  'invalid-bad-ip.yaml': [15, /apiserver\.ip\[1\]: expected an IPv4 or IPv6 address, found '10\.24\.0\.256'/],
  'invalid-bits-too-small.yaml': [8, /pki\.bits: expected an integer >= 2048, found 1024/],
  'invalid-days-zero.yaml': [10, /pki\.days: expected a number of days > 0, found 0/],
  'invalid-renew-before-days.yaml': [11, /pki\.renew_before_days: expected fewer days than pki\.days \(365\), found 365/],
  'invalid-missing-master.yaml': [1, /master: expected a host name, or \{ name, address, port, user \}, found nothing/],
  'invalid-profile.yaml': [2, /profile: expected legacy or modern, found 'modren'/],
  'invalid-port.yaml': [16, /apiserver\.port: expected a port from 1 to 65535, found 70000/],
  'invalid-yaml-syntax.yaml': [6, /YAML syntax: /],
  'invalid-address.yaml': [25, /minions\[0\]\.address: expected an IP address or a DNS name, found 'not an address'/],
  'invalid-sudo.yaml': [22, /ssh\.sudo: expected true or false, found 'maybe'/],
};

test('every invalid fixture has a case in this file, and every case a fixture', (t) => {
  t.deepEqual(readdirSync(fixtures).filter((f) => f.startsWith('invalid-')).sort(), Object.keys(invalid).sort());
});

for (const [file, [line, message]] of Object.entries(invalid)) {
  test(`${file} exits 2 naming file, line ${line} and the key, and creates nothing`, async (t) => {
    const rel = path.relative(repoRoot, path.join(fixtures, file));
    const r = await runScript('master.ts', ['--pki-only', '--inventory', rel]);
    t.is(r.code, 2, r.all);
    const lines = r.stderr.trim().split('\n').filter(Boolean);
    t.is(lines.length, 1, r.stderr);
    t.true(lines[0].startsWith(`ERROR: ${rel}:${line}: `), lines[0]);
    t.regex(lines[0], message);
    t.is(r.stdout, '');
    t.false(existsSync(path.join(fixtures, 'pki')));
  });
}

test('the issue\'s example inventory is valid: bare names, per-host address and port', (t) => {
  const inv = loadInventory(path.join(fixtures, 'valid-issue-example.yaml'));
  t.deepEqual(inv.minions.map((m) => [m.name, m.address, m.port, m.user]), [['kubeminion1', 'kubeminion1', 22, 'root'], ['kubeminion2', '10.0.0.12', 2222, 'root']]);
  t.like(inv.master, { name: 'kubemaster', role: 'master', address: 'kubemaster', port: 22, user: 'root' });
  // what cluster.yaml wrote itself (and so wins over ~/.ssh/config): the example sets ssh.user and ssh.port for all
  t.deepEqual(inv.minions.map((m) => m.explicit), [{ address: false, port: true, user: true }, { address: true, port: true, user: true }]);
  t.is(inv.pki.dir, path.join(fixtures, 'pki'));
});

test('a minimal inventory gets the documented defaults', (t) => {
  const inv = loadInventory(path.join(fixtures, 'valid-minimal.yaml'));
  t.like(inv.pki, { key: 'rsa', caBits: 4096, bits: 2048, caDays: 3650, days: 365, renewBeforeDays: 30, remoteDir: '/srv/kubernetes' });
  t.is(inv.apiserver.port, 6443);
  t.deepEqual(inv.minions, []);
  t.true(inv.ssh.identityFile.endsWith('/.ssh/id_ed25519'));
});

test('the shipped cluster.yaml is the recipe\'s lab', (t) => {
  const inv = loadInventory(path.join(repoRoot, 'cluster.yaml'));
  t.is(inv.cluster, 'debian-cluster');
  t.is(inv.profile, 'legacy');
  t.deepEqual(inv.minions.map((m) => m.name), ['kubeminion1', 'kubeminion2', 'kubeminion3', 'kubeminion4']);
  t.deepEqual(inv.apiserver, { cn: 'kubernetes.default.svc', dns: ['kubernetes.default.svc', 'kubemaster'], ip: ['10.24.0.1'], port: 6443 });
  t.is(inv.clusterDns, '10.24.0.10');
  t.is(inv.clusterDomain, 'kubic.local');
  t.is(inv.pki.remoteDir, '/srv/kubernetes');
});

test('a missing inventory file is one clear error', (t) => {
  const e = t.throws(() => loadInventory('/nonexistent/cluster.yaml'), { instanceOf: InventoryError });
  t.regex(e!.message, /^ERROR: \/nonexistent\/cluster\.yaml: cannot read the inventory: ENOENT$/);
});

// ---- item 3: reserved names, refused at validation and impossible by construction ----------------------------------

for (const role of ['master', 'minion'] as const) {
  test(`a ${role} named like a file of the PKI (ca, server, sa, tokens, admin, openssl, kubeadm's names) is refused`, (t) => {
    for (const name of RESERVED_NAMES) {
      const file = writeInventory(role === 'master' ? { master: name } : { minions: ['kubeminion1', name] });
      const e = t.throws(() => loadInventory(file), { instanceOf: InventoryError }, name);
      const key = role === 'master' ? 'master.name' : 'minions[1].name';
      t.regex(e!.message, new RegExp(`^ERROR: .+:\\d+: ${key.replace(/[.[\]]/g, '\\$&')}: expected a name that is not reserved for a file of the PKI \\(.*\\), found '${name}'$`), name);
    }
  });
}

test('a plan whose files collide is refused even when validation was bypassed, and nothing is written', (t) => {
  const dir = path.dirname(writeInventory());
  const valid = loadInventory(path.join(dir, 'cluster.yaml'));
  const host = (name: string) => ({ name, role: 'minion' as const, address: `${name}.example`, port: 22, user: 'root', explicit: { address: true, port: false, user: false } });
  const cases: [Partial<Inventory>, RegExp][] = [
    [{ minions: [host('ca')] }, /minion ca would write ca\.key, which belongs to ca ca/],
    [{ minions: [host('server')] }, /minion server would write server\.key, which belongs to server server/],
    [{ minions: [host('kubeminion1'), host('kubeminion1')] }, /minion kubeminion1 would write kubeminion1\.key, which belongs to minion kubeminion1/],
    [{ profile: 'modern', minions: [host('sa')] }, /sa sa would write sa\.key, which belongs to minion sa/],
  ];
  for (const [patch, message] of cases) {
    const inv: Inventory = { ...valid, ...patch };
    const e = t.throws(() => planPki(inv), { instanceOf: PkiError });
    t.regex(e!.message, message);
  }
  t.false(existsSync(valid.pki.dir));
  t.notThrows(() => planPki(valid)); // the check itself does not refuse a sound plan
});

// ---- item 7: subjects ------------------------------------------------------------------------------------------------

/** A certificate's subject as `openssl x509 -noout -subject -nameopt RFC2253` prints it, split into `TYPE=value` parts. */
async function subjectParts(crt: string): Promise<string[]> {
  const r = await execa('openssl', ['x509', '-in', crt, '-noout', '-subject', '-nameopt', 'RFC2253']);
  const parts = [''];
  const dn = r.stdout.replace(/^subject=/, '');
  for (let i = 0; i < dn.length; i++) {
    if (dn[i] === '\\') parts[parts.length - 1] += dn[++i]; // RFC 2253 escape: the next character is data
    else if (dn[i] === ',' || dn[i] === '+') parts.push(''); // a new attribute (',' a new RDN, '+' a multi-valued one)
    else parts[parts.length - 1] += dn[i];
  }
  return parts;
}

test('a CN that tries to add subject fields yields exactly one CN and no O (openssl module called directly)', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kubetls-subj-'));
  const cnf = path.join(dir, 'openssl.cnf');
  writeFileSync(cnf, openssl.opensslConfig(loadInventory(writeInventory())));
  const key = path.join(dir, 'k.key');
  await openssl.genkey(key, 'ecdsa-p256', 2048);
  const evil = ['kube/O=system:masters', 'kube+O=system:masters', 'kube/CN=admin/O=system:masters', 'kube\\/O=system:masters', 'a=b\\+O=x,O=y'];
  for (const [i, cn] of evil.entries()) {
    const crt = path.join(dir, `${i}.crt`);
    await openssl.reqX509({ key, subj: openssl.subj(cn), days: 1, out: crt, config: cnf });
    t.deepEqual(await subjectParts(crt), [`CN=${cn}`], cn); // one CN, and it is the whole value byte for byte
  }
  // a subject with an O keeps it, and the O cannot add a field either (RFC 2253 prints the last RDN first)
  const crt = path.join(dir, 'node.crt');
  await openssl.reqX509({ key, subj: openssl.subj('system:node:n1', 'system:nodes/O=system:masters'), days: 1, out: crt, config: cnf });
  t.deepEqual(await subjectParts(crt), ['CN=system:node:n1', 'O=system:nodes/O=system:masters']);
});

test('a validated CN is not escaped into something else: the server certificate carries it as written', async (t) => {
  const file = writeInventory({ apiserver: { cn: 'system:kube-apiserver @lab' } });
  const inv = loadInventory(file);
  await applyPki(inv, planPki(inv));
  const r = await execa('openssl', ['x509', '-in', path.join(inv.pki.dir, 'server.crt'), '-noout', '-subject', '-nameopt', 'RFC2253']);
  t.is(r.stdout, 'subject=CN=system:kube-apiserver @lab');
  t.true(planPki(inv).items.every((i) => i.action === 'keep'));
});

/** sha256 and mtime of every file below `dir`, by relative path. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = `${createHash('sha256').update(readFileSync(p)).digest('hex')} ${statSync(p).mtimeMs}`;
    }
  };
  walk(dir);
  return out;
}

const valid = readdirSync(fixtures).filter((f) => f.startsWith('valid-')).sort();
test('there are valid fixtures for the rerun test', (t) => t.true(valid.length >= 4, valid.join(', ')));
for (const file of valid) {
  test(`a second master.ts --pki-only on ${file} does nothing and changes no file`, async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kubetls-rerun-'));
    const inv = path.join(dir, 'cluster.yaml');
    copyFileSync(path.join(fixtures, file), inv);
    const first = await runScript('master.ts', ['--pki-only', '--inventory', inv]);
    t.is(first.code, 0, first.all);
    const before = snapshot(dir);
    t.true(Object.keys(before).some((f) => f.endsWith('server.crt')), Object.keys(before).join(' '));
    const second = await runScript('master.ts', ['--pki-only', '--inventory', inv]);
    t.is(second.code, 0, second.all);
    t.regex(second.stdout, /^PKI: nothing to do$/m);
    t.notRegex(second.all, /\$ (openssl|mv|chmod|mkdir) /);
    t.deepEqual(snapshot(dir), before);
  });
}

// ---- item 6: the local PKI folder ------------------------------------------------------------------------------------

test('an existing pki.dir holding foreign files keeps its mode; one holding only PKI files is made 0700', async (t) => {
  const foreign = loadInventory(writeInventory());
  mkdirSync(foreign.pki.dir, { mode: 0o755 });
  writeFileSync(path.join(foreign.pki.dir, 'notes.txt'), 'mine\n');
  await applyPki(foreign, planPki(foreign));
  t.is(statSync(foreign.pki.dir).mode & 0o777, 0o755);
  t.true(existsSync(path.join(foreign.pki.dir, 'ca.key')));
  t.true(logged.some((l) => l.includes('holds files that are not part of the PKI (notes.txt)')));

  const ours = loadInventory(writeInventory());
  mkdirSync(ours.pki.dir, { mode: 0o755 });
  writeFileSync(path.join(ours.pki.dir, 'kubeminion1.crt'), ''); // a leftover of ours: reissued, and the folder is ours
  await applyPki(ours, planPki(ours));
  t.is(statSync(ours.pki.dir).mode & 0o777, 0o700);
});

// ---- item 15: flags are checked before anything happens --------------------------------------------------------------

test('a positional argument is refused with exit 2 by every script (never a silent ./cluster.yaml)', async (t) => {
  for (const script of ['master.ts', 'minions.ts', 'verify.ts', 'status.ts', 'renew.ts', 'demo.ts']) {
    const r = await runScript(script, ['other.yaml']);
    t.is(r.code, 2, `${script}: ${r.all}`);
    t.regex(r.stderr, /^ERROR: Unexpected argument 'other\.yaml'.*--inventory PATH/, script);
    t.is(r.stdout, '', script);
  }
});

test('--only with an empty list or an empty name is exit 2 on every script that takes it', async (t) => {
  for (const [script, only] of [['master.ts', ','], ['minions.ts', ''], ['verify.ts', 'kubeminion1,'], ['status.ts', ' , ']]) {
    const r = await runScript(script, ['--only', only, '--inventory', path.relative(repoRoot, path.join(fixtures, 'valid-issue-example.yaml'))]);
    t.is(r.code, 2, `${script}: ${r.all}`);
    t.regex(r.stderr, /^ERROR: --only expects NAME\[,NAME\] \(no empty name\), found '.*'$/m, script);
  }
});

test('--only naming an unknown host is exit 2 before the PKI is built or the lock taken', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kubetls-only-'));
  const inv = path.join(dir, 'cluster.yaml');
  copyFileSync(path.join(fixtures, 'valid-issue-example.yaml'), inv);
  const r = await runScript('master.ts', ['--only', 'kubeminion9', '--inventory', inv]);
  t.is(r.code, 2, r.all);
  t.regex(r.stderr, /--only names hosts not in the inventory: kubeminion9/);
  t.deepEqual(readdirSync(dir), ['cluster.yaml']);
});
