import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { opensslConfig } from '../config/openssl.ts';
import { allHosts, etcdHosts, type Inventory } from '../lib/inventory.ts';
import { InventoryError } from '../lib/inventory/errors.ts';
import { loadInventory, parseInventory } from '../lib/inventory/load.ts';
import { RESERVED_NAMES, systemDirProblem } from '../lib/inventory/schema.ts';
import { configureLog } from '../lib/log.ts';
import { applyPki } from '../lib/pki/apply.ts';
import * as openssl from '../lib/pki/openssl.ts';
import { planPki } from '../lib/pki/plan.ts';
import { PkiError } from '../lib/pki/read.ts';
import { baseInventory, repoRoot, tempDir, writeInventory } from './helpers/inventory.ts';
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
  'invalid-missing-master.yaml': [1, /master: expected a value \(master: NAME, or masters: \[NAME, …\] for more than one\), found nothing/],
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
  const dir = tempDir('kubetls-subj-');
  const cnf = path.join(dir, 'openssl.cnf');
  writeFileSync(cnf, opensslConfig(loadInventory(writeInventory())));
  const key = path.join(dir, 'k.key');
  await openssl.genkey(key, 'ecdsa-p256', 2048);
  const evil = ['kube/O=system:masters', 'kube+O=system:masters', 'kube/CN=admin/O=system:masters', 'kube\\/O=system:masters', 'a=b\\+O=x,O=y'];
  for (const [i, cn] of evil.entries()) {
    const crt = path.join(dir, `${i}.crt`);
    await openssl.selfSignCa({ key, subj: openssl.subj(cn), days: 1, out: crt, config: cnf });
    t.deepEqual(await subjectParts(crt), [`CN=${cn}`], cn); // one CN, and it is the whole value byte for byte
  }
  // a subject with an O keeps it, and the O cannot add a field either (RFC 2253 prints the last RDN first)
  const crt = path.join(dir, 'node.crt');
  await openssl.selfSignCa({ key, subj: openssl.subj('system:node:n1', 'system:nodes/O=system:masters'), days: 1, out: crt, config: cnf });
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
    const dir = tempDir('kubetls-rerun-');
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
  const dir = tempDir('kubetls-only-');
  const inv = path.join(dir, 'cluster.yaml');
  copyFileSync(path.join(fixtures, 'valid-issue-example.yaml'), inv);
  const r = await runScript('master.ts', ['--only', 'kubeminion9', '--inventory', inv]);
  t.is(r.code, 2, r.all);
  t.regex(r.stderr, /--only names hosts not in the inventory: kubeminion9/);
  t.deepEqual(readdirSync(dir), ['cluster.yaml']);
});

// ---- every refusal fed its bad case, in-process (fast enough for `npm run mutate`) ---------------------------
// Titles start with "rule:" so that test/MUTATION.md's Stryker command can select them.

/** The one problem line of an inventory (the base one with `patch`), or undefined when it loads. */
function problem(patch: Record<string, unknown>): string | undefined {
  const file = writeInventory(patch);
  try { loadInventory(file); return undefined; } catch (e) {
    if (!(e instanceof InventoryError)) throw e;
    return e.message.replaceAll(`${file}:`, 'FILE:');
  }
}

/** Every system folder the header of lib/inventory.ts lists: never pki.remote_dir, never pki.dir. */
const SYSTEM = [
  '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/lost+found', '/media', '/mnt', '/opt', '/proc',
  '/root', '/run', '/sbin', '/snap', '/srv', '/sys', '/tmp', '/usr', '/var',
  ...['bin', 'games', 'include', 'lib', 'lib32', 'lib64', 'libexec', 'local', 'sbin', 'share', 'src'].map((d) => `/usr/${d}`),
  ...['bin', 'etc', 'games', 'include', 'lib', 'libexec', 'sbin', 'share', 'src'].map((d) => `/usr/local/${d}`),
  ...['backups', 'cache', 'lib', 'local', 'lock', 'log', 'mail', 'opt', 'run', 'spool', 'tmp', 'www'].map((d) => `/var/${d}`),
  '/var/lib/kubelet', '/var/lib/kubetls',
  ...['cron.d', 'default', 'kubernetes', 'pki', 'ssh', 'ssl', 'ssl/certs', 'ssl/private', 'sudoers.d', 'systemd'].map((d) => `/etc/${d}`),
];

test('rule: every system folder is refused as pki.remote_dir and as pki.dir, and a folder below one is not', (t) => {
  for (const d of SYSTEM) {
    t.is(systemDirProblem(d, true), `a folder of its own, not the system folder ${d}`, d);
    t.is(systemDirProblem(d, false), `a folder of its own, not the system folder ${d}`, d);
  }
  for (const d of ['/srv/kubernetes', '/etc/kubernetes/pki', '/opt/kubetls/pki', '/var/lib/kubetls-pki', '/usr/local/kubetls']) {
    t.is(systemDirProblem(d, true), undefined, d);
  }
  t.regex(problem({ pki: { remote_dir: '/var/lib' } }) ?? '', /^ERROR: FILE:\d+: pki\.remote_dir: expected a folder of its own, not the system folder \/var\/lib, found '\/var\/lib'$/);
  t.regex(problem({ pki: { dir: '/usr/share' } }) ?? '', /pki\.dir: expected a folder of its own, not the system folder \/usr\/share, found '\/usr\/share'$/);
});

test('rule: a remote folder under a virtual, boot-emptied or world-writable folder is refused; a local one there is allowed', (t) => {
  for (const p of ['/proc/', '/sys/', '/dev/', '/run/', '/tmp/', '/var/tmp/', '/var/run/', '/var/lock/']) {
    t.is(systemDirProblem(`${p}k8s`, true), `a folder of its own, not one under ${p.slice(0, -1)} (virtual, emptied at boot or writable by all)`, p);
    t.is(systemDirProblem(`${p}k8s`, false), undefined, p);
  }
  t.is(systemDirProblem('/procfs/k8s', true), undefined, 'a prefix of the name is not the folder');
  t.is(systemDirProblem('/home/ji', true), 'a folder of its own, not a home folder');
  t.is(systemDirProblem('/home/ji', false), 'a folder of its own, not a home folder');
  t.is(systemDirProblem('/home/ji/pki', true), undefined);
  t.is(systemDirProblem('/srv/home/ji', true), undefined);
});

test('rule: pki.remote_dir must be absolute, plain, without . or .. parts; a trailing slash is dropped', (t) => {
  const cases: [string, string][] = [
    ['//', 'a folder of its own, not /'],
    ['///', 'a folder of its own, not /'],
    ['srv/k', 'an absolute path'],
    ['/srv//k', 'an absolute path of letters, digits and . _ - between single slashes (no space or shell character)'],
    ['/srv/k$x', 'an absolute path of letters, digits and . _ - between single slashes (no space or shell character)'],
    ['/srv/./k', 'an absolute path without . or .. parts'],
    ['/srv/..', 'an absolute path without . or .. parts'],
    ['/etc/', 'a folder of its own, not the system folder /etc'],
  ];
  for (const [dir, why] of cases) t.regex(problem({ pki: { remote_dir: dir } }) ?? '', new RegExp(`pki\\.remote_dir: expected ${why.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, found`), dir);
  for (const ok of ['/srv/k8s.d/pki_1-a', '/srv/...x', '/srv/kubernetes/']) t.is(problem({ pki: { remote_dir: ok } }), undefined, ok);
  t.is(loadInventory(writeInventory({ pki: { remote_dir: '/srv/kubernetes/' } })).pki.remoteDir, '/srv/kubernetes');
});

test('rule: pki.dir is never /, the home folder or the inventory\'s own folder; ~ and ~/ are the home folder', (t) => {
  t.regex(problem({ pki: { dir: '/' } }) ?? '', /pki\.dir: expected a folder of its own, not \/, found '\/'$/);
  t.regex(problem({ pki: { dir: '~' } }) ?? '', /pki\.dir: expected a folder of its own, not the home folder, found '~'$/);
  t.regex(problem({ pki: { dir: homedir() } }) ?? '', /pki\.dir: expected a folder of its own, not the home folder/);
  t.regex(problem({ pki: { dir: '.' } }) ?? '', /pki\.dir: expected a folder of its own, not the folder of the inventory, found '\.'$/);
  t.regex(problem({ pki: { dir: 'a/..' } }) ?? '', /not the folder of the inventory/);
  t.is(loadInventory(writeInventory({ pki: { dir: '~/kpki' } })).pki.dir, path.join(homedir(), 'kpki'));
  const file = writeInventory({ pki: { dir: 'sub/pki' }, ssh: { identity_file: '~/.ssh/k', known_hosts: 'kh', config_file: 'none' } });
  const inv = loadInventory(file);
  t.is(inv.pki.dir, path.join(path.dirname(file), 'sub/pki'));
  t.is(inv.ssh.identityFile, path.join(homedir(), '.ssh/k'));
  t.is(inv.ssh.knownHosts, path.join(path.dirname(file), 'kh'));
  t.is(inv.ssh.configFile, undefined, 'config_file: none reads no ssh_config');
  t.deepEqual(inv.ssh.explicit, { identityFile: true, knownHosts: true });
  t.deepEqual(loadInventory(writeInventory()).ssh.explicit, { identityFile: false, knownHosts: false });
  t.is(loadInventory(writeInventory()).ssh.configFile, path.join(homedir(), '.ssh/config'));
});

test('rule: the limits of names, CNs, user names, ports, days and bits are where the messages say', (t) => {
  const refused = (patch: Record<string, unknown>, re: RegExp) => t.regex(problem(patch) ?? 'accepted', re, JSON.stringify(patch));
  const accepted = (patch: Record<string, unknown>) => t.is(problem(patch), undefined, JSON.stringify(patch));
  accepted({ minions: [`k${'a'.repeat(62)}`] }); // a DNS label of 63
  accepted({ minions: ['k'], apiserver: { dns: ['k', 'a.b'] } }); // one-character labels and names
  accepted({ pki: { key: 'ecdsa-p256' } });
  accepted({ pki: { key: 'ecdsa-p384' } });
  refused({ pki: { remote_dir: '' } }, /pki\.remote_dir: expected an absolute path, found ''$/);
  refused({ master: undefined }, /master: expected a value \(master: NAME, or masters: \[NAME, …\] for more than one\), found nothing$/);
  refused({ apiserver: { dns: 'k' } }, /apiserver\.dns: expected a list of DNS names, found 'k'$/);
  t.is(loadInventory(writeInventory()).ssh.sudo, false, 'root commands go through sudo only when asked');
  refused({ minions: [`k${'a'.repeat(63)}`] }, /minions\[0\]\.name: expected a DNS label \(a-z, 0-9, -; at most 63\), found 'ka+\.\.\.$/);
  refused({ minions: ['-k'] }, /expected a DNS label/);
  refused({ minions: ['k-'] }, /expected a DNS label/);
  accepted({ apiserver: { cn: `a${' b'.repeat(31)}c` } }); // 64 characters
  refused({ apiserver: { cn: `a${'b'.repeat(64)}` } }, /apiserver\.cn: expected a common name/);
  refused({ apiserver: { cn: 'a ' } }, /apiserver\.cn: expected a common name/);
  accepted({ apiserver: { cn: 'x' } });
  accepted({ apiserver: { cn: 'system:kube-apiserver_1.a@b' } });
  accepted({ apiserver: { dns: [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`] } }); // 253
  refused({ apiserver: { dns: [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`] } }, /apiserver\.dns\[0\]: expected a DNS name \(lower case, dots between labels\)/);
  refused({ apiserver: { dns: ['a..b'] } }, /expected a DNS name/);
  accepted({ ssh: { user: 'svc_k8s-1$' } });
  refused({ ssh: { user: '1ji' } }, /ssh\.user: expected a user name, found '1ji'/);
  refused({ ssh: { user: 'ji$x' } }, /ssh\.user: expected a user name/);
  refused({ ssh: { identity_file: '' } }, /ssh\.identity_file: expected a file path, found ''/);
  refused({ ssh: { known_hosts: 'a\tb' } }, /ssh\.known_hosts: expected a file path without control characters, found 'a\\tb'/);
  refused({ ssh: { port: 0 } }, /ssh\.port: expected a port from 1 to 65535, found 0/);
  accepted({ ssh: { port: 1 } });
  refused({ pki: { ca_bits: 16385 } }, /pki\.ca_bits: expected an integer >= 2048, found 16385/);
  accepted({ pki: { ca_bits: 16384 } });
  refused({ pki: { bits: 16385 } }, /pki\.bits: expected an integer >= 2048, found 16385/);
  refused({ pki: { days: 100001, ca_days: 100001 } }, /pki\.ca_days: expected a number of days > 0, found 100001/);
  accepted({ pki: { days: 100000, ca_days: 100000, renew_before_days: 99999 } });
  refused({ pki: { days: 100, renew_before_days: 100 } }, /pki\.renew_before_days: expected fewer days than pki\.days \(100\), found 100$/);
  refused({ pki: { days: 1.5 } }, /pki\.days: expected a number of days > 0, found 1\.5/);
  refused({ pki: { days: 'ten' } }, /pki\.days: expected a number of days > 0, found 'ten'/);
  refused({ cluster: '-x' }, /cluster: expected a cluster name \(letters, digits, - _ \.\), found '-x'/);
  accepted({ cluster: 'A1-b_c.d' });
  refused({ apiserver: { ip: ['fe80::1%eth0'] } }, /apiserver\.ip\[0\]: expected an IPv4 or IPv6 address without a zone id \(%\.\.\.\), found 'fe80::1%eth0'/);
  refused({ apiserver: { ip: '10.0.0.1' } }, /apiserver\.ip: expected a list of IP addresses, found '10\.0\.0\.1'/);
  refused({ ssh: { sudo: 'yes' } }, /ssh\.sudo: expected true or false, found 'yes'/);
  refused({ ssh: 'root' }, /ssh: expected a mapping of settings, found 'root'/);
  refused({ minions: 'kubeminion1' }, /minions: expected a list of hosts, found 'kubeminion1'/);
  refused({ minions: [{ name: 'k1', port: 22, extra: 1 }] }, /minions\[0\]\.extra: expected a known key \(name, address, port, user, node_ip\), found unknown key 'extra'/);
  refused({ minions: [7] }, /minions\[0\]: expected a host name, or \{ name, address, port, user \}, found 7/);
  refused({ minions: [{ address: 'x' }] }, /minions\[0\]\.name: expected a value \(the key is required\), found \{"address":"x"\}$/);
  refused({ minions: [{ name: 5 }] }, /minions\[0\]\.name: expected a DNS label, found 5/);
  refused({ apiserver: { cn: 5 } }, /apiserver\.cn: expected a common name, found 5/);
  refused({ cluster_domain: 7 }, /cluster_domain: expected a DNS name, found 7/);
  refused({ minions: [{ name: 'k1', address: 7 }] }, /minions\[0\]\.address: expected an IP address or a DNS name, found 7/);
  refused({ ssh: { user: 7 } }, /ssh\.user: expected a user name, found 7/);
  refused({ pki: { dir: 7 } }, /pki\.dir: expected a file path, found 7/);
  refused({ pki: { remote_dir: 7 } }, /pki\.remote_dir: expected an absolute path, found 7/);
  refused({ etcd: 'x', profile: 'modern' }, /etcd: expected a mapping of settings, found 'x'/);
  refused({ etcd: { members: 'x' }, profile: 'modern' }, /etcd\.members: expected a list of hosts, found 'x'/);
  refused({ apiserver: 'x' }, /apiserver: expected a mapping of settings, found 'x'/);
  refused({ cluster: 7 }, /cluster: expected a cluster name, found 7/);
  refused({ cluster_dns: 7 }, /cluster_dns: expected an IPv4 or IPv6 address, found 7/);
});

test('rule: hosts: explicit address, port and user are told apart from defaults; one SSH endpoint per host, whatever its spelling', (t) => {
  const inv = loadInventory(writeInventory({ ssh: { port: 2200 }, minions: ['k1', { name: 'k2', address: '10.0.0.2', user: 'ops' }] }));
  t.deepEqual(inv.minions.map((m) => [m.address, m.port, m.user, m.explicit]),
    [['k1', 2200, 'root', { address: false, port: true, user: false }], ['10.0.0.2', 2200, 'ops', { address: true, port: true, user: true }]]);
  t.deepEqual(loadInventory(writeInventory({ minions: ['k1'] })).minions[0].explicit, { address: false, port: false, user: false });
  t.deepEqual(loadInventory(writeInventory({ minions: [{ name: 'k1', port: 2222 }] })).minions[0].explicit, { address: false, port: true, user: false });
  t.deepEqual(loadInventory(writeInventory({ ssh: { user: 'ops' }, minions: ['k1'] })).minions[0].explicit, { address: false, port: false, user: true });
  t.regex(problem({ minions: [{ name: 'k1', address: 'h.example' }, { name: 'k2', address: 'h.example' }] }) ?? '', /minions\[1\]: expected a host address and port of its own, found h\.example port 22 again \(first at minions\[0\]\)/);
  t.regex(problem({ minions: [{ name: 'k1', address: 'fe80::1%eth0' }, { name: 'k2', address: 'FE80::1%ETH0' }] }) ?? '', /minions\[1\]: expected a host address and port of its own, found FE80::1%ETH0 port 22 again/);
  t.regex(problem({ minions: [{ name: 'k1', address: 'kubemaster' }] }) ?? '', /minions\[0\]: expected a host address and port of its own, found kubemaster port 22 again \(first at master\)/);
  t.regex(problem({ minions: [{ name: 'k1', address: 'fd00:0::1' }, { name: 'k2', address: 'FD00::1' }] }) ?? '', /minions\[1\]: expected a host address and port of its own, found FD00::1 port 22 again/);
  t.is(problem({ minions: [{ name: 'k1', address: 'h.example' }, { name: 'k2', address: 'h.example', port: 2222 }] }), undefined, 'another port is another endpoint');
  t.is(problem({ minions: [{ name: 'k1', address: 'fd00::1' }, { name: 'k2', address: 'fd00::2' }] }), undefined);
  t.is(problem({ minions: [{ name: 'k1', address: 'fe80::1%eth0' }, { name: 'k2', address: 'fe80::2%eth0' }] }), undefined, 'two addresses with a zone id are two hosts');
  t.regex(problem({ apiserver: { dns: [], ip: [] } }) ?? '', /apiserver: expected at least one subjectAltName in apiserver\.dns or apiserver\.ip, found none$/);
  t.is(problem({ apiserver: { dns: [], ip: ['10.0.0.1'] } }), undefined);
  t.is(problem({ apiserver: { dns: ['k'], ip: [] } }), undefined);
});

test('rule: the modern profile: a minion name of 52 characters is fine, 53 is not; etcd members are the master or hosts of their own', (t) => {
  t.is(problem({ profile: 'modern', minions: [`k${'a'.repeat(51)}`] }), undefined);
  t.regex(problem({ profile: 'modern', minions: [`k${'a'.repeat(52)}`] }) ?? '', /minions\[0\]\.name: expected at most 52 characters \(the modern profile's CN system:node:<name> has at most 64\), found 53$/);
  t.is(problem({ profile: 'legacy', minions: [`k${'a'.repeat(52)}`] }), undefined, 'the legacy CN is the name itself');
  t.regex(problem({ profile: 'modern', master: { name: 'km', address: '10.0.0.1' }, etcd: { members: ['e1', 'e2', { name: 'km', address: '10.0.0.1' }] } }) ?? 'accepted', /^accepted$/);
  const inv = loadInventory(writeInventory({ profile: 'modern', master: { name: 'km', address: '10.0.0.1' }, etcd: { members: [{ name: 'e1', address: '10.0.0.5' }, 'km', { name: 'e3', address: '10.0.0.7' }] } }));
  t.deepEqual(inv.etcd.members.map((m) => [m.name, m.role]), [['e1', 'etcd'], ['km', 'master'], ['e3', 'etcd']]);
  t.is(inv.etcd.members[1], inv.master);
  const alone = loadInventory(writeInventory({ profile: 'modern' }));
  t.deepEqual(alone.etcd.members, [alone.master], 'without etcd.members the master is the one member');
  t.is(problem({ profile: 'modern', master: { name: 'km', address: '10.0.0.1' }, etcd: { members: [{ name: 'km', address: '10.0.0.1', port: 22, user: 'root' }] } }), undefined,
    'the master\'s own address, port and user, written out, are fine');
  t.is(problem({ profile: 'modern', master: { name: `k${'a'.repeat(52)}`, address: 'km' } }), undefined, 'the 52-character limit is for minions only');
  for (const moved of [{ address: '10.0.0.9' }, { port: 2222 }, { user: 'ops' }]) {
    t.regex(problem({ profile: 'modern', master: { name: 'km', address: '10.0.0.1' }, etcd: { members: [{ name: 'km', ...moved }] } }) ?? '',
      /etcd\.members\[0\]: expected the master's own address, port and user for the member named like the master, found /, JSON.stringify(moved));
  }
  t.regex(problem({ profile: 'modern', etcd: { members: [{ name: 'e1', address: '10.0.0.5' }, 'ca', { name: 'e3', address: '10.0.0.7' }] } }) ?? '', /etcd\.members\[1\]\.name: expected a name that is not reserved/);
  t.regex(problem({ profile: 'modern', etcd: { members: ['kubeminion1'] } }) ?? '', /etcd\.members\[0\]\.name: expected the master or a host of its own \(etcd keys do not go to minions\), found the minion 'kubeminion1'$/);
  t.regex(problem({ profile: 'modern', etcd: { members: [{ name: 'e1', address: '10.0.0.5' }, { name: 'e1', address: '10.0.0.6' }, { name: 'e3', address: '10.0.0.7' }] } }) ?? '', /etcd\.members\[1\]: expected a unique member name, found 'e1' again/);
  t.regex(problem({ etcd: { members: ['kubemaster'] } }) ?? '', /^ERROR: FILE:\d+: etcd: expected no etcd settings in the legacy profile/);
});

test('rule: problems come one per line, sorted by line, with control characters and long values shown escaped and cut', (t) => {
  const two = problem({ pki: { days: 0 }, cluster: '-x' }) ?? '';
  const lines = two.split('\n');
  t.is(lines.length, 2);
  const at = lines.map((l) => Number(/^ERROR: FILE:(\d+):/.exec(l)?.[1]));
  t.true(at[0] < at[1], two);
  // problems found after the schema (here a minion given twice, then no SAN) are sorted by line too
  const late = (problem({ minions: ['kubeminion1', 'kubeminion1'], apiserver: { dns: [], ip: [] } }) ?? '').split('\n');
  t.is(late.length, 3);
  t.regex(late[0], /apiserver: expected at least one subjectAltName/);
  t.regex(late[1], /minions\[1\]: expected a unique host name/);
  t.regex(late[2], /minions\[1\]: expected a host address and port of its own/);
  t.deepEqual(new InventoryError(['a\rb\tc\nd\u0001e\u2028f\u202eg\u0085h']).problems, ['a\\rb\\tc\\nd\\u{1}e\\u{2028}f\\u{202e}g\\u{85}h']);
  t.regex(problem({ cluster: `-${'x'.repeat(80)}` }) ?? '', new RegExp(`found '-${'x'.repeat(55)}\\.\\.\\.$`));
  t.regex(problem({ cluster: `-${'x'.repeat(57)}` }) ?? '', new RegExp(`found '-${'x'.repeat(57)}'$`), '60 characters are shown whole');
  t.regex(problem({ cluster: null }) ?? '', /cluster: expected a cluster name, found nothing$/);
  t.regex(problem({ pki: { bits: [1, 2] } }) ?? '', /pki\.bits: expected an integer >= 2048, found \[1,2\]$/);
});

test('rule: a value is shown as the data it holds: aliases resolved, lists and maps as JSON, a list that holds itself as "a value that cannot be shown"', (t) => {
  const base = stringify(baseInventory());
  const bits = (value: string, anchor = '') => {
    const text = base.replace('cluster: debian-cluster', `cluster: ${anchor}debian-cluster`).replace(/^ {2}bits: 2048$/m, `  bits: ${value}`);
    t.not(text, base, value);
    return t.throws(() => parseInventory(text, '/tmp/c.yaml', 'c.yaml'), { instanceOf: InventoryError })!.message;
  };
  const at = 'ERROR: c.yaml:8: pki.bits: expected an integer >= 2048, found';
  t.is(bits('[ *c ]', '&c '), `${at} ["debian-cluster"]`, 'the alias is shown as what it stands for, not as {"source":"c"}');
  t.is(bits('{ n: 1, m: [x] }'), `${at} {"n":1,"m":["x"]}`);
  t.is(bits('&b [ *b ]'), `${at} a value that cannot be shown`, 'a cycle: the key and the line are still named');
  t.is(bits('2023-01-01'), `${at} '2023-01-01'`);
  t.is(bits('~'), `${at} nothing`);
});

test('rule: allHosts is the master, then the etcd members of their own, then the minions; etcdHosts leaves the master out', (t) => {
  const inv = loadInventory(writeInventory({ profile: 'modern', master: { name: 'km', address: '10.0.0.1' }, minions: ['k1', 'k2'],
    etcd: { members: [{ name: 'e1', address: '10.0.0.5' }, 'km', { name: 'e2', address: '10.0.0.6' }] } }));
  t.deepEqual(allHosts(inv).map((h) => h.name), ['km', 'e1', 'e2', 'k1', 'k2']);
  t.deepEqual(etcdHosts(inv).map((h) => h.name), ['e1', 'e2']);
  t.is(allHosts(inv)[0], inv.master);
  const legacy = loadInventory(writeInventory({ minions: ['k1'] }));
  t.deepEqual(allHosts(legacy).map((h) => h.name), ['kubemaster', 'k1']);
  t.deepEqual(etcdHosts(legacy), []);
});

test('rule: a YAML error names its line; an alias bomb is refused at the first alias', (t) => {
  const dir = tempDir('kubetls-yaml-');
  const f = path.join(dir, 'cluster.yaml');
  writeFileSync(f, 'cluster: x\nprofile: legacy\npki: [\n');
  t.regex(t.throws(() => loadInventory(f), { instanceOf: InventoryError })!.message, /^ERROR: .*cluster\.yaml:\d+: YAML syntax: \S/);
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}]`)].join('\n');
  writeFileSync(f, `${bomb}\n`);
  t.is(t.throws(() => loadInventory(f), { instanceOf: InventoryError })!.message, `ERROR: ${f}:2: YAML aliases: expected at most 100 alias expansions, found more (an alias bomb?)`);
  // a few anchors reused are normal YAML: read, then judged like any other key
  writeFileSync(f, `${readFileSync(writeInventory(), 'utf8')}x: &x 1\ny: [${Array(5).fill('*x').join(', ')}]\n`);
  t.regex(t.throws(() => loadInventory(f), { instanceOf: InventoryError })!.message, /expected a known key .*found unknown key 'x'/);
});

test.serial('rule: problems are sorted by line whatever order the checks found them in, an unknown key is placed on its own line, a missing one is required', (t) => {
  const parse = (doc: Record<string, unknown>) => t.throws(() => parseInventory(stringify(doc), '/tmp/c.yaml', 'c.yaml'), { instanceOf: InventoryError })!;
  const b = baseInventory();
  const e = parse({ zzz: 1, ...b, cluster: 5 });
  t.is(e.name, 'InventoryError');
  t.deepEqual(e.problems.map((p) => p.split(': ')[0]), ['c.yaml:1', 'c.yaml:2'], e.message);
  t.regex(parse({ ...b, pki: { ...(b.pki as object), bogus: { a: 1 } } }).message, /^ERROR: c\.yaml:12: pki\.bogus: expected a known key \(dir, /, 'the key\'s line, not its value\'s');
  // a key YAML reads as a number or a boolean is named by zod as text: still its own line, not its block's
  const odd = stringify(b).replace(/^ {2}days: 365$/m, '  days: 365\n  1: x\n  true: y');
  t.deepEqual(t.throws(() => parseInventory(odd, '/tmp/c.yaml', 'c.yaml'), { instanceOf: InventoryError })!.problems.map((p) => p.split(': ').slice(0, 2).join(': ')),
    ['c.yaml:11: pki.1', 'c.yaml:12: pki.true']);
  t.is(parse({ ...b, master: { address: 'x' } }).message, 'ERROR: c.yaml:22: master.name: expected a value (the key is required), found {"address":"x"}');
  // KUBETLS_INVENTORY names the file; without it, cluster.yaml in the current folder (the example shipped here)
  const file = writeInventory();
  const saved = process.env.KUBETLS_INVENTORY;
  try {
    process.env.KUBETLS_INVENTORY = file;
    t.is(loadInventory().file, file);
    delete process.env.KUBETLS_INVENTORY;
    t.like(loadInventory(), { file: path.resolve('cluster.yaml'), example: true });
  } finally {
    if (saved === undefined) delete process.env.KUBETLS_INVENTORY; else process.env.KUBETLS_INVENTORY = saved;
  }
  t.false(loadInventory(writeInventory({}, tempDir())).example);
  const marked = path.join(tempDir(), 'cluster.yaml');
  writeFileSync(marked, `cluster: x\n# kubetls example inventory\n${stringify({ ...b, cluster: undefined }).replace(/^cluster:.*\n/m, '')}`);
  t.false(loadInventory(marked).example, 'the mark counts on the first line only');
});

test('rule: a key the schema gives no message of its own still reads "expected <type>" or zod\'s text, and a missing one "the key is required"', async (t) => {
  // the error map lib/inventory.ts installs (zod's global one, lowest precedence): the fallback for any future key
  const { z } = await import('zod');
  const message = (r: { success: boolean; error?: { issues: { message: string }[] } }) => r.error?.issues[0]?.message;
  t.is(message(z.object({ a: z.string() }).safeParse({})), 'a value (the key is required)');
  t.is(message(z.string().safeParse(5)), 'string');
  t.is(message(z.string().min(2).safeParse('a')), 'String must contain at least 2 character(s)');
});

// ---- the real apiserver's service range (its first address is the `kubernetes` service's ClusterIP) -------

test('service_cidr: a modern inventory whose range\'s first address is not a SAN of the server certificate is refused, on that key\'s line', (t) => {
  const problem = (patch: Record<string, unknown>) => {
    try {
      loadInventory(writeInventory({ profile: 'modern', ...patch }));
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  };
  // the default range 10.24.0.0/16 and the recipe's apiserver.ip [10.24.0.1] agree
  t.is(problem({}), undefined);
  t.is(loadInventory(writeInventory({ profile: 'modern' })).serviceCidr, '10.24.0.0/16');
  // kubeadm's default range with the recipe's SANs: in-cluster clients would dial 10.96.0.1, which the certificate lacks
  t.regex(problem({ service_cidr: '10.96.0.0/12' }) ?? 'accepted', /:\d+: service_cidr: expected the service range's first address 10\.96\.0\.1 \(the kubernetes service's ClusterIP\) among apiserver\.ip, found 10\.24\.0\.1/);
  t.is(problem({ service_cidr: '10.96.0.0/12', cluster_dns: '10.96.0.10', apiserver: { cn: 'kubernetes.default.svc', ip: ['10.96.0.1'] } }), undefined);
  // cluster DNS outside the range: no Service could ever have that address
  t.regex(problem({ cluster_dns: '10.25.0.10' }) ?? 'accepted', /cluster_dns: expected an address inside service_cidr 10\.24\.0\.0\/16, found 10\.25\.0\.10/);
  for (const bad of ['10.24.0.0', '10.24.0.1/16', '10.24.0.0/8', '10.24.0.0/30', '300.24.0.0/16', 'fd00::/108']) {
    t.regex(problem({ service_cidr: bad }) ?? 'accepted', /service_cidr: expected an IPv4 range such as 10\.24\.0\.0\/16/, bad);
  }
  // the legacy profile writes no range (the recipe's files are kept word for word): not checked
  t.is(problem({ profile: 'legacy', service_cidr: '10.96.0.0/12' }), undefined);
});

test('rule: HA: masters: takes 1, or 3 and more behind apiserver.endpoint; each wrong shape is refused on its own line', (t) => {
  const ha = { profile: 'modern', master: undefined, masters: ['m1', 'm2', 'm3'], apiserver: { endpoint: { name: 'api.example', address: '10.0.0.100' } } };
  t.is(problem(ha), undefined);
  const inv = loadInventory(writeInventory(ha));
  t.deepEqual(inv.masters.map((m) => [m.name, m.role]), [['m1', 'master'], ['m2', 'master'], ['m3', 'master']]);
  t.is(inv.master, inv.masters[0]);
  t.deepEqual(inv.etcd.members, inv.masters, 'stacked etcd: every master is a member');
  t.deepEqual(allHosts(inv).map((h) => h.name), ['m1', 'm2', 'm3', 'kubeminion1', 'kubeminion2']);
  t.deepEqual(inv.apiserver.endpoint, { name: 'api.example', address: '10.0.0.100', port: 6443, drainSeconds: 10 });
  t.deepEqual(loadInventory(writeInventory({ ...ha, apiserver: { endpoint: 'lb' } })).apiserver.endpoint, { name: 'lb', address: 'lb', port: 6443, drainSeconds: 10 }, 'a bare name');
  t.is(loadInventory(writeInventory({ ...ha, masters: ['m1'], apiserver: {} })).masters.length, 1, 'masters: with one entry is the one master');
  const refused = (patch: Record<string, unknown>, re: RegExp) => t.regex(problem(patch) ?? 'accepted', re, JSON.stringify(patch));
  refused({ ...ha, master: 'm0' }, /masters: expected either master: or masters:, found both$/);
  refused({ ...ha, masters: ['m1', 'm2'] }, /masters: expected 1 master, or 3 and more, found 2 \(two stacked etcd members lose quorum/);
  refused({ ...ha, masters: ['m1', 'm2', 'm3', 'm4'] }, /masters: expected an odd number of masters when etcd is stacked on them \(the default; or list etcd\.members\), found 4$/);
  t.is(problem({ ...ha, masters: ['m1', 'm2', 'm3', 'm4'], etcd: { members: ['m1', 'm2', 'm3'] } }), undefined, 'four masters with three of them as etcd members');
  refused({ ...ha, etcd: { members: ['m1', 'm2', 'm3', { name: 'e4', address: '10.0.0.9' }] } }, /etcd\.members: expected an odd number of members \(a majority of 4 survives no more failures than 3 members would\), found 4$/);
  refused({ profile: 'modern', etcd: { members: ['kubemaster', { name: 'e2', address: '10.0.0.9' }] } }, /etcd\.members: expected an odd number of members .* found 2$/);
  refused({ ...ha, masters: ['m1', 'm2', 'm1'] }, /masters\[2\]: expected a unique host name, found 'm1' again \(first at masters\[0\]\)$/m);
  refused({ ...ha, minions: ['m2'] }, /minions\[0\]: expected a unique host name, found 'm2' again \(first at masters\[1\]\)$/m);
  refused({ ...ha, apiserver: {} }, /masters: expected apiserver\.endpoint \(the load balancer in front of the masters\) with 3 masters, found none$/);
  refused({ ...ha, apiserver: { endpoint: { name: 'm2', address: '10.0.0.100' } } }, /apiserver\.endpoint: expected a load balancer of its own, not a host of the inventory, found the name or address of masters\[1\] \(m2\)$/);
  refused({ ...ha, masters: ['m1', { name: 'm2', address: '10.0.0.100' }, 'm3'] }, /apiserver\.endpoint: expected a load balancer of its own, not a host of the inventory, found the name or address of masters\[1\] \(m2\)$/);
  // the name clients connect to, equal to a host's address; an IPv4-mapped spelling of a host's address
  refused({ ...ha, masters: ['m1', { name: 'm2', address: 'm2.corp' }, 'm3'], apiserver: { endpoint: { name: 'm2.corp', address: '10.0.0.100' } } }, /found the name or address of masters\[1\] \(m2\)$/);
  refused({ ...ha, masters: ['m1', { name: 'm2', address: '10.0.0.2' }, 'm3'], apiserver: { endpoint: { name: 'lb', address: '::ffff:10.0.0.2' } } }, /found the name or address of masters\[1\] \(m2\)$/);
  refused({ ...ha, apiserver: { endpoint: { name: 'lb', address: '0.0.0.0' } } }, /apiserver\.endpoint\.address: expected the balancer's address, found the unspecified address 0\.0\.0\.0$/);
  refused({ ...ha, apiserver: { endpoint: { name: 'lb', address: '::' } } }, /found the unspecified address ::$/);
  refused({ ...ha, apiserver: { endpoint: { name: 'lb', drain_seconds: 26 } } }, /apiserver\.endpoint\.drain_seconds: expected a number of seconds from 0 to 25, found 26$/);
  refused({ ...ha, apiserver: { endpoint: { name: 'lb', address: 'kubeminion1' } } }, /apiserver\.endpoint: expected a load balancer of its own, .* minions\[0\] \(kubeminion1\)$/);
  refused({ ...ha, apiserver: { endpoint: { name: 'lb', drain_seconds: -1 } } }, /apiserver\.endpoint\.drain_seconds: expected a number of seconds from 0 to 25, found -1$/);
  refused({ ...ha, apiserver: { endpoint: { name: 'lb', via: 'x' } } }, /apiserver\.endpoint\.via: expected a known key \(name, address, port, drain_seconds\), found unknown key 'via'$/);
  refused({ ...ha, profile: 'legacy' }, /masters: expected one master in the legacy profile \(the recipe's Kubernetes 1\.4 cluster has one; use profile: modern\), found 3/);
  refused({ profile: 'legacy', apiserver: { endpoint: 'lb' } }, /apiserver\.endpoint: expected no endpoint in the legacy profile/);
  refused({ ...ha, masters: [] }, /masters: expected at least one master/);
});

// ---- the same host under another spelling, the DNS service's address, the apiserver's port, names the PKI takes ----------

test('the same host under another spelling is refused with file:line: an IPv4-mapped IPv6 address is its IPv4 address', (t) => {
  const master = { name: 'kubemaster', address: '127.7.0.1' };
  for (const spelling of ['::ffff:127.7.0.1', '0:0:0:0:0:ffff:7f07:1', '::FFFF:7F07:0001']) {
    t.regex(problem({ master, minions: [{ name: 'k1', address: spelling }] }) ?? 'accepted',
      new RegExp(`^ERROR: FILE:\\d+: minions\\[0\\]: expected a host address and port of its own, found ${spelling.replace(/[.]/g, '\\.')} port 22 again \\(first at master\\)$`), spelling);
  }
  // and an etcd member named like the master may not give it another address, whatever the spelling says
  t.is(problem({ profile: 'modern', master, etcd: { members: [{ name: 'kubemaster', address: '::ffff:127.7.0.1' }] } }), undefined, 'the same address, spelled otherwise, is the master\'s own');
  // another port is another host (two sshd on one address)
  t.is(problem({ master, minions: [{ name: 'k1', address: '::ffff:127.7.0.1', port: 2222 }] }), undefined);
});

test('cluster_dns may not be the kubernetes service\'s address, nor the range\'s network or broadcast address', (t) => {
  const modern = { profile: 'modern' };
  t.regex(problem({ ...modern, cluster_dns: '10.24.0.1' }) ?? 'accepted', /^ERROR: FILE:\d+: cluster_dns: expected an address for the cluster's DNS service of its own inside 10\.24\.0\.0\/16, found 10\.24\.0\.1 \(the kubernetes service's ClusterIP\)$/);
  t.regex(problem({ ...modern, cluster_dns: '10.24.0.0' }) ?? 'accepted', /cluster_dns: .*found 10\.24\.0\.0 \(the range's network address\)$/);
  t.regex(problem({ ...modern, cluster_dns: '10.24.255.255' }) ?? 'accepted', /cluster_dns: .*found 10\.24\.255\.255 \(the range's broadcast address\)$/);
  t.regex(problem({ ...modern, service_cidr: '10.32.0.0/24', apiserver: { ip: ['10.32.0.1'] }, cluster_dns: '10.32.0.255' }) ?? 'accepted', /\(the range's broadcast address\)$/);
  t.is(problem({ ...modern, cluster_dns: '10.24.0.2' }), undefined);
  t.is(problem({ ...modern, cluster_dns: '10.24.255.254' }), undefined);
});

test('apiserver.port may not be a port another component of the master listens on', (t) => {
  const modern = { profile: 'modern' };
  for (const [port, why] of [[2379, "etcd's client port \\(etcd runs on the master\\)"], [2380, "etcd's peer port"], [10257, "the controller-manager's secure port"], [10259, "the scheduler's secure port"]] as const) {
    t.regex(problem({ ...modern, apiserver: { port } }) ?? 'accepted', new RegExp(`^ERROR: FILE:\\d+: apiserver\\.port: expected a port no other component of the master listens on, found ${port} \\(${why}`), String(port));
  }
  // etcd on hosts of its own: 2379 is free on the master
  t.is(problem({ ...modern, apiserver: { port: 2379 }, etcd: { members: [{ name: 'e1', address: '10.0.0.21' }] } }), undefined);
  // the legacy master: the recipe's etcd, the apiserver's own insecure port, the 1.4 components' ports
  for (const port of [2379, 8080, 10251, 10252]) t.regex(problem({ apiserver: { port } }) ?? 'accepted', /apiserver\.port: expected a port no other component/, String(port));
  t.is(problem({ apiserver: { port: 443 } }), undefined);
});

test('a host named like a certificate of this inventory is refused by the inventory (exit 2, file:line), not by the plan', (t) => {
  const modern = { profile: 'modern' };
  const named = (name: string, patch: Record<string, unknown> = modern) => problem({ ...patch, minions: ['kubeminion1', name] });
  for (const [name, file] of [['kube-proxy', ''], ['etcd-peer-kubemaster', 'etcd-peer-kubemaster'], ['etcd-server-kubemaster', 'etcd-server-kubemaster'], ['kubelet-kubeminion1', 'kubelet-kubeminion1']]) {
    const p = named(name) ?? 'accepted';
    t.regex(p, new RegExp(`^ERROR: FILE:\\d+: minions\\[1\\]\\.name: expected a (name that is not reserved for a file of the PKI \\(.*\\)|name that is not a file of this inventory's PKI), found '${name}'`), name);
    if (file) t.true(p.includes(`(the base name of the certificate ${file}.crt)`), p);
  }
  // and a minion's own name is its own certificate's, not a collision
  t.is(named('kubeminion2'), undefined);
  // through scripts: exit 2, before anything is written
  const dir = tempDir();
  writeInventory({ ...modern, minions: ['kubeminion1', 'kubelet-kubeminion1'] }, dir);
  const r = spawnSync(process.execPath, ['--import=tsx', path.join(repoRoot, 'scripts/master.ts'), '--pki-only', '--inventory', path.join(dir, 'cluster.yaml')], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  t.is(r.status, 2, r.stderr);
  t.false(existsSync(path.join(dir, 'pki')), 'nothing written');
});
