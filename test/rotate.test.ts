// CA rotation on the real cluster of the HA lab: three masters with stacked etcd (three members), the real
// v1.37.2 control plane behind Debian's haproxy, one minion with the real kubelet and kube-proxy. Two clients poll the
// real apiserver through the balancer every 100 ms the whole time, each re-reading its kubeconfig before every request
// as a client started anew would (the kubelet's from the minion, the operator's admin.kubeconfig), and they count
// every request the apiserver did not accept.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import type { Lab } from '../lab/index.ts';
import { readKubeconfig } from '../lib/kubeconfig.ts';
import { parseCert } from '../lib/pki/read.ts';
import { pemCerts } from '../lib/pki/trust.ts';
import { editInventory, remoteFile, restarts, sha256 } from './helpers/e2e.ts';
import { useLab } from './helpers/lab.ts';
import { pollEvery, type PollCounts } from './helpers/poll.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 1, profile: 'modern', masters: 3 });
const MASTERS = ['kubemaster', 'kubemaster2', 'kubemaster3'];
const HOSTS = [...MASTERS, 'kubeminion1'];
const REVIEW = '/apis/authentication.k8s.io/v1/selfsubjectreviews';
const must = (t: ExecutionContext, r: { code: number; all: string }, code = 0) => t.is(r.code, code, r.all.split('\n').slice(-40).join('\n'));
const marks = (lab: Lab) => Object.fromEntries(HOSTS.map((m) => [m, lab.journal(m).length]));
const rotation = (lab: Lab) => JSON.parse(readFileSync(join(lab.pkiDir, '.rotate-ca.json'), 'utf8')) as { phase: string; old: Record<string, string>; next: Record<string, string> };

interface Cred { ca?: Buffer; cert?: Buffer; key?: Buffer; token?: string }

/** POST a SelfSubjectReview through the balancer with `cred`: the status and the username the apiserver gave it. */
function review(lab: Lab, cred: Cred, timeoutMs = 5000): Promise<{ status: number; user?: string; error?: string }> {
  const body = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
  return new Promise((resolve) => {
    const req = https.request({
      host: lab.lb!.address, port: 6443, servername: lab.lb!.name, method: 'POST', path: REVIEW, ca: cred.ca, cert: cred.cert, key: cred.key,
      agent: false, timeout: timeoutMs,
      headers: { 'content-type': 'application/json', ...(cred.token ? { authorization: `Bearer ${cred.token}` } : {}) },
    }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c; });
      res.on('end', () => {
        let user: string | undefined;
        try { user = (JSON.parse(text) as { status?: { userInfo?: { username?: string } } }).status?.userInfo?.username; } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, user });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ status: 0, error: e.message }));
    req.end(body);
  });
}

/**
 * A client of the balancer: every 100 ms it reads its kubeconfig again (`read`), and asks who it is with what that
 * kubeconfig holds (CA, client certificate, token). Anything but 201 for `user` is a failed request. Bounded: it
 * stops by itself after 15 minutes.
 */
function poll(lab: Lab, user: string, read: () => string) {
  return pollEvery(async () => {
    let kc;
    try { kc = readKubeconfig(read()); } catch (e) { return `${user}: kubeconfig: ${(e as Error).message}`; } // caught mid-write: a defect too
    const r = await review(lab, kc);
    return r.status === 201 && r.user === user ? undefined : `${user}: ${r.error ?? `HTTP ${r.status} as ${r.user}`}`;
  }, 15 * 60_000);
}

const pollers = (lab: Lab) => [
  poll(lab, 'system:node:kubeminion1', () => lab.readFile('kubeminion1', '/var/lib/kubelet/kubeconfig')),
  poll(lab, 'kubernetes-admin', () => readFileSync(join(lab.pkiDir, 'admin.kubeconfig'), 'utf8')),
];

/** The leaves each host holds, as deployed: [label, PEM, the CA that must have signed it]. */
function deployedLeaves(lab: Lab): [string, string, 'ca' | 'etcd-ca' | 'front-proxy-ca'][] {
  const out: [string, string, 'ca' | 'etcd-ca' | 'front-proxy-ca'][] = [];
  const kc = (h: string, f: string) => readKubeconfig(lab.readFile(h, f)).cert!.toString();
  for (const m of MASTERS) {
    const f = (n: string) => lab.readFile(m, `/srv/kubernetes/${n}`);
    out.push([`${m}:server.crt`, f('server.crt'), 'ca'], [`${m}:apiserver-kubelet-client.crt`, f('apiserver-kubelet-client.crt'), 'ca'],
      [`${m}:apiserver-etcd-client.crt`, f('apiserver-etcd-client.crt'), 'etcd-ca'], [`${m}:front-proxy-client.crt`, f('front-proxy-client.crt'), 'front-proxy-ca'],
      [`${m}:etcd-server.crt`, f('etcd-server.crt'), 'etcd-ca'], [`${m}:etcd-peer.crt`, f('etcd-peer.crt'), 'etcd-ca'],
      [`${m}:controller-manager.conf`, kc(m, '/srv/kubernetes/controller-manager.conf'), 'ca'], [`${m}:scheduler.conf`, kc(m, '/srv/kubernetes/scheduler.conf'), 'ca']);
  }
  out.push(['kubeminion1:kubeminion1.crt', lab.readFile('kubeminion1', '/srv/kubernetes/kubeminion1.crt'), 'ca'],
    ['kubeminion1:kubelet.crt', lab.readFile('kubeminion1', '/var/lib/kubelet/pki/kubelet.crt'), 'ca'],
    ['kubeminion1:kubelet kubeconfig', kc('kubeminion1', '/var/lib/kubelet/kubeconfig'), 'ca'],
    ['kubeminion1:kube-proxy kubeconfig', kc('kubeminion1', '/var/lib/kube-proxy/kubeconfig'), 'ca']);
  return out;
}

/** `openssl verify -CAfile CA LEAF` with nothing but that CA trusted (the real binary). */
async function opensslVerify(dir: string, ca: string, leaf: string): Promise<{ ok: boolean; output: string }> {
  const caFile = join(dir, `ca-${sha256(ca).slice(0, 8)}.pem`);
  const leafFile = join(dir, `leaf-${sha256(leaf).slice(0, 8)}.pem`);
  writeFileSync(caFile, ca);
  writeFileSync(leafFile, leaf);
  const r = await execa('openssl', ['verify', '-CAfile', caFile, leafFile], { reject: false });
  return { ok: r.exitCode === 0 && /: OK$/m.test(r.stdout), output: `${r.stdout}${r.stderr}`.trim() };
}

/**
 * A certificate the real controller-manager signs now: a CSR for the kube-apiserver-client signer, approved with the
 * admin kubeconfig; its signer is the --cluster-signing-cert-file / --cluster-signing-key-file pair, so this fails
 * when the controller-manager cannot run its signer (a bundle there: "expected 1 certificate, found 2").
 */
async function signedByControllerManager(lab: Lab, dir: string, name: string): Promise<string> {
  const admin = join(lab.pkiDir, 'admin.kubeconfig');
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  await execa('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', `/CN=${name}`, '-out', csr]);
  const doc = { apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name },
    spec: { request: readFileSync(csr).toString('base64'), signerName: 'kubernetes.io/kube-apiserver-client', usages: ['client auth'], expirationSeconds: 600 } };
  const k = (args: string[], input?: string) => execa('kubectl', ['--kubeconfig', admin, ...args], { reject: false, timeout: 30_000, input });
  const made = await k(['create', '-f', '-'], JSON.stringify(doc));
  if (made.exitCode !== 0) throw new Error(`kubectl create csr: ${made.stderr}`);
  await k(['certificate', 'approve', name]);
  for (let i = 0; i < 90; i++) {
    const got = await k(['get', 'csr', name, '-o', 'jsonpath={.status.certificate}']);
    if (got.exitCode === 0 && got.stdout.trim()) return Buffer.from(got.stdout.trim(), 'base64').toString();
    await sleep(1000);
  }
  throw new Error(`the controller-manager did not sign ${name} in 90 s`);
}

test.serial('the cluster comes up; a rotation is refused from a PKI folder the cluster does not trust, before anything is made', async (t) => {
  const lab = await labP;
  must(t, await runScript('master', ['--inventory', lab.inventoryPath]));
  must(t, await runScript('minions', ['--inventory', lab.inventoryPath]));
  // another PKI folder (a new checkout, the wrong backup): its CAs are not the cluster's
  const other = editInventory(lab, (d) => { d.pki.dir = 'other-pki'; }, join(lab.dir, 'other.yaml'));
  must(t, await runScript('master', ['--inventory', other, '--pki-only']));
  const from = marks(lab);
  const r = await runScript('renew', ['--inventory', other, '--rotate-ca', 'all']);
  must(t, r, 2);
  t.regex(r.all, /kubemaster:\/srv\/kubernetes\/ca\.crt.* hold a CA that is not in .*other-pki: this PKI folder is not the one the cluster trusts/);
  t.false(existsSync(join(lab.dir, 'other-pki', '.rotate-ca.json')), 'no rotation recorded');
  t.deepEqual(readdirSync(join(lab.dir, 'other-pki')).filter((f) => /\.(next|prev)\./.test(f)), [], 'no new CA made');
  for (const h of HOSTS) t.deepEqual(restarts(lab, h, from[h]), {}, h);
  // --only and --cert do not go with a rotation: a phase ends when every host reached it
  for (const extra of [['--only', 'kubemaster'], ['--cert', 'server']]) {
    const u = await runScript('renew', ['--inventory', lab.inventoryPath, '--rotate-ca', 'all', ...extra]);
    must(t, u, 2);
    t.regex(u.all, /--rotate-ca cannot be combined with/);
  }
  t.false(existsSync(join(lab.pkiDir, '.rotate-ca.json')));
});

test.serial('renew --rotate-ca all, killed (kill -9) at every phase boundary and in the middle of phases 2 and 3, with a master unreachable once in phase 2: every run resumes, 0 failed requests of the kubelet\'s and the admin\'s kubeconfig, the old CAs and service-account key refused at the end', async (t) => {
  t.timeout(20 * 60_000);
  const lab = await labP;
  const tmp = mkdtempSync(join(tmpdir(), 'kubetls-rotate-'));
  const pki = (f: string) => join(lab.pkiDir, f);
  const admin = pki('admin.kubeconfig');
  try {
    // what a leaked or old credential would be: the old admin and etcd-client pairs, a token signed by the old sa.key
    const old = Object.fromEntries(['ca.crt', 'etcd-ca.crt', 'front-proxy-ca.crt', 'admin.crt', 'admin.key', 'apiserver-etcd-client.crt', 'apiserver-etcd-client.key']
      .map((f) => [f, readFileSync(pki(f))]));
    const tok = await execa('kubectl', ['--kubeconfig', admin, '-n', 'default', 'create', 'token', 'default', '--duration=1h'], { reject: false, timeout: 30_000 });
    t.is(tok.exitCode, 0, tok.stderr);
    const oldToken = tok.stdout.trim();
    const ca = readFileSync(pki('ca.crt'));
    t.is((await review(lab, { ca, token: oldToken })).status, 201, 'the token works before the rotation');
    const from = marks(lab);
    const since = new Date();
    const clients = pollers(lab);
    const said: string[] = [];
    const run = async (fault?: string, extra: string[] = []) => {
      const r = await runScript('renew', ['--inventory', lab.inventoryPath, '--rotate-ca', 'all', ...extra], fault ? { KUBETLS_FAULT: fault } : {});
      said.push(r.all);
      return r;
    };
    const oldServer = parseCert(readFileSync(pki('server.crt'))).serial;
    let counts: PollCounts[] = [];
    try {
      // phase 1 recorded, nothing made: status shows it. Nothing has left this machine, so master.ts and minions.ts
      // still run (a phase 1 under the operator's root may wait weeks for a signature): here they have nothing to do
      t.not((await run('rotate-new')).code, 0);
      t.is(rotation(lab).phase, 'new');
      const st = await runScript('status', ['--inventory', lab.inventoryPath]);
      t.regex(st.all, /ca rotation .*phase 1 of 5/);
      for (const script of ['master', 'minions']) {
        const x = await runScript(script, ['--inventory', lab.inventoryPath]);
        must(t, x, 0);
        t.regex(x.all, /nothing to do: every host already up to date/);
      }
      // a plain renew (cron's) renews what the rotation does not touch, here nothing, and says how to finish it (exit 1)
      const plain = await runScript('renew', ['--inventory', lab.inventoryPath]);
      must(t, plain, 1);
      t.regex(plain.all, /a CA rotation of all is not finished \(phase 1 of 5.*finish it with npx zx scripts\/renew\.ts --rotate-ca all/);
      const second = await runScript('renew', ['--inventory', lab.inventoryPath, '--rotate-ca', 'etcd']);
      must(t, second, 2);
      t.regex(second.all, /a CA rotation of all is running .*a second one is refused/);

      // phase 1 done: the new CAs beside the old, their keys 0600; from here on every other writer is refused
      t.not((await run('rotate-bundle')).code, 0);
      t.is(rotation(lab).phase, 'bundle');
      for (const k of ['ca', 'etcd-ca', 'front-proxy-ca', 'sa']) t.is(statSync(pki(`${k}.next.key`)).mode & 0o777, 0o600, k);
      for (const script of ['master', 'minions']) {
        const x = await runScript(script, ['--inventory', lab.inventoryPath]);
        must(t, x, 2);
        t.regex(x.all, /a CA rotation of all is running \(phase 2 of 5.*Finish it first: npx zx scripts\/renew\.ts --rotate-ca all/);
      }

      // killed in the middle of phase 2: the first two masters hold the bundles
      t.not((await run('rotate-bundle-kubemaster2')).code, 0);
      t.is(pemCerts(lab.readFile('kubemaster2', '/srv/kubernetes/ca.crt')).length, 2, 'kubemaster2 trusts old + new');
      t.is(pemCerts(lab.readFile('kubemaster3', '/srv/kubernetes/ca.crt')).length, 1, 'kubemaster3 not reached');

      // kubemaster3 cannot be reached (its sshd stopped): phase 2 does not end, no certificate of the new CA is
      // issued, and the minion waits for the control plane
      await lab.stopHost('kubemaster3', { sshdOnly: true });
      let blocked;
      try { blocked = await run(); } finally { await lab.startHost('kubemaster3'); }
      must(t, blocked, 1);
      t.regex(blocked.all, /phase 2 of 5: trust bundles \(old \+ new\) is not complete: kubemaster3 does not trust the new CA yet/);
      t.is(rotation(lab).phase, 'bundle');
      t.is(parseCert(readFileSync(pki('server.crt'))).serial, oldServer, 'nothing reissued');
      t.is(pemCerts(lab.readFile('kubemaster3', '/srv/kubernetes/ca.crt')).length, 1, 'kubemaster3 still holds the old CA alone');
      t.is(pemCerts(lab.readFile('kubeminion1', '/srv/kubernetes/ca.crt')).length, 1, 'the minion was left alone');

      // phase 2 done, then killed between two renames of the swap, then after the leaves were reissued
      t.not((await run('rotate-swap')).code, 0);
      t.is(rotation(lab).phase, 'swap');
      t.is(pemCerts(lab.readFile('kubeminion1', '/srv/kubernetes/ca.crt')).length, 2, 'the minion trusts old + new');
      // every host holds the bundles, and the real controller-manager still signs, with the old CA (ca.key's)
      const during = await signedByControllerManager(lab, tmp, 'rotation-probe-bundle');
      t.true((await opensslVerify(tmp, old['ca.crt']!.toString(), during)).ok, 'signed by the old CA in phase 2');
      t.not((await run('rotate-swap-1')).code, 0);
      t.not((await run('rotate-leaves')).code, 0);
      t.is(rotation(lab).phase, 'leaves');
      const server = parseCert(readFileSync(pki('server.crt')));
      t.not(server.serial, oldServer);
      t.true(server.x509.checkIssued(parseCert(readFileSync(pki('ca.crt'))).x509), 'reissued by the new CA');
      t.is(parseCert(readFileSync(pki('ca.prev.crt'))).fingerprint, parseCert(old['ca.crt']!).fingerprint, 'the old CA kept');
      t.is(statSync(pki('ca.prev.key')).mode & 0o777, 0o600);

      // killed in the middle of phase 3, at its end, and at the end of phase 4
      t.not((await run('rotate-leaves-kubemaster')).code, 0);
      t.not((await run('rotate-verify')).code, 0);
      t.is(rotation(lab).phase, 'verify');
      t.not((await run('rotate-drop')).code, 0);
      t.is(rotation(lab).phase, 'drop');
      // phase 5 keeps the old service-account key for an hour after phase 3 (pods' tokens are renewed by then):
      // it stops, says until when, and exits 75; --drop-now goes on (the lab runs no pod)
      const waits = await run();
      must(t, waits, 75);
      t.regex(waits.all, /phase 5 waits until \d{4}-\d\d-\d\dT\d\d:\d\dZ: by then every pod's service-account token .*--drop-now/);
      t.is(rotation(lab).phase, 'drop');
      t.is(pemCerts(lab.readFile('kubemaster', '/srv/kubernetes/ca.crt')).length, 2, 'nothing dropped yet');

      const last = await run(undefined, ['--drop-now']);
      must(t, last);
      t.regex(last.all, /rotation of all finished: every host trusts the new ca, etcd-ca, front-proxy-ca, sa only/);
      t.is(rotation(lab).phase, 'done');
    } finally {
      counts = await Promise.all(clients.map((c) => c.stop()));
    }
    // no key was ever printed: the CA keys made, copied and deleted, nor any leaf's
    t.false(said.some((x) => /PRIVATE KEY|BEGIN [A-Z ]*KEY/.test(x)), 'a key in the output');
    t.log(`requests accepted/failed: kubelet kubeconfig ${counts[0]!.ok}/${counts[0]!.failed}, admin.kubeconfig ${counts[1]!.ok}/${counts[1]!.failed}`);
    for (const c of counts) {
      t.is(c.failed, 0, c.errors.join('\n'));
      t.true(c.ok > 300, `${c.ok} requests`);
    }
    // every unit was restarted by the rotation (each reader reads a bundle), kube-apiserver three times per master
    for (const m of MASTERS) t.true((restarts(lab, m, from[m])['kube-apiserver'] ?? 0) >= 3, m);

    // a third run does nothing: no file, no restart
    const mid = marks(lab);
    const third = await run();
    must(t, third);
    t.regex(third.all, /nothing to do: the rotation of all finished/);
    const cron = await runScript('renew', ['--inventory', lab.inventoryPath]);
    must(t, cron);
    t.regex(cron.all, /nothing to renew/);
    for (const h of HOSTS) t.deepEqual(restarts(lab, h, mid[h]), {}, h);

    // every deployed leaf chains to the new CA alone, and not to the old one
    const rot = rotation(lab);
    const newCa = { ca: readFileSync(pki('ca.crt'), 'utf8'), 'etcd-ca': readFileSync(pki('etcd-ca.crt'), 'utf8'), 'front-proxy-ca': readFileSync(pki('front-proxy-ca.crt'), 'utf8') };
    for (const [label, pem, which] of deployedLeaves(lab)) {
      t.true((await opensslVerify(tmp, newCa[which], pem)).ok, `${label} against the new ${which}`);
      const o = await opensslVerify(tmp, old[`${which}.crt`]!.toString(), pem);
      t.false(o.ok, `${label} must not verify against the old ${which}`);
    }
    // every trust point holds the new CA only, every copy of ca.key is the new one, no backup of the old keys is left
    for (const h of HOSTS) {
      const held = pemCerts(lab.readFile(h, '/srv/kubernetes/ca.crt')).map((c) => c.fingerprint256);
      t.deepEqual(held, [rot.next.ca], `${h} ca.crt`);
    }
    for (const m of MASTERS) {
      for (const [f, k] of [['etcd-ca.crt', 'etcd-ca'], ['front-proxy-ca.crt', 'front-proxy-ca']] as const) {
        t.deepEqual(pemCerts(lab.readFile(m, `/srv/kubernetes/${f}`)).map((c) => c.fingerprint256), [rot.next[k]], `${m} ${f}`);
      }
      t.is((await remoteFile(lab, m, '/srv/kubernetes/ca.key'))?.sha, sha256(readFileSync(pki('ca.key'))), `${m} ca.key`);
      const left = await lab.exec(m, ['sh', '-c', 'ls /srv/kubernetes/ | grep -E "^(ca|sa)\\.key\\.bak-" || true']);
      t.is(left.stdout.trim(), '', `${m}: backups of the old keys`);
    }
    t.deepEqual(readdirSync(lab.pkiDir).filter((f) => /\.(next|prev)\.|\.new$/.test(f)), [], 'no stray copy of an old or new key here');
    for (const kc of [readFileSync(admin, 'utf8'), lab.readFile('kubeminion1', '/var/lib/kubelet/kubeconfig')]) {
      t.deepEqual(pemCerts(readKubeconfig(kc).ca!).map((c) => c.fingerprint256), [rot.next.ca], 'certificate-authority-data');
    }

    // the old credentials are refused: a client certificate of the old CA (401), the old etcd client pair (a TLS
    // error from the real etcd), a token signed by the old service-account key (401); the new ones work
    const newCaPem = readFileSync(pki('ca.crt'));
    t.is((await review(lab, { ca: newCaPem, cert: old['admin.crt'], key: old['admin.key'] })).status, 401, 'old admin certificate');
    t.is((await review(lab, { ca: newCaPem, cert: readFileSync(pki('admin.crt')), key: readFileSync(pki('admin.key')) })).user, 'kubernetes-admin');
    t.is((await review(lab, { ca: newCaPem, token: oldToken })).status, 401, 'token signed by the old sa.key');
    const fresh = await execa('kubectl', ['--kubeconfig', admin, '-n', 'default', 'create', 'token', 'default', '--duration=10m'], { reject: false, timeout: 30_000 });
    t.is((await review(lab, { ca: newCaPem, token: fresh.stdout.trim() })).user, 'system:serviceaccount:default:default');
    const etcd = (cert: Buffer, key: Buffer) => new Promise<string>((resolve) => {
      const req = https.get({ host: lab.masters[0]!.address, port: 2379, servername: 'kubemaster', path: '/health', ca: readFileSync(pki('etcd-ca.crt')), cert, key, agent: false, timeout: 5000 },
        (res) => { res.resume(); resolve(`HTTP ${res.statusCode}`); });
      req.on('error', (e) => resolve(`error: ${e.message}`));
    });
    t.regex(await etcd(old['apiserver-etcd-client.crt']!, old['apiserver-etcd-client.key']!), /^error: .*(certificate|alert|socket hang up|ECONNRESET)/i, 'old etcd client pair');
    t.is(await etcd(readFileSync(pki('apiserver-etcd-client.crt')), readFileSync(pki('apiserver-etcd-client.key'))), 'HTTP 200');
    // the real controller-manager signs with the new CA, and never refused its signer file on any master
    const after = await signedByControllerManager(lab, tmp, 'rotation-probe-done');
    t.true((await opensslVerify(tmp, newCa.ca, after)).ok, 'signed by the new CA');
    for (const m of MASTERS) t.notRegex(lab.unitLog(m, 'kube-controller-manager'), /expected 1 certificate/, m);

    // the real kubelet and kube-proxy kept talking to the apiserver: no TLS or authentication error in their logs,
    // and the node's lease was renewed after the rotation ended
    const sinceText = since.toISOString().replace('T', ' ').slice(0, 19);
    const logs = await lab.exec('kubeminion1', ['journalctl', '-u', 'kubelet', '-u', 'kube-proxy', '--since', `${sinceText} UTC`, '--no-pager']);
    t.notRegex(logs.stdout, /unknown authority|\bUnauthorized\b|bad certificate|certificate has expired/i); // not the kubelet's config dump: cacheUnauthorizedTTL
    const ended = Date.now();
    let renewed = 0;
    for (let i = 0; i < 30 && renewed <= ended; i++) {
      const l = await execa('kubectl', ['--kubeconfig', admin, '-n', 'kube-node-lease', 'get', 'lease', 'kubeminion1', '-o', 'jsonpath={.spec.renewTime}'], { reject: false, timeout: 20_000 });
      renewed = l.exitCode === 0 ? Date.parse(l.stdout.trim()) : 0;
      if (renewed <= ended) await sleep(1000);
    }
    t.true(renewed > ended, 'the kubelet renewed its lease after the rotation');
    must(t, await runScript('verify', ['--inventory', lab.inventoryPath]));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test.serial('the comparison: the same rotation without its bundle phase (the new CA\'s certificates out while hosts trust only the old one) fails requests', async (t) => {
  t.timeout(10 * 60_000);
  const lab = await labP;
  const clients = pollers(lab);
  let r: Awaited<ReturnType<typeof runScript>>;
  let counts: PollCounts[];
  try {
    r = await runScript('renew', ['--inventory', lab.inventoryPath, '--rotate-ca', 'all', '--force'], { KUBETLS_FAULT: 'rotate-skip-bundle' });
  } finally {
    counts = await Promise.all(clients.map((c) => c.stop()));
  }
  t.log(`requests accepted/failed: kubelet kubeconfig ${counts[0]!.ok}/${counts[0]!.failed}, admin.kubeconfig ${counts[1]!.ok}/${counts[1]!.failed}; first: ${counts.flatMap((c) => c.errors.slice(0, 1)).join(' | ')}`);
  t.not(r.code, 0, 'the gates catch it and stop the roll');
  t.true(counts.some((c) => c.failed > 0), JSON.stringify(counts));
});
