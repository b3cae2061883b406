// CA rotation, the parts that need no cluster: what a host receives for each trust point in each phase
// (lib/pki/trust.ts), what kubetls's own clients trust, which CAs a host may hold, and the refusals before anything runs.
// The rotation itself, on the real cluster, is test/rotate.test.ts.
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { masterEnv, unitsFor } from '../config/profiles.ts';
import type { Inventory } from '../lib/inventory.ts';
import { loadInventory } from '../lib/inventory/load.ts';
import { clientTrust, deployedBytes, holdsOnlyKnownCas, knownCas, pemCerts } from '../lib/pki/trust.ts';
import { flagContext, pkiFilesFor } from '../lib/rollout/desired.ts';
import { type Phase, readRotation, refuseDuringRotation } from '../lib/state.ts';
import { writeInventory } from './helpers/inventory.ts';
import { runScript } from './helpers/run.ts';

/** A small self-signed CA certificate (EC P-256: fast), as PEM. */
async function selfSigned(dir: string, cn: string): Promise<string> {
  const key = path.join(dir, `${cn}.key.tmp`);
  const crt = path.join(dir, `${cn}.crt.tmp`);
  await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', `/CN=${cn}`, '-days', '2', '-out', crt]);
  return readFileSync(crt, 'utf8');
}

/** A modern inventory whose pki.dir holds ca.crt, ca.next.crt, ca.prev.crt, etcd-ca.crt and sa.pub / sa.next.pub. */
async function pkiWithSides(): Promise<{ inv: Inventory; cur: string; next: string; prev: string; etcd: string }> {
  const inv = loadInventory(writeInventory({ profile: 'modern' }));
  mkdirSync(inv.pki.dir, { recursive: true, mode: 0o700 });
  const put = (f: string, s: string) => writeFileSync(path.join(inv.pki.dir, f), s, { mode: 0o600 });
  const [cur, next, prev, etcd] = await Promise.all(['cur', 'next', 'prev', 'etcd'].map((n) => selfSigned(inv.pki.dir, n)));
  put('ca.crt', cur!); put('ca.next.crt', next!); put('ca.prev.crt', prev!); put('etcd-ca.crt', etcd!);
  put('sa.pub', 'SA-CURRENT\n'); put('sa.next.pub', 'SA-NEXT\n'); put('sa.prev.pub', 'SA-PREV\n');
  return { inv, cur: cur!, next: next!, prev: prev!, etcd: etcd! };
}
const record = (inv: Inventory, phase: Phase, what = 'cluster', targets = ['ca']) => writeFileSync(path.join(inv.pki.dir, '.rotate-ca.json'),
  JSON.stringify({ what, targets, phase, started: '2026-12-05T00:00:00.000Z', old: {}, next: {} }));
const text = (b: Buffer) => b.toString();

test('outside a rotation every trust point is deployed and trusted as the local file is', async (t) => {
  const { inv, cur } = await pkiWithSides();
  t.is(text(deployedBytes(inv, 'ca.crt')), cur);
  t.is(text(clientTrust(inv)), cur);
  t.is(text(deployedBytes(inv, 'sa.pub')), 'SA-CURRENT\n');
  t.deepEqual(knownCas(inv, 'ca.crt'), pemCerts(cur).map((c) => c.fingerprint256), 'the next and prev files count only during a rotation');
});

test('each phase deploys its bundle, the signing CA first: old + new in phase 2, new + old in 3 and 4, the new one alone from phase 5; kubetls\'s own clients trust the new one alone from phase 4', async (t) => {
  const { inv, cur, next, prev } = await pkiWithSides();
  const want: Record<Phase, [deployed: string, client: string]> = {
    new: [cur, cur], bundle: [cur + next, cur + next], swap: [cur + prev, cur + prev], leaves: [cur + prev, cur + prev],
    verify: [cur + prev, cur], drop: [cur, cur], done: [cur, cur],
  };
  for (const [phase, [deployed, client]] of Object.entries(want) as [Phase, [string, string]][]) {
    record(inv, phase);
    t.is(text(deployedBytes(inv, 'ca.crt')), deployed, `${phase}: deployed`);
    t.is(text(clientTrust(inv)), client, `${phase}: kubetls's clients`);
  }
  // the bundle's first certificate is the one ca.key belongs to (the signer), in every phase that has two
  record(inv, 'bundle');
  t.is(pemCerts(deployedBytes(inv, 'ca.crt'))[0]!.fingerprint256, pemCerts(cur)[0]!.fingerprint256);
});

test('the controller-manager\'s signer is ca.crt alone in every phase: the real binary refuses a bundle in --cluster-signing-cert-file ("expected 1 certificate, found 2")', async (t) => {
  const { inv, cur } = await pkiWithSides();
  const signer = pkiFilesFor(inv, inv.master).find(([, remote]) => remote.endsWith('/ca-signer.crt'));
  t.truthy(signer, 'the master receives ca-signer.crt');
  for (const phase of ['bundle', 'swap', 'leaves', 'verify'] as Phase[]) {
    record(inv, phase);
    t.is(signer![2]().toString(), cur, phase);
    t.is(pemCerts(pkiFilesFor(inv, inv.master).find(([, remote]) => remote.endsWith('/ca.crt'))![2]()).length, 2, `${phase}: ca.crt is the bundle`);
  }
  const cm = masterEnv('modern', flagContext(inv)).find((e) => e.path === '/etc/kubernetes/controller-manager')!.vars.KUBE_CONTROLLER_MANAGER_ARGS!;
  t.regex(cm, /--cluster-signing-cert-file=\/srv\/kubernetes\/ca-signer\.crt --cluster-signing-key-file=\/srv\/kubernetes\/ca\.key/);
  t.true(unitsFor('modern', 'master').find((u) => u.unit === 'kube-controller-manager')!.reads.includes('{remote}/ca-signer.crt'), 'a new signer restarts it');
});

test('a CA that is not being rotated is deployed alone during another\'s rotation; the service-account key is bundled like a CA', async (t) => {
  const { inv, etcd } = await pkiWithSides();
  record(inv, 'bundle', 'cluster', ['ca']);
  t.is(text(deployedBytes(inv, 'etcd-ca.crt')), etcd);
  t.is(text(deployedBytes(inv, 'sa.pub')), 'SA-CURRENT\n');
  record(inv, 'bundle', 'service-account', ['sa']);
  t.is(text(deployedBytes(inv, 'sa.pub')), 'SA-CURRENT\nSA-NEXT\n');
  t.is(text(deployedBytes(inv, 'ca.crt')).match(/BEGIN CERTIFICATE/g)!.length, 1);
  record(inv, 'leaves', 'service-account', ['sa']);
  t.is(text(deployedBytes(inv, 'sa.pub')), 'SA-CURRENT\nSA-PREV\n');
});

test('during a rotation a host may hold the old or the new CA, or both; a foreign CA, alone or in a bundle, is not among them', async (t) => {
  const { inv, cur, next, prev } = await pkiWithSides();
  record(inv, 'leaves');
  const known = knownCas(inv, 'ca.crt');
  for (const pem of [cur, next, prev]) t.true(known.includes(pemCerts(pem)[0]!.fingerprint256));
  const foreign = await selfSigned(inv.pki.dir, 'foreign');
  t.false(known.includes(pemCerts(foreign)[0]!.fingerprint256));
  // what checkSameCa (every install) and the rotation's preflight ask of a host's CA file
  for (const ok of [cur, cur + next, cur + prev, next + cur]) t.true(holdsOnlyKnownCas(inv, 'ca.crt', Buffer.from(ok)));
  for (const bad of [foreign, cur + foreign, foreign + cur, '', 'not a certificate']) t.false(holdsOnlyKnownCas(inv, 'ca.crt', Buffer.from(bad)), JSON.stringify(bad.slice(0, 40)));
  record(inv, 'done');
  t.false(holdsOnlyKnownCas(inv, 'ca.crt', Buffer.from(cur + prev)), 'outside a rotation the old CA is a stranger');
});

test('a damaged rotation record is refused, never guessed; master.ts and minions.ts refuse to run while a rotation runs, a plain renew.ts says how to finish it', async (t) => {
  const { inv } = await pkiWithSides();
  writeFileSync(path.join(inv.pki.dir, '.rotate-ca.json'), '{"phase": "sideways"');
  t.throws(() => readRotation(inv), { message: /not a rotation record .*restore it from a backup/ });
  record(inv, 'bogus' as Phase);
  t.throws(() => readRotation(inv), { message: /not a rotation record/ });
  record(inv, 'leaves', 'all', ['ca', 'etcd-ca', 'front-proxy-ca', 'sa']);
  t.throws(() => refuseDuringRotation(inv, 'master.ts'), { message: /a CA rotation of all is running \(phase 3 of 5: rolling out the new leaves.*master\.ts would undo part of it.*--rotate-ca all/ });
  record(inv, 'done', 'all', ['ca']);
  t.notThrows(() => refuseDuringRotation(inv, 'master.ts'), 'a finished rotation is only a record');
  record(inv, 'new', 'all', ['ca']);
  t.notThrows(() => refuseDuringRotation(inv, 'master.ts'), 'phase 1 has sent nothing: it may wait for a root\'s signature for weeks');
  record(inv, 'bundle', 'all', ['ca']);
  t.throws(() => refuseDuringRotation(inv, 'minions.ts'), { message: /phase 2 of 5/ });
  record(inv, 'bundle');
  for (const script of ['master', 'minions']) {
    const r = await runScript(script, ['--inventory', inv.file, '--dry-run']);
    t.is(r.code, 2, `${script}: ${r.all}`);
    t.regex(r.all, /a CA rotation of cluster is running \(phase 2 of 5/, script);
  }
});

test('during an unfinished CA rotation cron\'s renew renews the due leaves of the CAs it does not replace, leaves the others to it, and says how to finish it (exit 1)', async (t) => {
  // every leaf to be reissued at once (the inventory now asks for another key type); etcd's CA is being rotated, parked
  // in phase 5
  const file = writeInventory({ profile: 'modern', minions: ['kubeminion1'] });
  t.is((await runScript('master.ts', ['--pki-only', '--inventory', file])).code, 0);
  writeInventory({ profile: 'modern', minions: ['kubeminion1'], pki: { key: 'ecdsa-p256' } }, path.dirname(file));
  const inv = loadInventory(file);
  writeFileSync(path.join(inv.pki.dir, '.rotate-ca.json'), JSON.stringify({ what: 'etcd', targets: ['etcd-ca'], phase: 'drop', started: '2026-12-05T00:00:00.000Z', old: {}, next: {} }));
  const r = await runScript('renew', ['--inventory', file, '--dry-run']);
  t.is(r.code, 1, r.all);
  t.regex(r.all, /a CA rotation of etcd is not finished \(phase 5 of 5: dropping the old CA, started 2026-12-05T00:00:00\.000Z\): finish it with npx zx scripts\/renew\.ts --rotate-ca etcd/);
  // the cluster CA's leaves are renewed as on any day
  for (const f of ['server.crt', 'kubeminion1.crt', 'kube-proxy.crt']) t.regex(r.all, new RegExp(`\\$ openssl \\S+ .*${f.replace('.', '\\.')}\\.new`), f);
  // etcd's are the rotation's
  t.regex(r.all, /apiserver-etcd-client\.crt: key rsa 2048, expected ecdsa-p256, but the CA rotation of etcd replaces its CA \(etcd-ca\) and reissues it/);
  t.notRegex(r.all, /\$ openssl \S+ .*(apiserver-etcd-client|etcd-server-kubemaster)\.crt\.new/);
});

test('renew --rotate-ca refuses a name it does not know, --only and --cert beside it, --drop-now without it, and the legacy profile, before touching anything', async (t) => {
  const modern = writeInventory({ profile: 'modern' });
  const bad = await runScript('renew', ['--inventory', modern, '--rotate-ca', 'everything']);
  t.is(bad.code, 2);
  t.regex(bad.all, /--rotate-ca expects one of cluster, etcd, front-proxy, service-account, all, found 'everything'/);
  for (const extra of [['--only', 'kubemaster'], ['--cert', 'server']]) {
    const r = await runScript('renew', ['--inventory', modern, '--rotate-ca', 'all', ...extra]);
    t.is(r.code, 2);
    t.regex(r.all, /--rotate-ca cannot be combined with/);
  }
  const drop = await runScript('renew', ['--inventory', modern, '--drop-now']);
  t.is(drop.code, 2);
  t.regex(drop.all, /--drop-now goes with --rotate-ca NAME/);
  const legacy = await runScript('renew', ['--inventory', writeInventory({ profile: 'legacy' }), '--rotate-ca', 'cluster']);
  t.is(legacy.code, 2);
  t.regex(legacy.all, /--rotate-ca needs the modern profile/);
  // no PKI yet: a rotation replaces a CA, it never makes the first one
  const none = await runScript('renew', ['--inventory', modern, '--rotate-ca', 'cluster']);
  t.is(none.code, 2, none.all);
  t.regex(none.all, /no ca\.crt in .*run scripts\/master\.ts first/);
});

test('a rotation refuses to start, before any SSH, without sa.key, with hosts owed a renewal, during a token rotation, beside stray .next/.prev files, or with an expired CA; a swap whose CA is neither the old nor the new one stops', async (t) => {
  const file = writeInventory({ profile: 'modern' });
  const inv = loadInventory(file);
  const built = await runScript('master', ['--inventory', file, '--pki-only']);
  t.is(built.code, 0, built.all);
  const p = (f: string) => path.join(inv.pki.dir, f);
  const rotate = () => runScript('renew', ['--inventory', file, '--rotate-ca', 'all']);
  const refused = async (why: RegExp, undo: () => void) => {
    const r = await rotate();
    t.is(r.code, 2, r.all);
    t.regex(r.all, why);
    t.false(existsSync(p('.rotate-ca.json')), 'nothing recorded');
    undo();
  };
  renameSync(p('sa.key'), p('sa.key.away'));
  await refused(/no sa\.key in .*run scripts\/master\.ts first/, () => renameSync(p('sa.key.away'), p('sa.key')));
  writeFileSync(p('.renew-pending.json'), '["kubeminion1"]\n');
  await refused(/kubeminion1 still owe an earlier renewal .*run renew\.ts first/, () => rmSync(p('.renew-pending.json')));
  const tokens = readFileSync(p('tokens.csv'), 'utf8');
  const line = tokens.split('\n')[0]!;
  const old = `${'x'.repeat(32)}${line.slice(32)}`;
  writeFileSync(p('tokens.csv'), `${line}\n${old}\n`);
  writeFileSync(p('.token-retiring'), `${createHash('sha256').update('x'.repeat(32)).digest('hex')}\n`);
  await refused(/a token rotation is still running/, () => { writeFileSync(p('tokens.csv'), tokens); rmSync(p('.token-retiring')); });
  writeFileSync(p('etcd-ca.next.key'), 'stray\n', { mode: 0o600 });
  await refused(/etcd-ca\.next\.key is there but no rotation is recorded/, () => rmSync(p('etcd-ca.next.key')));
  // an expired CA: a rotation cannot keep a dead cluster working (master.ts --replace-ca after moving it away)
  // (made with `openssl ca -selfsign`, the only openssl command that takes a start date; its key is the CA's own)
  const ca = path.join(path.dirname(inv.pki.dir), 'expired');
  mkdirSync(ca);
  writeFileSync(path.join(ca, 'ca.cnf'), '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\nx509_extensions=v3\n'
    + '[p]\ncommonName=supplied\n[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  writeFileSync(path.join(ca, 'index.txt'), '');
  writeFileSync(path.join(ca, 'serial'), '01\n');
  const o = (args: string[]) => execa('openssl', args, { cwd: ca });
  await o(['req', '-new', '-key', p('front-proxy-ca.key'), '-subj', '/CN=front-proxy-ca', '-out', 'ca.csr']);
  await o(['ca', '-batch', '-notext', '-config', 'ca.cnf', '-selfsign', '-keyfile', p('front-proxy-ca.key'), '-in', 'ca.csr', '-out', p('front-proxy-ca.crt'), '-startdate', '20200101000000Z', '-enddate', '20200201000000Z']);
  await refused(/front-proxy-ca\.crt has expired: .*master\.ts --replace-ca/, () => undefined);
  // a rotation recorded in phase 3a whose ca.crt is neither the CA it started from nor the one it made
  writeFileSync(p('.rotate-ca.json'), JSON.stringify({ what: 'cluster', targets: ['ca'], phase: 'swap', started: '2026-12-05T00:00:00.000Z', old: { ca: 'AA:BB' }, next: { ca: 'CC:DD' } }));
  const swap = await runScript('renew', ['--inventory', file, '--rotate-ca', 'cluster']);
  t.not(swap.code, 0);
  t.regex(swap.all, /ca\.crt is neither the CA this rotation started from nor its copy: restore pki\.dir from a backup/);
  t.false(existsSync(p('ca.prev.crt')), 'nothing copied');
});

// ---- every finished rotation is remembered; what verify tells to run during one -----------------------------------

test('a rotation that finished before the last one is remembered: after etcd then cluster, --rotate-ca etcd is nothing to do without --force', async (t) => {
  const file = writeInventory({ profile: 'modern' });
  t.is((await runScript('master.ts', ['--pki-only', '--inventory', file])).code, 0);
  const inv = loadInventory(file);
  const fp = (f: string) => new X509Certificate(readFileSync(path.join(inv.pki.dir, f))).fingerprint256;
  // the record an etcd rotation and then a cluster rotation leave: the last one, and the one before under history
  writeFileSync(path.join(inv.pki.dir, '.rotate-ca.json'), JSON.stringify({
    what: 'cluster', targets: ['ca'], phase: 'done', started: '2026-12-05T01:00:00.000Z', finished: '2026-12-05T01:05:00.000Z', old: {}, next: { ca: fp('ca.crt') },
    history: { etcd: { finished: '2026-12-05T00:05:00.000Z', next: { 'etcd-ca': fp('etcd-ca.crt') } } },
  }));
  for (const what of ['etcd', 'cluster']) {
    const r = await runScript('renew', ['--inventory', file, '--rotate-ca', what, '--dry-run']);
    t.is(r.code, 0, r.all);
    t.regex(r.all, new RegExp(`nothing to do: the rotation of ${what} finished 2026-12-05T0\\d:05:00\\.000Z and its CAs are the current ones`), what);
    t.notRegex(r.all, /would run|checking that every host/, `${what}: no host asked, no phase planned`);
  }
  // a CA changed since (restored from a backup, say): the rotation is not taken as done any more
  const r = await runScript('renew', ['--inventory', file, '--rotate-ca', 'front-proxy', '--dry-run']);
  t.notRegex(r.all, /nothing to do/, 'a rotation never made is not remembered');
});

test('during a rotation verify tells to finish it with renew.ts --rotate-ca, not with minions.ts or master.ts (which refuse to run then)', async (t) => {
  const { deployedChecks } = await import('../lib/verify.ts');
  const file = writeInventory({ profile: 'legacy', minions: ['kubeminion1'] });
  t.is((await runScript('master.ts', ['--pki-only', '--inventory', file])).code, 0);
  const inv = loadInventory(file);
  // a minion whose env files say something else than kubetls sets
  const host = { host: inv.minions[0], async inspect(ps: string[]) { return new Map(ps.map((p) => [p, undefined])); }, async read(p: string) { return p.startsWith('/etc/kubernetes/') ? Buffer.from('KUBE_MASTER="--master=http://elsewhere:8080"\n') : undefined; } } as never;
  const hint = async () => (await deployedChecks(inv, host)).filter((r) => r.check === 'configured' && !r.ok).map((r) => r.detail.replace(/^.* \((run .*)\)$/, '$1'));
  t.deepEqual([...new Set(await hint())], ['run renew.ts (or minions.ts)']);
  writeFileSync(path.join(inv.pki.dir, '.rotate-ca.json'), JSON.stringify({ what: 'cluster', targets: ['ca'], phase: 'drop', started: '2026-12-05T00:00:00.000Z', old: {}, next: {} }));
  t.deepEqual([...new Set(await hint())], ['run renew.ts --rotate-ca cluster (a CA rotation is running)']);
});
