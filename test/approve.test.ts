/**
 * approve.ts against the real v1.37.2 apiserver and controller-manager of the modern lab (two minions in cluster.yaml):
 * serving CSRs made by the real openssl and sent by the real kubectl with a node's own credential (or admin's, for a
 * requester that is no node). A node's own request is approved and then signed by the real controller-manager with the
 * cluster CA; each forged one is denied with its reason; a CSR of another signer is left alone; a second run and two
 * runs at once decide nothing twice; the approver's identity can do nothing else.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import type { Lab } from '../lab/index.ts';
import { repoRoot, tempDir, writeInventory } from './helpers/inventory.ts';
import { useLab } from './helpers/lab.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 2, profile: 'modern' });
const must = (t: ExecutionContext, r: { code: number; all: string }, code = 0) => t.is(r.code, code, r.all.split('\n').slice(-30).join('\n'));
const inv = (lab: Lab) => ['--inventory', lab.inventoryPath];

/** The real kubectl as the holder of pki.dir/`cert`.crt (a node, admin, the approver), to the master, verified for its name. */
function kubectl(lab: Lab, cert: string, args: string[], input?: string) {
  const p = (f: string) => path.join(lab.pkiDir, f);
  return execa('kubectl', ['--server', `https://${lab.master.address}:6443`, '--tls-server-name', lab.master.name, '--certificate-authority', p('ca.crt'),
    '--client-certificate', p(`${cert}.crt`), '--client-key', p(`${cert}.key`), '--request-timeout', '20s', ...args], { reject: false, timeout: 40_000, input });
}

/** A serving CSR object as a kubelet sends it: a new P-256 key (kept in a temp folder), `sans`, `usages`. */
async function csr(name: string, o: { node?: string; sans: string; usages?: string[]; signer?: string }) {
  const dir = tempDir();
  const node = o.node ?? 'kubeminion1';
  await execa('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'k'),
    '-subj', `/O=system:nodes/CN=system:node:${node}`, '-addext', `subjectAltName=${o.sans}`, '-out', path.join(dir, 'r')]);
  return JSON.stringify({ apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name },
    spec: { request: readFileSync(path.join(dir, 'r')).toString('base64'), signerName: o.signer ?? 'kubernetes.io/kubelet-serving', usages: o.usages ?? ['digital signature', 'server auth'] } });
}

type Csr = { metadata: { name: string; resourceVersion: string }; status?: { conditions?: { type: string; reason?: string; message?: string; lastUpdateTime?: string }[]; certificate?: string } };
async function csrs(lab: Lab): Promise<Map<string, Csr>> {
  const r = await kubectl(lab, 'admin', ['get', 'csr', '-o', 'json']);
  return new Map((JSON.parse(r.stdout) as { items: Csr[] }).items.map((c) => [c.metadata.name, c]));
}
const conditions = (c: Csr | undefined) => (c?.status?.conditions ?? []).map((x) => x.type);

/**
 * An approve run held (the approve-hold fault) once it has read `pending` CSRs: `release()` lets it go on, and gives
 * what it printed and its exit code.
 */
async function heldRun(t: ExecutionContext, lab: Lab, pending: number) {
  const file = path.join(tempDir(), 'release');
  const run = execa(process.execPath, [path.join(repoRoot, 'bin/kubetls.mjs'), 'approve', ...inv(lab)],
    { cwd: repoRoot, reject: false, all: true, stdin: 'ignore', env: { NODE_OPTIONS: '', KUBETLS_FAULT: 'approve-hold', KUBETLS_FAULT_RELEASE: file } });
  let said = '';
  run.all!.on('data', (c: Buffer) => { said += c; });
  const read = new RegExp(`${pending} pending kubelet serving CSRs`);
  for (let i = 0; i < 300 && !read.test(said); i++) await sleep(100);
  t.regex(said, read);
  return { release: async () => { writeFileSync(file, ''); return run; } };
}

test.serial('master.ts makes the approver\'s certificate and a role that reads CSRs and approves for the kubelet-serving signer only', async (t) => {
  const lab = await labP;
  must(t, await runScript('master', inv(lab)));
  const who = await kubectl(lab, 'approver', ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
  t.is(who.stdout, 'kubetls:approver', who.stderr);
  // what the real apiserver says the approver may do (SelfSubjectAccessReview, asked as the approver)
  const can = async (attrs: object) => {
    const review = { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: attrs } };
    const r = await kubectl(lab, 'approver', ['create', '--validate=false', '-f', '-', '-o', 'jsonpath={.status.allowed}'], JSON.stringify(review));
    return r.stdout.trim() || r.stderr;
  };
  const signer = (name: string) => ({ group: 'certificates.k8s.io', resource: 'signers', verb: 'approve', name });
  t.is(await can({ group: 'certificates.k8s.io', resource: 'certificatesigningrequests', verb: 'list' }), 'true');
  t.is(await can({ group: 'certificates.k8s.io', resource: 'certificatesigningrequests', subresource: 'approval', verb: 'update' }), 'true');
  t.is(await can(signer('kubernetes.io/kubelet-serving')), 'true');
  t.is(await can(signer('kubernetes.io/kube-apiserver-client')), 'false');
  t.is(await can(signer('kubernetes.io/kube-apiserver-client-kubelet')), 'false');
  t.is(await can(signer('kubernetes.io/*')), 'false');
  t.is(await can({ resource: 'secrets', namespace: 'kube-system', verb: 'get' }), 'false');
  t.is(await can({ group: 'certificates.k8s.io', resource: 'certificatesigningrequests', verb: 'create' }), 'false');
  // a second master.ts keeps them
  t.regex((await runScript('master', inv(lab))).all, /nothing to do: every host already up to date/);
});

test.serial('a node\'s own serving CSR is approved and signed by the real controller-manager; every forged one is denied with its reason; another signer\'s is left alone', async (t) => {
  const lab = await labP;
  const [m1, m2] = lab.minions;
  const send = async (cert: string, doc: string) => { const r = await kubectl(lab, cert, ['create', '-f', '-'], doc); t.is(r.exitCode, 0, r.stderr); };
  await send('kubeminion1', await csr('own', { sans: `DNS:kubeminion1,IP:${m1!.address}` }));
  await send('kubeminion1', await csr('other-node-ip', { sans: `DNS:kubeminion1,IP:${m2!.address}` }));
  await send('kubeminion1', await csr('not-in-cluster-yaml', { sans: 'DNS:kubeminion1,IP:10.24.0.1' }));
  await send('kubeminion1', await csr('other-dns', { sans: 'DNS:kubeminion1,DNS:kubernetes.default.svc' }));
  await send('kubeminion1', await csr('uri-san', { sans: 'DNS:kubeminion1,URI:spiffe://cluster/x' }));
  await send('kubeminion1', await csr('client-usage', { sans: 'DNS:kubeminion1', usages: ['digital signature', 'server auth', 'client auth'] }));
  // a node asking in another node's name never gets this far: the real apiserver refuses to create it
  const forged = await kubectl(lab, 'kubeminion2', ['create', '-f', '-'], await csr('subject-of-another', { sans: 'DNS:kubeminion2' }));
  t.regex(forged.stderr, /forbidden: can only create a node CSR with CN=system:node:kubeminion2/);
  await send('admin', await csr('not-a-node', { sans: `DNS:kubeminion1,IP:${m1!.address}` }));
  await send('admin', await csr('client-signer', { sans: 'DNS:x', usages: ['client auth'], signer: 'kubernetes.io/kube-apiserver-client' }));

  // a dry run says what it would do and changes nothing
  const dry = await runScript('approve', [...inv(lab), '--dry-run', '--json']);
  must(t, dry);
  const planned = (JSON.parse(dry.stdout) as { items: { name: string; did: string }[] }).items;
  t.deepEqual(Object.fromEntries(planned.map((x) => [x.name, x.did])), {
    'client-usage': 'would deny', 'not-a-node': 'would deny', 'not-in-cluster-yaml': 'would deny', 'other-dns': 'would deny',
    'other-node-ip': 'would deny', own: 'would approve', 'uri-san': 'would deny' });
  t.true([...(await csrs(lab)).values()].every((c) => conditions(c).length === 0));

  const run = await runScript('approve', inv(lab));
  must(t, run);
  t.regex(run.all, /kubectl certificate approve own/);
  const got = await csrs(lab);
  t.deepEqual(conditions(got.get('own')), ['Approved']);
  const denial = (n: string) => { const c = got.get(n)?.status?.conditions?.[0]; return `${c?.type} ${c?.reason}: ${c?.message}`; };
  t.regex(denial('other-node-ip'), new RegExp(`^Denied KubetlsDenied: .*IP address ${m2!.address.replaceAll('.', '\\.')} is not kubeminion1's in cluster\\.yaml`));
  t.regex(denial('not-in-cluster-yaml'), /^Denied .*IP address 10\.24\.0\.1 is not kubeminion1's/);
  t.regex(denial('other-dns'), /^Denied .*DNS name kubernetes\.default\.svc is not kubeminion1's/);
  t.regex(denial('uri-san'), /^Denied .*SAN URI:spiffe:\/\/cluster\/x is not allowed/);
  t.regex(denial('client-usage'), /^Denied .*usages digital signature, server auth, client auth are not/);
  t.regex(denial('not-a-node'), /^Denied .*requester kubernetes-admin is not a node/);
  t.deepEqual(conditions(got.get('client-signer')), [], 'another signer\'s CSR is not this approver\'s');
  // nor could it be: the apiserver refuses the approver's approval for that signer
  const refused = await kubectl(lab, 'approver', ['certificate', 'approve', 'client-signer']);
  t.regex(refused.stderr, /forbidden/i);
  t.deepEqual(conditions((await csrs(lab)).get('client-signer')), []);
  // the real controller-manager signs what was approved, with the cluster CA, for the names asked
  let cert = '';
  for (let i = 0; i < 30 && !cert; i++) {
    cert = (await csrs(lab)).get('own')?.status?.certificate ?? '';
    if (!cert) await sleep(1000);
  }
  const file = path.join(tempDir(), 'own.crt');
  writeFileSync(file, Buffer.from(cert, 'base64'));
  const v = await execa('openssl', ['verify', '-CAfile', path.join(lab.pkiDir, 'ca.crt'), '-purpose', 'sslserver', file], { reject: false });
  t.regex(v.stdout, /: OK$/, v.stderr);
  const text = (await execa('openssl', ['x509', '-in', file, '-noout', '-ext', 'subjectAltName'])).stdout;
  t.regex(text, new RegExp(`DNS:kubeminion1, IP Address:${m1!.address.replaceAll('.', '\\.')}`));
  // nothing twice: a second run finds nothing pending and changes no CSR
  const again = await runScript('approve', inv(lab));
  must(t, again);
  t.regex(again.all, /0 pending kubelet serving CSRs/);
  const after = await csrs(lab);
  for (const [n, c] of got) if (n !== 'own') t.is(after.get(n)?.metadata.resourceVersion, c.metadata.resourceVersion, n);
});

test.serial('a CSR decided by someone else after approve read it is left as it is: the apiserver refuses the stale update (409)', async (t) => {
  const lab = await labP;
  const names = ['race-1', 'race-2', 'race-3', 'race-4'];
  for (const [i, n] of names.entries()) {
    const r = await kubectl(lab, 'kubeminion1', ['create', '-f', '-'], await csr(n, { sans: i % 2 ? 'DNS:kubeminion1' : 'DNS:kubeminion2' }));
    t.is(r.exitCode, 0, r.stderr);
  }
  // the first run reads the four, then is held (the approve-hold fault) while a second run decides them all
  const held = await heldRun(t, lab, 4);
  must(t, await runScript('approve', inv(lab)));
  const decidedFirst = await csrs(lab);
  const late = await held.release();
  t.is(late.exitCode, 0, late.all);
  t.is(late.all.match(/changed since it was read .*left as it is/g)?.length, 4, late.all);
  const got = await csrs(lab);
  for (const [i, n] of names.entries()) {
    t.deepEqual(conditions(got.get(n)), [i % 2 ? 'Approved' : 'Denied'], n);
    t.is(got.get(n)!.status!.conditions![0]!.lastUpdateTime, decidedFirst.get(n)!.status!.conditions![0]!.lastUpdateTime, n);
  }
});

test.serial('a CSR the apiserver will not update (deleted after approve read it) is named, exit 1, and every other one is still decided', async (t) => {
  const lab = await labP;
  const names = ['a-gone', 'b-kept', 'c-kept'];
  for (const n of names) {
    const r = await kubectl(lab, 'kubeminion1', ['create', '-f', '-'], await csr(n, { sans: 'DNS:kubeminion1' }));
    t.is(r.exitCode, 0, r.stderr);
  }
  const held = await heldRun(t, lab, 3);
  t.is((await kubectl(lab, 'admin', ['delete', 'csr', 'a-gone'])).exitCode, 0);
  const r = await held.release();
  t.is(r.exitCode, 1, r.all);
  t.regex(r.all, /kubectl certificate approve a-gone: HTTP 404/);
  const got = await csrs(lab);
  t.false(got.has('a-gone'));
  t.deepEqual(['b-kept', 'c-kept'].map((n) => conditions(got.get(n))), [['Approved'], ['Approved']]);
});

test.serial('approve killed (kill -9) right after its first decision, then run again: the rest are decided, the first is not touched again', async (t) => {
  const lab = await labP;
  const names = ['killed-1', 'killed-2', 'killed-3'];
  for (const n of names) {
    const r = await kubectl(lab, 'kubeminion1', ['create', '-f', '-'], await csr(n, { sans: 'DNS:kubeminion1' }));
    t.is(r.exitCode, 0, r.stderr);
  }
  const killed = await runScript('approve', inv(lab), { KUBETLS_FAULT: 'decided-1' });
  t.not(killed.code, 0, killed.all);
  const mid = await csrs(lab);
  t.deepEqual(names.map((n) => conditions(mid.get(n))), [['Approved'], [], []]);
  const again = await runScript('approve', inv(lab));
  must(t, again);
  t.notRegex(again.all, /approve killed-1/);
  const end = await csrs(lab);
  t.deepEqual(names.map((n) => conditions(end.get(n))), [['Approved'], ['Approved'], ['Approved']]);
  const approvedAt = (c: Csr | undefined) => c?.status?.conditions?.[0]?.lastUpdateTime;
  t.is(approvedAt(end.get('killed-1')), approvedAt(mid.get('killed-1')));
});

test.serial('approve --watch approves a CSR made after it started; the approver refuses a legacy inventory and needs its certificate', async (t) => {
  const lab = await labP;
  const watcher = execa(process.execPath, [path.join(repoRoot, 'bin/kubetls.mjs'), 'approve', ...inv(lab), '--watch', '--interval', '1'],
    { cwd: repoRoot, reject: false, all: true, stdin: 'ignore', env: { NODE_OPTIONS: '' } });
  try {
    await sleep(2000);
    const r = await kubectl(lab, 'kubeminion2', ['create', '-f', '-'], await csr('watched', { node: 'kubeminion2', sans: `DNS:kubeminion2,IP:${lab.minions[1]!.address}` }));
    t.is(r.exitCode, 0, r.stderr);
    let c: string[] = [];
    for (let i = 0; i < 30 && !c.length; i++) { c = conditions((await csrs(lab)).get('watched')); if (!c.length) await sleep(1000); }
    t.deepEqual(c, ['Approved']);
  } finally {
    watcher.kill('SIGTERM');
  }
  const said = await watcher;
  t.regex(said.all ?? '', /kubectl certificate approve watched/);
  // without its certificate it says how to get one, exit 1 (the lab's inventory copied elsewhere: an empty pki.dir)
  const dir = tempDir();
  writeFileSync(path.join(dir, 'cluster.yaml'), readFileSync(lab.inventoryPath));
  const none = await runScript('approve', ['--inventory', path.join(dir, 'cluster.yaml')]);
  t.is(none.code, 1, none.all);
  t.regex(none.all, /approver\.crt and approver\.key: run master\.ts first/);
  // the legacy profile's kubelets have no CSR API: a usage error, exit 2
  const legacy = await runScript('approve', ['--inventory', writeInventory({ profile: 'legacy' })]);
  t.is(legacy.code, 2, legacy.all);
  t.regex(legacy.all, /approve needs the modern profile/);
});
