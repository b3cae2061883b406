/**
 * The operator's own root on the HA lab (three masters with stacked etcd behind the real haproxy, one minion): the
 * three CAs as intermediates under a root made here, whose key exists as a file only while the test signs with it
 * (never while kubetls runs); then a rotation of the cluster intermediate under the same root, with its request
 * round trip in phase 1, while two clients poll the real apiserver through the balancer every 100 ms. They trust
 * what their kubeconfig holds plus the root (node's TLS wants a self-signed anchor), and count every refused request.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import type { Lab } from '../lab/index.ts';
import { readKubeconfig } from '../lib/kubeconfig.ts';
import { pemCerts } from '../lib/pki/trust.ts';
import { tempDir } from './helpers/inventory.ts';
import { useLab } from './helpers/lab.ts';
import { makeRoot, signWithRoot, type Root } from './helpers/own-root.ts';
import { pollEvery } from './helpers/poll.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 1, profile: 'modern', masters: 3 });
const REVIEW = '/apis/authentication.k8s.io/v1/selfsubjectreviews';
const must = (t: ExecutionContext, r: { code: number; all: string }, code = 0) => t.is(r.code, code, r.all.split('\n').slice(-40).join('\n'));
const inv = (lab: Lab) => ['--inventory', lab.inventoryPath];

/** The root, and its key in memory only: written to a file for one signing, removed right after. */
let root: Root;
let rootKey: Buffer;
test.before(async () => {
  root = await makeRoot({ dir: tempDir('kubetls-root-') });
  rootKey = readFileSync(root.key);
  rmSync(root.key);
});
async function signOnce(csr: string): Promise<string> {
  writeFileSync(root.key, rootKey, { mode: 0o600 });
  try { return await signWithRoot(root, csr); } finally { rmSync(root.key); }
}
const rootKeyBody = () => rootKey.toString().replace(/-----[^-]+-----|\s/g, '');

/** POST a SelfSubjectReview through the balancer, trusting `ca` and the root: the status and who the apiserver says. */
function review(lab: Lab, cred: { ca?: Buffer; cert?: Buffer; key?: Buffer; token?: string }): Promise<string | undefined> {
  const body = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
  return new Promise((resolve) => {
    const req = https.request({
      host: lab.lb!.address, port: 6443, servername: lab.lb!.name, method: 'POST', path: REVIEW, ca: [cred.ca!, readFileSync(root.crt)], cert: cred.cert, key: cred.key,
      agent: false, timeout: 5000, headers: { 'content-type': 'application/json', ...(cred.token ? { authorization: `Bearer ${cred.token}` } : {}) },
    }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c; });
      res.on('end', () => {
        let user: string | undefined;
        try { user = (JSON.parse(text) as { status?: { userInfo?: { username?: string } } }).status?.userInfo?.username; } catch { /* not JSON */ }
        resolve(res.statusCode === 201 ? user : `HTTP ${res.statusCode} as ${user}`);
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 5000 ms')));
    req.on('error', (e) => resolve(e.message));
    req.end(body);
  });
}

/** A client that re-reads its kubeconfig before every request, as one started anew would. Bounded: 15 minutes. */
function poll(lab: Lab, user: string, read: () => string) {
  return pollEvery(async () => {
    let kc;
    try { kc = readKubeconfig(read()); } catch (e) { return `${user}: kubeconfig: ${(e as Error).message}`; }
    const who = await review(lab, kc);
    return who === user ? undefined : `${user}: ${who}`;
  }, 15 * 60_000);
}

/** curl and kubectl through the balancer, trusting the root alone; [] when both work. */
async function rootOnlyThroughBalancer(lab: Lab): Promise<string[]> {
  const p = (f: string) => path.join(lab.pkiDir, f);
  const failed: string[] = [];
  const curl = await execa('curl', ['-sS', '--fail-with-body', '--cacert', root.crt, '--cert', p('admin.crt'), '--key', p('admin.key'),
    '--resolve', `${lab.lb!.name}:6443:${lab.lb!.address}`, `https://${lab.lb!.name}:6443/version`], { reject: false, timeout: 15_000 });
  if (curl.exitCode !== 0) failed.push(`curl: ${curl.stderr}${curl.stdout}`);
  const kc = readKubeconfig(readFileSync(p('admin.kubeconfig'), 'utf8'));
  const file = path.join(tempDir(), 'root-only.kubeconfig');
  const text = readFileSync(p('admin.kubeconfig'), 'utf8').replace(/certificate-authority-data: \S+/, `certificate-authority-data: ${readFileSync(root.crt).toString('base64')}`);
  writeFileSync(file, text, { mode: 0o600 });
  if (!kc.ca) failed.push('admin.kubeconfig has no CA data');
  const nodes = await execa('kubectl', ['--kubeconfig', file, 'get', 'nodes', '-o', 'name'], { reject: false, timeout: 30_000 });
  if (nodes.exitCode !== 0 || nodes.stdout.trim() !== 'node/kubeminion1') failed.push(`kubectl: ${nodes.stderr}${nodes.stdout}`);
  for (const m of lab.masters) {
    const s = await execa('openssl', ['s_client', '-connect', `${m.address}:6443`, '-servername', m.name, '-verify_return_error', '-CAfile', root.crt, '-verify_hostname', m.name],
      { input: '', reject: false, timeout: 15_000 });
    if (!/Verify return code: 0 \(ok\)/.test(s.stdout)) failed.push(`openssl s_client ${m.name}: ${s.stderr.split('\n').slice(-3).join(' ')}`);
  }
  return failed;
}

/** When requests failed: what haproxy and each etcd member said meanwhile (masters down and up, leader changes). */
async function balancerStory(lab: Lab, since: Date): Promise<string> {
  const at = since.toISOString().slice(0, 19).replace('T', ' ');
  const lines: string[] = [];
  const say = async (host: string, unit: string, pattern: RegExp) => {
    const j = await lab.exec(host, ['journalctl', '-u', unit, '--since', at, '-o', 'short-iso-precise', '--no-pager']);
    lines.push(...j.stdout.split('\n').filter((l) => pattern.test(l)).map((l) => `${host}: ${l}`));
  };
  await say(lab.lb!.name, 'haproxy', /is (DOWN|UP)|no server available/);
  for (const m of lab.masters) {
    await say(m.name, 'etcd', /leader|campaign|election/i);
    await say(m.name, 'kube-apiserver', /ShutdownInitiated|AfterShutdownDelayDuration|InFlightRequestsDrained|Serving securely|Failed to shutdown/);
  }
  return lines.join('\n');
}

test.serial('three masters behind haproxy under the operator\'s root: master.ts, minions.ts and verify.ts, and clients that trust only the root', async (t) => {
  const lab = await labP;
  for (const ca of ['ca', 'etcd-ca', 'front-proxy-ca']) {
    must(t, await runScript('ca', ['request', ca, ...inv(lab)]));
    const signed = await signOnce(path.join(lab.pkiDir, `${ca}.csr`));
    must(t, await runScript('ca', ['import', ca, '--cert', signed, '--root', root.crt, ...inv(lab)]));
  }
  for (const s of ['master', 'minions', 'verify']) must(t, await runScript(s, inv(lab)));
  t.deepEqual(await rootOnlyThroughBalancer(lab), []);
});

test.serial('renew --rotate-ca cluster under the root: phase 1 waits (exit 75) for the next intermediate, the same root signs it, the rotation ends with 0 failed requests through haproxy', async (t) => {
  t.timeout(15 * 60_000);
  const lab = await labP;
  const pki = (f: string) => path.join(lab.pkiDir, f);
  const oldCa = readFileSync(pki('ca.crt'));
  const started = new Date();
  const clients = [
    poll(lab, 'system:node:kubeminion1', () => lab.readFile('kubeminion1', '/var/lib/kubelet/kubeconfig')),
    poll(lab, 'kubernetes-admin', () => readFileSync(pki('admin.kubeconfig'), 'utf8')),
  ];
  const said: string[] = [];
  const rotate = async (code: number) => { const r = await runScript('renew', [...inv(lab), '--rotate-ca', 'cluster']); said.push(r.all); must(t, r, code); return r; };
  let counts;
  try {
    // phase 1: the next key and its request, nothing on any host, exit 75 (run again later)
    const first = await rotate(75);
    t.regex(first.all, /phase 1 waits for your root: sign .*ca\.next\.csr .*ca\.ts import ca --cert SIGNED\.crt --root ROOT\.crt/);
    const csr = readFileSync(pki('ca.next.csr'));
    const key = readFileSync(pki('ca.next.key'));
    const status = await runScript('status', [...inv(lab), '--json']);
    const row = (JSON.parse(status.stdout) as { rows: { name: string; status: string }[] }).rows.find((x) => x.name === 'ca rotation');
    t.regex(row!.status, /phase 1 of 5: new CA.*ca\.next\.csr waits to be signed by your root \(ca\.ts import\)/);
    // nothing has left this machine: master.ts and minions.ts still run while it waits (here with nothing to do)
    for (const s of ['master', 'minions']) t.regex((await runScript(s, inv(lab))).all, /nothing to do: every host already up to date/);
    // again, while it waits: the same request, the same key, still 75
    await rotate(75);
    t.deepEqual(readFileSync(pki('ca.next.csr')), csr);
    t.deepEqual(readFileSync(pki('ca.next.key')), key);
    // a rotation keeps the root: another root's certificate is refused
    const other = await makeRoot({ cn: 'Other Root', dir: tempDir() });
    const wrong = await signWithRoot(other, pki('ca.next.csr'));
    const refused = await runScript('ca', ['import', 'ca', '--cert', wrong, '--root', other.crt, ...inv(lab)]);
    must(t, refused, 2);
    t.regex(refused.all, /is not the root above ca .*a rotation keeps the root/);
    // the operator signs the next intermediate with the same root; kubetls imports it and finishes
    const signed = await signOnce(pki('ca.next.csr'));
    must(t, await runScript('ca', ['import', 'ca', '--cert', signed, '--root', root.crt, ...inv(lab)]));
    await rotate(0);
    await sleep(1000);
  } finally {
    counts = await Promise.all(clients.map((c) => c.stop()));
  }
  t.log(`requests: ${counts.map((c) => `${c.ok} ok, ${c.failed} failed`).join('; ')}`);
  if (counts.some((c) => c.failed)) t.log(await balancerStory(lab, started));
  for (const c of counts) {
    t.is(c.failed, 0, c.errors.join('\n'));
    t.true(c.ok > 50, `${c.ok} requests`);
  }
  // the new intermediate signs, under the same root; the root never reached any output
  const newCa = pemCerts(readFileSync(pki('ca.crt')));
  t.is(newCa.length, 1);
  t.notDeepEqual(readFileSync(pki('ca.crt')), oldCa);
  t.true(newCa[0]!.checkIssued(pemCerts(readFileSync(root.crt))[0]!));
  for (const s of said) t.false(s.replace(/\s/g, '').includes(rootKeyBody()), 'the root key was printed');
  must(t, await runScript('verify', inv(lab)));
  t.deepEqual(await rootOnlyThroughBalancer(lab), []);
  // the controller-manager signs with the new intermediate alone, and what it signs chains to the root
  const dir = tempDir();
  await execa('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'k'), '-subj', '/CN=someone', '-out', path.join(dir, 'r')]);
  const k = (args: string[], input?: string) => execa('kubectl', ['--kubeconfig', pki('admin.kubeconfig'), ...args], { reject: false, timeout: 30_000, input });
  const doc = { apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name: 'someone' },
    spec: { request: readFileSync(path.join(dir, 'r')).toString('base64'), signerName: 'kubernetes.io/kube-apiserver-client', usages: ['client auth'], expirationSeconds: 600 } };
  t.is((await k(['create', '-f', '-'], JSON.stringify(doc))).exitCode, 0);
  t.is((await k(['certificate', 'approve', 'someone'])).exitCode, 0);
  let cert = '';
  for (let i = 0; i < 60 && !cert; i++) {
    cert = (await k(['get', 'csr', 'someone', '-o', 'jsonpath={.status.certificate}'])).stdout.trim();
    if (!cert) await sleep(1000);
  }
  writeFileSync(path.join(dir, 'c'), Buffer.from(cert, 'base64'));
  const v = await execa('openssl', ['verify', '-CAfile', root.crt, '-untrusted', pki('ca.crt'), path.join(dir, 'c')], { reject: false });
  t.regex(v.stdout, /: OK$/, v.stderr);
});
