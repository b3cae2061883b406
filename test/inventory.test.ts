import test from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { InventoryError, loadInventory } from '../lib/inventory.ts';
import { repoRoot } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

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
    const lines = r.stderr.trim().split('\n');
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
  t.deepEqual(inv.master, { name: 'kubemaster', role: 'master', address: 'kubemaster', port: 22, user: 'root' });
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
