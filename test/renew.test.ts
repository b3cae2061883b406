/**
 * renew.ts on a legacy lab with short-lived certificates: renewal rolled out and served, exactly one restart per
 * affected service, idempotent second run, drift fixed, a broken apiserver rolled back, and the lock.
 * The tests share one lab and run in order.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { parseCert } from '../lib/pki/read.ts';
import { editInventory, restarts } from './helpers/e2e.ts';
import { useLab } from './helpers/lab.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 2, profile: 'legacy' });

/** Serial of the certificate the lab's apiserver serves right now. */
async function servedSerial(lab: Awaited<typeof labP>): Promise<string> {
  const { servedCert } = await import('../lib/probe.ts');
  const { loadInventory } = await import('../lib/inventory/load.ts');
  return (await servedCert(loadInventory(lab.inventoryPath))).serial;
}
const localSerial = (lab: Awaited<typeof labP>, f: string) => parseCert(readFileSync(path.join(lab.pkiDir, f))).serial;
const allRestarts = (lab: Awaited<typeof labP>) => Object.fromEntries(lab.hosts.map((h) => [h.name, restarts(lab, h.name)]));

test.serial('certificates issued for 2 days are renewed once the inventory asks for 365, and the new ones are served', async (t) => {
  const lab = await labP;
  editInventory(lab, (d) => { d.pki.days = 2; d.pki.renew_before_days = 1; });
  for (const s of ['master.ts', 'minions.ts']) {
    const r = await runScript(s, ['--inventory', lab.inventoryPath]);
    t.is(r.code, 0, r.all);
  }
  const oldServed = await servedSerial(lab);
  const oldKubeconfig = lab.readFile('kubeminion1', '/var/lib/kubelet/kubeconfig');
  const before = allRestarts(lab);

  editInventory(lab, (d) => { d.pki.days = 365; d.pki.renew_before_days = 30; });
  const r = await runScript('renew.ts', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /== check\n.*server\.crt: expires in 1 d/);
  t.regex(r.stdout, /== renew\n/);
  t.regex(r.stdout, /== restart \(/);
  const served = await servedSerial(lab);
  t.not(served, oldServed);
  t.is(served, localSerial(lab, 'server.crt'));
  t.true(parseCert(readFileSync(path.join(lab.pkiDir, 'kubeminion1.crt'))).notAfter.getTime() - Date.now() > 300 * 86_400_000);
  t.not(lab.readFile('kubeminion1', '/var/lib/kubelet/kubeconfig'), oldKubeconfig);

  // each affected service restarted exactly once
  const after = allRestarts(lab);
  t.is(after.kubemaster['kube-apiserver'] - before.kubemaster['kube-apiserver'], 1);
  t.is(after.kubemaster['kube-controller-manager'] - before.kubemaster['kube-controller-manager'], 1);
  for (const m of ['kubeminion1', 'kubeminion2']) {
    t.is(after[m].kubelet - before[m].kubelet, 1, m);
    t.is(after[m]['kube-proxy'] - before[m]['kube-proxy'], 1, m);
  }
});

test.serial('every kubelet authenticates with its renewed certificate', async (t) => {
  const lab = await labP;
  const v = await runScript('verify.ts', ['--inventory', lab.inventoryPath, '--json']);
  t.is(v.code, 0, v.all);
  for (const m of ['kubeminion1', 'kubeminion2']) {
    // the stand-in kubelet logs each review; the last lines after its restart must be a success
    let log = '';
    for (let i = 0; i < 40; i++) {
      log = lab.unitLog(m, 'kubelet');
      const tail = log.trim().split('\n').slice(-3).join('\n');
      if (/authenticated as/.test(tail)) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    t.regex(log.trim().split('\n').slice(-3).join('\n'), new RegExp(`authenticated as ${m}`));
  }
});

test.serial('a second renewal run renews nothing, restarts nothing and exits 0', async (t) => {
  const lab = await labP;
  const before = allRestarts(lab);
  const r = await runScript('renew.ts', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /nothing to renew; next due: \S+\.crt in 33[34] d/);
  t.notRegex(r.all, /\$ (openssl|sftp|systemctl)/);
  t.deepEqual(allRestarts(lab), before);
});

test.serial('a SAN added to the inventory shows as drift in status and renew fixes it', async (t) => {
  const lab = await labP;
  editInventory(lab, (d) => { d.apiserver.dns.push('api.kubic.local'); });
  const s = await runScript('status.ts', ['--inventory', lab.inventoryPath, '--remote']);
  t.is(s.code, 1, s.all);
  t.regex(s.stdout, /^server\.crt .*drift: SAN added: DNS:api\.kubic\.local$/m);
  const before = allRestarts(lab);
  const r = await runScript('renew.ts', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /server\.crt: SAN added: DNS:api\.kubic\.local/);
  t.regex(r.stdout, /== restart \(kubemaster\)/, 'only the master is touched');
  const after = allRestarts(lab);
  t.deepEqual(after.kubeminion1, before.kubeminion1);
  t.is(after.kubemaster['kube-apiserver'] - before.kubemaster['kube-apiserver'], 1);
  const again = await runScript('status.ts', ['--inventory', lab.inventoryPath, '--remote']);
  t.is(again.code, 0, again.all);
});

test.serial('a renewal whose apiserver does not come back is rolled back and the old certificate is served again', async (t) => {
  const lab = await labP;
  const oldServed = await servedSerial(lab);
  editInventory(lab, (d) => { d.apiserver.ip.push('10.24.0.2'); });
  await lab.exec('kubemaster', ['sh', '-c', 'mkdir -p /etc/kubetls-lab/fail-next-start && touch /etc/kubetls-lab/fail-next-start/kube-apiserver']);
  const minionBefore = lab.readFile('kubeminion1', '/var/lib/kubelet/kubeconfig');
  const r = await runScript('renew.ts', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 1, r.all);
  t.regex(r.all, /\[kubemaster\] WARNING: rolling back \d+ file\(s\)/);
  t.regex(r.all, /after rollback 127\.\d+\.0\.1:6443 serves serial [0-9A-F]+ again/);
  t.regex(r.stdout, /^kubemaster\s+FAILED\s+.*restart\s+.*\(rolled back\)/m);
  t.is(await servedSerial(lab), oldServed);
  t.not(localSerial(lab, 'server.crt'), oldServed, 'the local PKI keeps the new certificate');
  t.is(lab.readFile('kubeminion1', '/var/lib/kubelet/kubeconfig'), minionBefore, 'minions were not touched');

  // the next run finishes the job: the host that failed is still owed the new files
  const next = await runScript('renew.ts', ['--inventory', lab.inventoryPath]);
  t.is(next.code, 0, next.all);
  t.regex(next.stdout, /left behind by an earlier run: kubemaster/);
  t.is(await servedSerial(lab), localSerial(lab, 'server.crt'));
});

test.serial('two renewal runs at once: one does the work, the other exits 75 naming the holder', async (t) => {
  const lab = await labP;
  editInventory(lab, (d) => { d.apiserver.ip.push('10.24.0.3'); });
  const [a, b] = await Promise.all([runScript('renew.ts', ['--inventory', lab.inventoryPath]), runScript('renew.ts', ['--inventory', lab.inventoryPath])]);
  t.deepEqual([a.code, b.code].sort(), [0, 75], a.all + b.all);
  t.regex((a.code === 75 ? a : b).stderr, /another kubetls run holds .*\.kubetls\.lock: pid \d+ \(renew\.ts\)/);
});

test.serial('--prometheus reports the last successful renewal run', async (t) => {
  const lab = await labP;
  const out = path.join(lab.dir, 'kubetls.prom');
  const r = await runScript('status.ts', ['--inventory', lab.inventoryPath, '--prometheus', out]);
  t.is(r.code, 0, r.all);
  const last = Number(/^kubetls_renew_last_success_timestamp_seconds (\d+)$/m.exec(readFileSync(out, 'utf8'))![1]);
  t.true(Date.now() / 1000 - last < 600);
});

const sha = (lab: Awaited<typeof labP>, f: string) => createHash('sha256').update(readFileSync(path.join(lab.pkiDir, f))).digest('hex');

test.serial('renew.ts --cert names one certificate: without --force nothing is due, with --force only it is renewed and only its readers restart', async (t) => {
  const lab = await labP;
  const inv = ['--inventory', lab.inventoryPath];
  const calm = await runScript('renew.ts', [...inv, '--cert', 'kubeminion1']);
  t.is(calm.code, 0, calm.all);
  t.regex(calm.stdout, /nothing to renew/);
  const before = allRestarts(lab);
  const server = localSerial(lab, 'server.crt');
  const minion = localSerial(lab, 'kubeminion1.crt');
  const r = await runScript('renew.ts', [...inv, '--cert', 'kubeminion1', '--force', '--json']);
  t.is(r.code, 0, r.all);
  const out = JSON.parse(r.stdout) as { apiVersion: string; ok: boolean; renewed: string[]; hosts: { host: string; restarted: string[] }[] };
  t.like(out, { apiVersion: 'kubetls/v1', ok: true, renewed: ['kubeminion1.crt'] });
  t.deepEqual(out.hosts.map((h) => h.host), ['kubeminion1']);
  t.not(localSerial(lab, 'kubeminion1.crt'), minion);
  t.is(localSerial(lab, 'server.crt'), server);
  const after = allRestarts(lab);
  t.deepEqual(after.kubemaster, before.kubemaster, 'the master is not touched');
  t.deepEqual(after.kubeminion2, before.kubeminion2);
  t.is(after.kubeminion1.kubelet - before.kubeminion1.kubelet, 1);
  t.is(after.kubeminion1['kube-proxy'] - before.kubeminion1['kube-proxy'], 1);
});

test.serial('renew.ts --cert with a name that is no certificate is exit 2 and lists the names', async (t) => {
  const lab = await labP;
  const r = await runScript('renew.ts', ['--inventory', lab.inventoryPath, '--cert', 'kubeminion9', '--force']);
  t.is(r.code, 2, r.all);
  t.regex(r.stderr, /--cert names no certificate of this inventory: kubeminion9 \(known: server, kubeminion1, kubeminion2, tokens\)/);
  const f = await runScript('renew.ts', ['--inventory', lab.inventoryPath, '--force']);
  t.is(f.code, 2);
  t.regex(f.stderr, /--force goes with --cert/);
});

test.serial('renew.ts --dry-run lists what would be renewed, where it goes and what restarts, and changes nothing', async (t) => {
  const lab = await labP;
  editInventory(lab, (d) => { d.apiserver.dns.push('dry.example'); });
  const before = sha(lab, 'server.crt');
  const restartsBefore = allRestarts(lab);
  const r = await runScript('renew.ts', ['--inventory', lab.inventoryPath, '--dry-run']);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /server\.crt: SAN added: DNS:dry\.example/);
  t.regex(r.stdout, /\[kubemaster\] would install \/srv\/kubernetes\/server\.crt, restarting kube-apiserver/);
  t.regex(r.stdout, /\[kubemaster\] would install \/srv\/kubernetes\/server\.key, restarting kube-apiserver, kube-controller-manager/);
  t.notRegex(r.stdout, /\[kubeminion\d\] would install/);
  t.is(sha(lab, 'server.crt'), before);
  t.deepEqual(allRestarts(lab), restartsBefore);
  t.is((await runScript('renew.ts', ['--inventory', lab.inventoryPath])).code, 0);
});

test.serial('renew.ts --only renews what reaches those hosts now and leaves the others to the next run', async (t) => {
  const lab = await labP;
  const inv = ['--inventory', lab.inventoryPath];
  const r = await runScript('renew.ts', [...inv, '--cert', 'tokens', '--force', '--only', 'kubemaster']);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /not now \(--only\): kubeminion1, kubeminion2/);
  t.deepEqual(JSON.parse(readFileSync(path.join(lab.pkiDir, '.renew-pending.json'), 'utf8')), ['kubeminion1', 'kubeminion2']);
  // a token rotation: the master accepts both tokens until the minions have the new one
  t.regex(r.stdout, /the old token stays valid until kubeminion1, kubeminion2 have the new one/);
  t.is(lab.readFile('kubemaster', '/srv/kubernetes/tokens.csv').split('\n').filter(Boolean).length, 2);
  const next = await runScript('renew.ts', inv);
  t.is(next.code, 0, next.all);
  t.regex(next.stdout, /left behind by an earlier run: kubeminion1, kubeminion2/);
  t.regex(next.stdout, /== retire the old token/);
  t.is(lab.readFile('kubemaster', '/srv/kubernetes/tokens.csv').split('\n').filter(Boolean).length, 1);
  const v = await runScript('verify.ts', inv);
  t.is(v.code, 0, v.all);
});

test.serial('a token rotation refuses no request from a client using the kubeconfig\'s token, and retires the old token at the end', async (t) => {
  const lab = await labP;
  const inv = ['--inventory', lab.inventoryPath];
  const { readKubeconfig } = await import('../lib/kubeconfig.ts');
  const tokenOf = (host: string) => readKubeconfig(lab.readFile(host, '/var/lib/kubelet/kubeconfig')).token!;
  const ask = async (token: string) => (await execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', '--cacert', path.join(lab.pkiDir, 'ca.crt'),
    '-H', `Authorization: Bearer ${token}`, `https://${lab.master.address}:6443/version`], { reject: false })).stdout;
  const old = tokenOf('kubeminion1');
  t.is(await ask(old), '200');
  // a token-only client on each minion, rereading its kubeconfig before every request (bounded: one every 100 ms)
  const codes: string[] = [];
  let running = true;
  const poll = (async () => {
    for (let i = 0; running && i < 3000; i++) {
      for (const m of ['kubeminion1', 'kubeminion2']) codes.push(await ask(tokenOf(m)));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const r = await runScript('renew.ts', [...inv, '--cert', 'tokens', '--force']);
  running = false;
  await poll;
  // the property first (ava reports the first failed assertion): no request refused while the token changed
  t.false(codes.includes('401'), `refused during the rotation: ${codes.filter((c) => c === '401').length} of ${codes.length} requests`);
  t.true(codes.includes('200'), 'the client was served during the rotation');
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /the old token stays valid \(second line\) until every kubeconfig has the new one/);
  t.regex(r.stdout, /== retire the old token/);
  const now = tokenOf('kubeminion1');
  t.not(now, old);
  t.is(tokenOf('kubeminion2'), now);
  t.is(lab.readFile('kubemaster', '/srv/kubernetes/tokens.csv'), `${now},kubelet,kubelet\n`, 'the master holds the new token only');
  t.is(await ask(old), '401', 'the old token is refused once retired');
  t.is(await ask(now), '200');
  const again = await runScript('renew.ts', inv);
  t.regex(again.stdout, /nothing to renew/);
});
