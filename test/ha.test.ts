// HA: three masters, each running stacked etcd and the real v1.37.2 control plane under real systemd,
// behind Debian's real haproxy on a host of its own (kubelb, TCP mode, /readyz checks over TLS). Every claim of a
// rolling renewal is measured here: a client polling through the balancer counts its failed requests, and the real
// journals of the masters say when each unit was down.
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import type { Lab } from '../lab/index.ts';
import { readKubeconfig } from '../lib/kubeconfig.ts';
import { parseCert } from '../lib/pki/read.ts';
import { remoteFile, restarts, sha256 } from './helpers/e2e.ts';
import { useLab } from './helpers/lab.ts';
import { pollEvery } from './helpers/poll.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 1, profile: 'modern', masters: 3 });
const MASTERS = ['kubemaster', 'kubemaster2', 'kubemaster3'];

/**
 * A client of the balancer: GET /version every 100 ms with the minion's certificate (as its kubelet authenticates),
 * the apiserver verified for the endpoint's name, a new connection each time. Bounded: it stops by itself after 10
 * minutes. `stop()` gives what it counted, and the first few errors.
 */
function poll(lab: Lab) {
  const pki = (f: string) => readFileSync(join(lab.pkiDir, f));
  const opts = { host: lab.lb!.address, port: 6443, servername: lab.lb!.name, path: '/version', ca: pki('ca.crt'),
    cert: pki('kubeminion1.crt'), key: pki('kubeminion1.key'), agent: false as const, timeout: 5000 };
  return pollEvery(() => new Promise<string | undefined>((resolve) => {
    const req = https.get(opts, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 5 s')));
    req.on('error', (e) => resolve(e.message));
  }));
}

/** Journal positions of every master now, for restarts() after a run. */
const marks = (lab: Lab) => Object.fromEntries(MASTERS.map((m) => [m, lab.journal(m).length]));

/** Pairs of masters whose `unit` was down at the same time since `since` (from their real journals). */
function overlapping(lab: Lab, unit: string, since: string): string[] {
  const windows = MASTERS.flatMap((m) => lab.downWindows(m, unit).filter((w) => w.to > since).map((w) => ({ m, ...w })));
  const out: string[] = [];
  for (const a of windows) for (const b of windows) if (a.m < b.m && a.from < b.to && b.from < a.to) out.push(`${a.m} ${a.from}–${a.to} / ${b.m} ${b.from}–${b.to}`);
  return out;
}

/** What haproxy says of each master: `name → UP|DOWN…` (its stats socket, read inside kubelb). */
async function balancerView(lab: Lab): Promise<Record<string, string>> {
  const r = await lab.exec('kubelb', ['sh', '-c', 'echo "show stat" | socat stdio /run/haproxy/admin.sock']);
  const rows = r.stdout.split('\n').filter((l) => l.startsWith('masters,') && !l.startsWith('masters,BACKEND'));
  return Object.fromEntries(rows.map((l) => { const f = l.split(','); return [f[1]!, f[17]!]; }));
}

const servedBy = async (lab: Lab, host: string) => {
  const { servedCert } = await import('../lib/probe.ts');
  const { loadInventory } = await import('../lib/inventory/load.ts');
  const { masterTarget } = await import('../lib/inventory.ts');
  const inv = loadInventory(lab.inventoryPath);
  return (await servedCert(inv, masterTarget(inv, inv.masters.find((m) => m.name === host)!))).serial;
};
const localSerial = (lab: Lab, file: string) => parseCert(readFileSync(join(lab.pkiDir, file))).serial;

const must = (t: ExecutionContext, r: { code: number; all: string }, code = 0) => t.is(r.code, code, r.all.split('\n').slice(-40).join('\n'));

test.serial('master.ts forms three masters with stacked etcd behind haproxy; every client but the masters\' own names the endpoint; verify passes through it and at each master', async (t) => {
  const lab = await labP;
  const first = await runScript('master', ['--inventory', lab.inventoryPath]);
  must(t, first);
  // a new etcd cluster: its members start together, or none of them would get its quorum
  t.regex(first.all, /a new etcd cluster \(no member answers, none holds data\): kubemaster, kubemaster2, kubemaster3 at once/);
  must(t, await runScript('minions', ['--inventory', lab.inventoryPath]));
  // one server certificate names every master and the balancer, by name and address
  const server = parseCert(readFileSync(join(lab.pkiDir, 'server.crt')));
  for (const h of [...lab.masters, lab.lb!]) {
    t.true(server.sans.includes(`DNS:${h.name}`), h.name);
    t.true(server.sans.includes(`IP:${h.address}`), h.address);
  }
  // the kubelet and kube-proxy go through the balancer; each master's controller-manager and scheduler to itself
  for (const f of ['/var/lib/kubelet/kubeconfig', '/var/lib/kube-proxy/kubeconfig']) {
    t.is(readKubeconfig(lab.readFile('kubeminion1', f)).server, 'https://kubelb:6443', f);
  }
  for (const m of MASTERS) {
    for (const f of ['controller-manager.conf', 'scheduler.conf']) t.is(readKubeconfig(lab.readFile(m, `/srv/kubernetes/${f}`)).server, `https://${m}:6443`, `${m} ${f}`);
    t.regex(lab.readFile(m, '/etc/kubernetes/apiserver'), /--shutdown-delay-duration=8s/);
    t.is((await lab.exec(m, ['systemctl', 'is-active', 'etcd', 'kube-apiserver'])).stdout.trim(), 'active\nactive', m);
  }
  // sa.key is the same on every master: a token one signs, the others accept
  t.is(new Set(await Promise.all(MASTERS.map(async (m) => (await remoteFile(lab, m, '/srv/kubernetes/sa.key'))?.sha))).size, 1);
  // haproxy's own view: every master passed its /readyz check
  t.deepEqual(await balancerView(lab), { kubemaster: 'UP', kubemaster2: 'UP', kubemaster3: 'UP' });
  // the real controller-manager and scheduler elect one leader among the three (a Lease the real binaries hold)
  const admin = join(lab.pkiDir, 'admin.kubeconfig');
  t.is(readKubeconfig(readFileSync(admin, 'utf8')).server, `https://${lab.lb!.address}:6443`);
  for (const lease of ['kube-controller-manager', 'kube-scheduler']) {
    let holder = '';
    for (let i = 0; i < 60 && !holder; i++) {
      const r = await execa('kubectl', ['--kubeconfig', admin, '-n', 'kube-system', 'get', 'lease', lease, '-o', 'jsonpath={.spec.holderIdentity}'], { reject: false, timeout: 20000 });
      holder = r.exitCode === 0 ? r.stdout.trim() : '';
      if (!holder) await sleep(1000);
    }
    t.regex(holder, /^kubemaster[23]?_/, lease);
  }
  const v = await runScript('verify', ['--inventory', lab.inventoryPath]);
  must(t, v);
  for (const m of MASTERS) t.regex(v.all, new RegExp(`served certificate +${m}:6443 +ok`), m);
  t.regex(v.all, /served certificate +kubelb:6443 +ok .*through the balancer/);
  t.regex(v.all, /GET \/version +cert kubeminion1 +ok/);
  const s = await runScript('status', ['--inventory', lab.inventoryPath, '--remote']);
  for (const m of lab.masters) t.regex(s.all, new RegExp(`server\\.crt +${m.address.replaceAll('.', '\\.')}:6443 \\(served\\)`), m.name);
  // a second run of either script changes nothing
  const again = await runScript('master', ['--inventory', lab.inventoryPath]);
  must(t, again);
  t.regex(again.all, /nothing to do: every host already up to date/);
});

test.serial('renew --cert etcd-server --force rolls etcd one master at a time: 0 failed requests through haproxy, each member restarted once, never two down', async (t) => {
  const lab = await labP;
  const from = marks(lab);
  const since = new Date().toISOString();
  const client = poll(lab);
  const r = await runScript('renew', ['--inventory', lab.inventoryPath, '--cert', MASTERS.map((m) => `etcd-server-${m}`).join(','), '--force']);
  const counts = await client.stop();
  must(t, r);
  t.regex(r.all, /one at a time: kubemaster → kubemaster2 → kubemaster3/);
  t.is(counts.failed, 0, counts.errors.join('\n'));
  t.true(counts.ok > 20, `${counts.ok} requests`);
  for (const m of MASTERS) t.deepEqual(restarts(lab, m, from[m]), { etcd: 1 }, m);
  t.deepEqual(overlapping(lab, 'etcd', since), []);
  for (const m of MASTERS) t.is((await remoteFile(lab, m, '/srv/kubernetes/etcd-server.crt'))?.sha, sha256(readFileSync(join(lab.pkiDir, `etcd-server-${m}.crt`))), m);
});

test.serial('renew --cert server --force killed (kill -9) after the second master, then run again: the second run restarts only the third; 0 failed requests through haproxy all along, never two apiservers down', async (t) => {
  t.timeout(9 * 60_000); // three real apiserver restarts, each gated (about 10 s each since --shutdown-send-retry-after; 70 s before)
  const lab = await labP;
  const from = marks(lab);
  const since = new Date().toISOString();
  const old = await servedBy(lab, 'kubemaster3');
  const client = poll(lab);
  let counts;
  try {
    const killed = await runScript('renew', ['--inventory', lab.inventoryPath, '--cert', 'server', '--force'], { KUBETLS_FAULT: 'rolled-2' });
    t.not(killed.code, 0, killed.all);
    // the checks after each restart ask that master itself, not whichever one the balancer picks
    for (const m of ['kubemaster', 'kubemaster2']) t.regex(killed.all, new RegExp(`--resolve ${m}:6443:127\\.\\d+\\.0\\.\\d+ https://${m}:6443/version`), m);
    const renewed = localSerial(lab, 'server.crt');
    t.not(renewed, old);
    t.is(await servedBy(lab, 'kubemaster'), renewed);
    t.is(await servedBy(lab, 'kubemaster2'), renewed);
    t.is(await servedBy(lab, 'kubemaster3'), old, 'the third master was not reached');
    t.deepEqual(JSON.parse(readFileSync(join(lab.pkiDir, '.renew-pending.json'), 'utf8')), ['kubemaster3'], 'only the third is owed');
    const mid = marks(lab);
    const rerun = await runScript('renew', ['--inventory', lab.inventoryPath]);
    must(t, rerun);
    t.regex(rerun.all, /left behind by an earlier run: kubemaster3/);
    t.deepEqual(restarts(lab, 'kubemaster', mid.kubemaster), {});
    t.deepEqual(restarts(lab, 'kubemaster2', mid.kubemaster2), {});
    t.is(restarts(lab, 'kubemaster3', mid.kubemaster3)['kube-apiserver'], 1);
    t.is(await servedBy(lab, 'kubemaster3'), renewed);
  } finally {
    counts = await client.stop();
  }
  t.is(counts.failed, 0, counts.errors.join('\n'));
  t.true(counts.ok > 200, `${counts.ok} requests`); // about 50 s of polling at 10 per second (the roll is short since --shutdown-send-retry-after)
  for (const m of MASTERS) t.is(restarts(lab, m, from[m])['kube-apiserver'], 1, m);
  t.deepEqual(overlapping(lab, 'kube-apiserver', since), []);
  t.false(existsSync(join(lab.pkiDir, '.renew-pending.json')));
  const third = await runScript('renew', ['--inventory', lab.inventoryPath]);
  must(t, third);
  t.regex(third.all, /nothing to renew/);
});

test.serial('a master that fails its gate stops the roll: it is rolled back, the masters after it keep their working state; fixed, the next run finishes them', async (t) => {
  const lab = await labP;
  const drop = '/etc/systemd/system/etcd.service.d/90-kubetls-test.conf';
  const before = Object.fromEntries(await Promise.all(MASTERS.map(async (m) => [m, (await remoteFile(lab, m, '/srv/kubernetes/etcd-server.crt'))!.sha] as const)));
  lab.writeFile('kubemaster2', drop, '[Service]\nExecStartPre=/bin/false\n');
  await lab.exec('kubemaster2', ['systemctl', 'daemon-reload']);
  try {
    const r = await runScript('renew', ['--inventory', lab.inventoryPath, '--cert', MASTERS.map((m) => `etcd-server-${m}`).join(','), '--force']);
    must(t, r, 1);
    t.regex(r.all, /kubemaster2 +FAILED .* restart .*rolled back/);
    t.regex(r.all, /kubemaster3 +FAILED .*not started: kubemaster2 failed/);
    t.is((await remoteFile(lab, 'kubemaster', '/srv/kubernetes/etcd-server.crt'))?.sha, sha256(readFileSync(join(lab.pkiDir, 'etcd-server-kubemaster.crt'))));
    t.is((await remoteFile(lab, 'kubemaster2', '/srv/kubernetes/etcd-server.crt'))?.sha, before.kubemaster2, 'rolled back');
    t.is((await remoteFile(lab, 'kubemaster3', '/srv/kubernetes/etcd-server.crt'))?.sha, before.kubemaster3, 'never touched');
    t.is((await lab.exec('kubemaster3', ['systemctl', 'is-active', 'etcd'])).stdout.trim(), 'active');
  } finally {
    await lab.exec('kubemaster2', ['rm', '-f', drop]);
    await lab.exec('kubemaster2', ['systemctl', 'daemon-reload']);
  }
  const from = marks(lab);
  const r = await runScript('renew', ['--inventory', lab.inventoryPath]);
  must(t, r);
  t.deepEqual(restarts(lab, 'kubemaster', from.kubemaster), {});
  for (const m of ['kubemaster2', 'kubemaster3']) {
    t.deepEqual(restarts(lab, m, from[m]), { etcd: 1 }, m);
    t.is((await remoteFile(lab, m, '/srv/kubernetes/etcd-server.crt'))?.sha, sha256(readFileSync(join(lab.pkiDir, `etcd-server-${m}.crt`))), m);
  }
});

test.serial('one master down during master.ts: the run exits 1 naming it, the other two are done and serving; with it back, the next run finishes it alone', async (t) => {
  const lab = await labP;
  // something master.ts repairs on every master: the scheduler's flags, edited by hand
  for (const m of MASTERS) await lab.exec(m, ['sed', '-i', 's/^KUBE_SCHEDULER_ARGS=.*/KUBE_SCHEDULER_ARGS=""/', '/etc/kubernetes/scheduler']);
  await lab.stopHost('kubemaster3', { sshdOnly: true });
  let from = marks(lab);
  try {
    const r = await runScript('master', ['--inventory', lab.inventoryPath]);
    must(t, r, 1);
    t.regex(r.all, /kubemaster3 +FAILED +- +connect/);
    t.regex(r.all, /kubemaster +ok/);
    t.regex(r.all, /kubemaster2 +ok/);
    for (const m of ['kubemaster', 'kubemaster2']) {
      t.is(await servedBy(lab, m), localSerial(lab, 'server.crt'), `${m} serves`);
      t.deepEqual(restarts(lab, m, from[m]), { 'kube-scheduler': 1 }, m);
      t.regex(lab.readFile(m, '/etc/kubernetes/scheduler'), /KUBE_SCHEDULER_ARGS="--kubeconfig=/);
    }
    t.regex(lab.readFile('kubemaster3', '/etc/kubernetes/scheduler'), /KUBE_SCHEDULER_ARGS=""/);
    // the minions wait until every master is done (what they would get may be what kubemaster3 lacks)
    t.regex(r.all, /not touching kubeminion1: the control plane failed/);
    t.true(JSON.parse(readFileSync(join(lab.pkiDir, '.renew-pending.json'), 'utf8')).includes('kubemaster3'));
  } finally {
    await lab.startHost('kubemaster3');
  }
  from = marks(lab);
  const r = await runScript('master', ['--inventory', lab.inventoryPath]);
  must(t, r);
  t.deepEqual(restarts(lab, 'kubemaster', from.kubemaster), {});
  t.deepEqual(restarts(lab, 'kubemaster2', from.kubemaster2), {});
  t.deepEqual(restarts(lab, 'kubemaster3', from.kubemaster3), { 'kube-scheduler': 1 });
  must(t, await runScript('verify', ['--inventory', lab.inventoryPath]));
});

test.serial('every apiserver answering slowly at once (all three paused 4 s, as two busy cores can make them) takes no master out of the balancer, and no request fails', async (t) => {
  // the balancer fails a check on an answer that is not 200, not on a slow one (lab/haproxy.ts). With `inter 1s fall 2`
  // and no `timeout check`, this took every master out at once ("backend masters has no server available!") and 11 of
  // 42 requests failed with `Client network socket disconnected before secure TLS connection was established`.
  const lab = await labP;
  const since = new Date(Date.now() - 1000).toISOString().slice(0, 19).replace('T', ' ');
  const client = poll(lab);
  await sleep(1000);
  const pause = (signal: string) => Promise.all(MASTERS.map((m) => lab.exec(m, ['systemctl', 'kill', `--signal=${signal}`, 'kube-apiserver'])));
  try {
    await pause('SIGSTOP');
    await sleep(4000);
  } finally {
    await pause('SIGCONT');
  }
  await sleep(3000);
  const counts = await client.stop();
  const log = await lab.exec('kubelb', ['journalctl', '-u', 'haproxy', '--since', since, '--no-pager']);
  t.log(`requests: ${counts.ok} ok, ${counts.failed} failed`);
  t.deepEqual(log.stdout.split('\n').filter((l) => /is DOWN|no server available/.test(l)), []);
  t.is(counts.failed, 0, counts.errors.join('\n'));
  t.true(counts.ok > 20, JSON.stringify(counts));
  t.deepEqual(Object.values(await balancerView(lab)), ['UP', 'UP', 'UP']);
});

test.serial('the polling client does count failures: all three apiservers restarted at once, as a tool without rolling would, fail requests through haproxy', async (t) => {
  const lab = await labP;
  const client = poll(lab);
  await sleep(1000);
  await Promise.all(MASTERS.map((m) => lab.exec(m, ['systemctl', 'restart', 'kube-apiserver'])));
  await sleep(3000);
  const counts = await client.stop();
  // measured: 647 of 978 failed, nearly all `Client network socket disconnected before secure TLS connection was
  // established` (haproxy accepted the connection and had no master to give it to)
  t.true(counts.failed > 10, JSON.stringify(counts));
});

test.serial('a running cluster is never restarted all at once: etcd unreachable from the operator\'s machine, but holding data on the masters, still rolls one at a time', async (t) => {
  // as a firewall between the operator and port 2379 would: the probe from here fails (no etcd client files to
  // present), while each master holds etcd data, which rollControl asks over SSH
  const lab = await labP;
  const { loadInventory } = await import('../lib/inventory/load.ts');
  const { rollControl } = await import('../lib/rollout/roll.ts');
  const inv = loadInventory(lab.inventoryPath);
  const key = join(lab.pkiDir, 'apiserver-etcd-client.key');
  const { renameSync } = await import('node:fs');
  renameSync(key, `${key}.away`);
  const spans: [string, number, number][] = [];
  try {
    const outcomes = await rollControl(inv, inv.masters, {}, async (r) => {
      const start = Date.now();
      await sleep(300);
      spans.push([r.host.name, start, Date.now()]);
    });
    t.deepEqual(outcomes.map((o) => [o.host, o.failed ?? 'ok']), MASTERS.map((m) => [m, 'ok']));
  } finally {
    renameSync(`${key}.away`, key);
  }
  t.deepEqual(spans.map(([m]) => m), MASTERS);
  for (let i = 1; i < spans.length; i++) t.true(spans[i]![1] >= spans[i - 1]![2], `${spans[i]![0]} started before ${spans[i - 1]![0]} ended`);
});

test.serial('a control plane not ready where the minions reach it after its restarts stops renew before the minions: each is left untouched and owed, and the next run finishes it', async (t) => {
  t.timeout(300_000);
  const lab = await labP;
  const lb = lab.lb!;
  const deployed = '/srv/kubernetes/kubeminion1.crt';
  const local = join(lab.pkiDir, 'kubeminion1.crt');
  const before = (await remoteFile(lab, 'kubeminion1', deployed))?.sha;
  t.is(before, sha256(readFileSync(local)));
  const from = marks(lab);
  const minionFrom = lab.journal('kubeminion1').length;
  // the balancer, the one address the minions use, is down while kubemaster's etcd is restarted: every master is up
  // and passes its own gate, but no minion could reach any of them
  await lab.exec('kubelb', ['systemctl', 'stop', 'haproxy']);
  let r: Awaited<ReturnType<typeof runScript>>;
  try {
    r = await runScript('renew', ['--inventory', lab.inventoryPath, '--cert', 'etcd-server-kubemaster,kubeminion1', '--force']);
  } finally {
    await lab.exec('kubelb', ['systemctl', 'start', 'haproxy']);
  }
  must(t, r, 1);
  t.deepEqual(restarts(lab, 'kubemaster', from.kubemaster), { etcd: 1 });
  t.regex(r.all, new RegExp(`the control plane is not ready after its restarts: ${lb.name} \\(${lb.address.replace(/\./g, '\\.')}:6443\\) is not ready after 60 s`));
  t.regex(r.all, /not touching kubeminion1: they keep their current, still valid certificates/);
  t.deepEqual(lab.journal('kubeminion1').slice(minionFrom), [], 'nothing was restarted on the minion');
  t.is((await remoteFile(lab, 'kubeminion1', deployed))?.sha, before, 'nor its certificate replaced');
  t.not(sha256(readFileSync(local)), before, 'renewed here, owed to the minion');
  t.deepEqual(JSON.parse(readFileSync(join(lab.pkiDir, '.renew-pending.json'), 'utf8')), ['kubeminion1']);
  // the balancer back (haproxy's checks see every master ready again): cron's next renew finishes the minion
  for (let i = 0; i < 60 && Object.values(await balancerView(lab).catch(() => ({}))).filter((v) => v === 'UP').length < 3; i++) await sleep(500);
  const again = await runScript('renew', ['--inventory', lab.inventoryPath]);
  must(t, again);
  t.is((await remoteFile(lab, 'kubeminion1', deployed))?.sha, sha256(readFileSync(local)));
  t.false(existsSync(join(lab.pkiDir, '.renew-pending.json')));
});

test.serial('every etcd member\'s certificates expired (a year without cron): renew reissues them and restarts every member together, and the cluster comes back', async (t) => {
  t.timeout(600_000);
  const lab = await labP;
  const openssl = await import('../lib/pki/openssl.ts');
  const p = (f: string) => join(lab.pkiDir, f);
  const members = ['kubemaster', 'kubemaster2', 'kubemaster3'];
  // each member's server and peer pair signed again by the etcd CA, with its own key and kubetls's own signing, but
  // valid until 90 s from now only: the local PKI and the members hold them, as after a year of certificates that
  // were never renewed
  const until = new Date(Date.now() + 90_000);
  for (const m of members) {
    for (const kind of ['server', 'peer']) {
      const name = `etcd-${kind}-${m}`;
      await t.notThrowsAsync(openssl.signCsr({ csr: p(`${name}.csr`), ca: p('etcd-ca.crt'), caKey: p('etcd-ca.key'), extfile: p('openssl.cnf'),
        extensions: `ext_${name.replace(/-/g, '_')}`, days: (until.getTime() - Date.now()) / 86_400_000, out: p(`${name}.crt`) }), name);
      lab.writeFile(m, `/srv/kubernetes/etcd-${kind}.crt`, readFileSync(p(`${name}.crt`)), { mode: 0o600, uid: lab.uids.etcd, gid: lab.uids.etcdGid });
    }
  }
  // the cluster runs on them (its members started together), then they expire, then every member restarts: none can
  // talk to another any more, and etcd stays down on every master
  await Promise.all(members.map((m) => lab.exec(m, ['systemctl', 'restart', 'etcd'])));
  await sleep(Math.max(0, until.getTime() - Date.now()) + 3000);
  await Promise.all(members.map((m) => lab.exec(m, ['systemctl', 'restart', '--no-block', 'etcd'])));
  await sleep(5000);
  const health = async (m: string) => (await execa('etcdctl', ['--endpoints', `https://${lab.host(m).address}:2379`, '--cacert', p('etcd-ca.crt'),
    '--cert', p('apiserver-etcd-client.crt'), '--key', p('apiserver-etcd-client.key'), '--command-timeout=5s', 'endpoint', 'health'],
  { reject: false, env: { ETCDCTL_API: '3' }, timeout: 20_000 })).exitCode;
  t.deepEqual(await Promise.all(members.map(health)), [1, 1, 1], 'no member is healthy');
  // cron's renew: the six certificates are expired, so reissued; no member is healthy, so every member at once
  const from = marks(lab);
  const since = new Date().toISOString();
  const r = await runScript('renew', ['--inventory', lab.inventoryPath]);
  must(t, r);
  t.regex(r.all, /no etcd member is healthy \(none answers from here; the peer certificates of .*kubemaster.* have expired\): kubemaster, kubemaster2, kubemaster3 at once/);
  // renew restarted each member once: one restart in its log, one restart's "Stopped etcd" in the member's journal
  // since it began, and etcd started since. (The start job the test left pending is still running when renew installs
  // the files, and etcd reads its certificate files at every handshake, so that process may come up on the new files
  // just before renew restarts it: one more start that finishes, but no restart of renew's.)
  for (const m of members) {
    t.is(r.all.split('\n').filter((l) => l.includes(`[${m}] $ systemctl restart etcd`)).length, 1, `${m}: renew restarted etcd once`);
    t.is(lab.restartStops(m, 'etcd').filter((x) => x > since).length, 1, `${m}: etcd restarted once (its journal)`);
    t.true((restarts(lab, m, from[m]).etcd ?? 0) >= 1, `${m}: etcd started since`);
  }
  t.deepEqual(await Promise.all(members.map(health)), [0, 0, 0], 'every member healthy again');
  const nodes = await execa('kubectl', ['--kubeconfig', p('admin.kubeconfig'), 'get', 'nodes', '-o', 'name'], { reject: false, timeout: 30_000 });
  t.is(nodes.stdout.trim(), 'node/kubeminion1', nodes.stderr);
  must(t, await runScript('verify', ['--inventory', lab.inventoryPath]));
  t.regex((await runScript('renew', ['--inventory', lab.inventoryPath])).stdout, /nothing to renew/);
});
