/**
 * The whole recipe on a legacy lab over real SSH as root: master.ts, minions.ts, verify.ts; the recipe's own curl
 * commands (CA-verified); kubectl and @kubernetes/client-node as real clients; idempotency; host failures.
 * The tests share one lab and run in order.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa, execaSync } from 'execa';
import { editInventory, remoteFile, restarts, sha256 } from './helpers/e2e.ts';
import { useLab } from './helpers/lab.ts';
import { runScript } from './helpers/run.ts';

const labP = useLab(test, { minions: 2, profile: 'legacy' });

test.serial('a minion that is down is named in the summary while the others finish', async (t) => {
  const lab = await labP;
  await lab.stopHost('kubeminion2');
  const r = await runScript('master.ts', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 1, r.all);
  t.regex(r.stdout, /^kubemaster\s+ok\s+inspect, record restarts, install PKI, configure, restart/m);
  t.regex(r.stdout, /^kubeminion1\s+ok\s+inspect, install PKI/m);
  t.regex(r.stdout, /^kubeminion2\s+FAILED\s+-\s+connect\s+ssh root@127\.\d+\.0\.3:22: .*ECONNREFUSED/m);
  t.regex(r.stdout, /1 host\(s\) failed: rerun to finish them/);
  t.truthy(await remoteFile(lab, 'kubeminion1', '/srv/kubernetes/kubeminion1.key'));
});

test.serial('a rerun after the host came back finishes it and leaves the others alone', async (t) => {
  const lab = await labP;
  await lab.startHost('kubeminion2');
  const before = restarts(lab, 'kubemaster');
  const r = await runScript('master.ts', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /\[kubeminion2\] \$ sftp put .*kubeminion2\.key → \/srv\/kubernetes\/kubeminion2\.key \(root:root 0600\)/);
  t.notRegex(r.stdout, /\[kubemaster\] \$ sftp put/);
  t.notRegex(r.stdout, /\[kubeminion1\] \$ sftp put/);
  t.deepEqual(restarts(lab, 'kubemaster'), before);
});

test.serial('minions.ts configures every minion and the kubelets authenticate', async (t) => {
  const lab = await labP;
  const r = await runScript('minions.ts', ['--inventory', lab.inventoryPath]);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /\[kubeminion1\] \$ systemctl restart kubelet/);
  t.regex(r.stdout, /\[kubeminion1\] \$ systemctl restart kube-proxy/);
  for (const m of ['kubeminion1', 'kubeminion2']) {
    t.deepEqual(restarts(lab, m), { kubelet: 1, 'kube-proxy': 1 });
    let log = '';
    for (let i = 0; i < 40 && !/authenticated as/.test(log); i++) {
      await new Promise((res) => setTimeout(res, 250));
      log = lab.unitLog(m, 'kubelet');
    }
    t.regex(log, new RegExp(`authenticated as ${m}\\b`));
  }
});

test.serial('every file is on its host with the owner, mode and content of the recipe', async (t) => {
  const lab = await labP;
  const pki = (f: string) => sha256(readFileSync(path.join(lab.pkiDir, f)));
  for (const f of ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'tokens.csv']) {
    t.deepEqual(await remoteFile(lab, 'kubemaster', `/srv/kubernetes/${f}`), { owner: 'kube:nogroup', mode: '600', sha: pki(f) }, f);
  }
  // the folder is root's (kube reads its files, but cannot plant links where root writes): see config/files.ts
  t.is((await lab.exec('kubemaster', ['stat', '-c', '%U:%G %a', '/srv/kubernetes'])).stdout.trim(), 'root:root 755');
  for (const m of ['kubeminion1', 'kubeminion2']) {
    for (const f of ['ca.crt', `${m}.crt`, `${m}.key`]) {
      t.deepEqual(await remoteFile(lab, m, `/srv/kubernetes/${f}`), { owner: 'root:root', mode: '600', sha: pki(f) }, `${m}:${f}`);
    }
    t.like(await remoteFile(lab, m, '/var/lib/kubelet/kubeconfig'), { owner: 'root:root', mode: '600' });
    t.is((await lab.exec(m, ['ls', '/srv/kubernetes'])).stdout.split('\n').filter(Boolean).length, 3, 'only its own files');
  }
  t.truthy(await remoteFile(lab, 'kubeminion1', '/srv/kubernetes/kubeminion1.key'));
  t.falsy(await remoteFile(lab, 'kubeminion1', '/srv/kubernetes/kubeminion2.key'));
});

test.serial('the edited environment files keep every other line and comment', async (t) => {
  const lab = await labP;
  const api = lab.readFile('kubemaster', '/etc/kubernetes/apiserver');
  t.regex(api, /^# The address on the local server to listen to\.$/m);
  t.regex(api, /^KUBE_API_ADDRESS=/m);
  t.regex(api, /^KUBE_API_ARGS="--kubelet-https=true --client-ca-file=\/srv\/kubernetes\/ca\.crt --tls-cert-file=\/srv\/kubernetes\/server\.crt --tls-private-key-file=\/srv\/kubernetes\/server\.key --token-auth-file=\/srv\/kubernetes\/tokens\.csv --secure-port=6443"$/m);
  t.is(api.match(/^KUBE_API_ARGS=/gm)!.length, 1);
  const kubelet = lab.readFile('kubeminion1', '/etc/kubernetes/kubelet');
  t.regex(kubelet, /^KUBELET_API_SERVER="--api-servers=https:\/\/kubemaster:6443"$/m);
  t.regex(kubelet, /^KUBELET_ARGS="--cluster-dns=10\.24\.0\.10 --cluster-domain=kubic\.local --enable_server=true --register-node=true --kubeconfig=\/var\/lib\/kubelet\/kubeconfig --node-status-update-frequency=5s"$/m);
  t.regex(kubelet, /^KUBELET_ADDRESS=/m);
  t.regex(lab.readFile('kubeminion1', '/etc/kubernetes/config'), /^KUBE_MASTER="--master=https:\/\/kubemaster:6443"$/m);
  t.regex(lab.readFile('kubeminion1', '/etc/kubernetes/config'), /^KUBE_LOGTOSTDERR=/m);
  t.regex(lab.readFile('kubeminion2', '/etc/kubernetes/proxy'), /^KUBE_PROXY_ARGS="--kubeconfig=\/var\/lib\/kubelet\/kubeconfig"$/m);
  const backups = (await lab.exec('kubemaster', ['sh', '-c', 'ls /etc/kubernetes/apiserver.bak-*'])).stdout.trim().split('\n').filter(Boolean);
  t.is(backups.length, 1, 'the distro file was kept as a backup');
});

test.serial('the recipe\'s curl commands succeed without -k: client certificate and bearer token', async (t) => {
  const lab = await labP;
  const p = (f: string) => path.join(lab.pkiDir, f);
  const resolve = `kubemaster:6443:${lab.master.address}`;
  const cert = await execa('curl', ['-sS', '--fail', '--key', p('kubeminion1.key'), '--cert', p('kubeminion1.crt'), '--cacert', p('ca.crt'),
    '--resolve', resolve, 'https://kubemaster:6443/version']);
  t.is(JSON.parse(cert.stdout).gitVersion, 'v1.4.2');
  const token = readFileSync(p('tokens.csv'), 'utf8').split(',')[0];
  const review = await execa('curl', ['-sS', '--fail', '-H', `Authorization: Bearer ${token}`, '--cacert', p('ca.crt'), '--resolve', resolve,
    '-X', 'POST', '-H', 'Content-Type: application/json', '-d', '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}',
    'https://kubemaster:6443/apis/authentication.k8s.io/v1/selfsubjectreviews']);
  t.is(JSON.parse(review.stdout).status.userInfo.username, 'kubelet');
  // and without the CA, curl refuses the server: the recipe's -k was hiding exactly this
  const noCa = await execa('curl', ['-sS', '--resolve', resolve, 'https://kubemaster:6443/version'], { reject: false });
  t.not(noCa.exitCode, 0);
});

const kubectl = execaSync('kubectl', ['version', '--client'], { reject: false }).exitCode === 0;
(kubectl ? test.serial : test.serial.skip)('kubectl auth whoami with the kubelet kubeconfig inside a minion says who the minion is', async (t) => {
  const lab = await labP;
  const r = await lab.exec('kubeminion1', ['kubectl', '--kubeconfig', '/var/lib/kubelet/kubeconfig', 'auth', 'whoami', '-o', 'json'],
    { timeoutMs: 30_000 });
  t.is(r.exitCode, 0, r.stderr);
  t.is(JSON.parse(r.stdout).status.userInfo.username, 'kubeminion1');
});

test.serial('@kubernetes/client-node, with the kubelet kubeconfig, gets the minion\'s identity', async (t) => {
  const lab = await labP;
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromString(lab.readFile('kubeminion2', '/var/lib/kubelet/kubeconfig'));
  const cluster = kc.getCurrentCluster()!;
  // the test runner cannot resolve kubemaster: connect to its address, verify the certificate for its name
  kc.clusters = [{ ...cluster, server: `https://${lab.master.address}:6443`, tlsServerName: 'kubemaster' }];
  const api = kc.makeApiClient(k8s.AuthenticationV1Api);
  const review = await api.createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
  t.is(review.status?.userInfo?.username, 'kubeminion2');
});

test.serial('verify.ts passes every check and reports the expected identities', async (t) => {
  const lab = await labP;
  const r = await runScript('verify.ts', ['--inventory', lab.inventoryPath, '--json']);
  t.is(r.code, 0, r.all);
  const { ok, results } = JSON.parse(r.stdout) as { ok: boolean; results: { check: string; target: string; ok: boolean; detail: string }[] };
  t.true(ok);
  t.regex(results.find((x) => x.check === 'whoami' && x.target === 'cert kubeminion1')!.detail, /^kubeminion1 /);
  t.regex(results.find((x) => x.check === 'whoami' && x.target === 'token')!.detail, /^kubelet /);
  t.true(results.some((x) => x.check === 'served certificate' && x.ok));
  t.is(results.filter((x) => x.check === 'deployed').length, 5 + 4 * 2);
});

test.serial('a second run with nothing changed writes nothing, restarts nothing and says so', async (t) => {
  const lab = await labP;
  const before = Object.fromEntries(lab.hosts.map((h) => [h.name, restarts(lab, h.name)]));
  const m = await runScript('master.ts', ['--inventory', lab.inventoryPath]);
  t.is(m.code, 0, m.all);
  t.regex(m.stdout, /PKI: nothing to do/);
  t.regex(m.stdout, /nothing to do: every host already up to date \(0 files written, 0 restarts\)/);
  const n = await runScript('minions.ts', ['--inventory', lab.inventoryPath]);
  t.is(n.code, 0, n.all);
  t.regex(n.stdout, /nothing to do: every host already up to date/);
  t.notRegex(m.all + n.all, /\$ (sftp put|systemctl restart|openssl)/);
  t.deepEqual(Object.fromEntries(lab.hosts.map((h) => [h.name, restarts(lab, h.name)])), before);
});

test.serial('a changed host key stops that host before anything is sent, and no other', async (t) => {
  const lab = await labP;
  const kh = path.join(lab.dir, 'known_hosts.changed');
  const lines = readFileSync(lab.knownHostsPath, 'utf8').split('\n');
  const other = lines.find((l) => l.startsWith('kubeminion1,'))!.split(' ').slice(1).join(' ');
  writeFileSync(kh, lines.map((l) => (l.startsWith('kubeminion2,') ? `${l.split(' ')[0]} ${other}` : l)).join('\n'));
  const inv = editInventory(lab, (d) => { d.ssh.known_hosts = 'known_hosts.changed'; }, path.join(lab.dir, 'changed-key.yaml'));
  lab.writeFile('kubeminion2', '/srv/kubernetes/kubeminion2.key', 'tampered', { mode: 0o600 });
  const r = await runScript('master.ts', ['--inventory', inv]);
  t.is(r.code, 1, r.all);
  t.regex(r.stdout, /^kubeminion2\s+FAILED\s+-\s+connect\s+HOST KEY CHANGED for 127\.\d+\.0\.3: offered ssh-ed25519 SHA256:\S+, .*known_hosts\.changed:\d+ has SHA256:/m);
  t.regex(r.stdout, /^kubeminion1\s+ok/m);
  t.regex(r.stdout, /^kubemaster\s+ok/m);
  t.is(lab.readFile('kubeminion2', '/srv/kubernetes/kubeminion2.key'), 'tampered', 'nothing was sent to the host');
  // with the right key again, the rerun repairs the tampered file (and keeps it as a backup)
  const again = await runScript('master.ts', ['--inventory', lab.inventoryPath]);
  t.is(again.code, 0, again.all);
  t.is(sha256(lab.readFile('kubeminion2', '/srv/kubernetes/kubeminion2.key')), sha256(readFileSync(path.join(lab.pkiDir, 'kubeminion2.key'))));
});

test.serial('an unknown host key stops the host unless --accept-new-host-keys, which adds it', async (t) => {
  const lab = await labP;
  const kh = path.join(lab.dir, 'known_hosts.partial');
  writeFileSync(kh, readFileSync(lab.knownHostsPath, 'utf8').split('\n').filter((l) => !l.startsWith('kubeminion1,')).join('\n'));
  const inv = editInventory(lab, (d) => { d.ssh.known_hosts = 'known_hosts.partial'; }, path.join(lab.dir, 'partial.yaml'));
  const r = await runScript('minions.ts', ['--inventory', inv]);
  t.is(r.code, 1);
  t.regex(r.stdout, /^kubeminion1\s+FAILED\s+-\s+connect\s+host key ssh-ed25519 SHA256:\S+ for 127\.\d+\.0\.2 is not in/m);
  const ok = await runScript('minions.ts', ['--inventory', inv, '--accept-new-host-keys']);
  t.is(ok.code, 0, ok.all);
  t.regex(ok.all, /added host key ssh-ed25519 SHA256:\S+ for 127\.\d+\.0\.2/);
  t.regex(readFileSync(kh, 'utf8'), /^\|1\|[^|]+\|[^ ]+ ssh-ed25519 /m);
  const third = await runScript('minions.ts', ['--inventory', inv]);
  t.is(third.code, 0, 'the hashed entry is found on the next run');
});

test.serial('--dry-run prints every remote action as a shell line, with no secret, and changes nothing', async (t) => {
  const lab = await labP;
  copyFileSync(lab.inventoryPath, path.join(lab.dir, 'dry.yaml'));
  const inv = editInventory(lab, (d) => { d.apiserver.ip.push('10.0.0.5'); }, path.join(lab.dir, 'dry.yaml'));
  const before = restarts(lab, 'kubemaster');
  const served = sha256(lab.readFile('kubemaster', '/srv/kubernetes/server.crt'));
  const r = await runScript('master.ts', ['--inventory', inv, '--dry-run']);
  t.is(r.code, 0, r.all);
  t.regex(r.stdout, /would reissue: SAN added: IP:10\.0\.0\.5/);
  t.regex(r.stdout, /\[kubemaster\] \$ sftp put .*server\.key → \/srv\/kubernetes\/server\.key \(kube:nogroup 0600\)/);
  t.regex(r.stdout, /\[kubemaster\] \$ systemctl restart kube-apiserver/);
  t.regex(r.stdout, /dry run: nothing was written, no host was contacted/);
  const token = readFileSync(path.join(lab.pkiDir, 'tokens.csv'), 'utf8').split(',')[0];
  t.false(r.all.includes(token));
  t.false(r.all.includes('PRIVATE KEY'));
  t.is(sha256(lab.readFile('kubemaster', '/srv/kubernetes/server.crt')), served);
  t.deepEqual(restarts(lab, 'kubemaster'), before);
});

test.serial('a remote command that never answers fails after its timeout instead of hanging the run', async (t) => {
  const lab = await labP;
  const { connect } = await import('../lib/remote/connect.ts');
  const { loadInventory } = await import('../lib/inventory/load.ts');
  const inv = loadInventory(lab.inventoryPath);
  const r = await connect(inv, inv.minions[0]);
  try {
    const started = Date.now();
    const e = await t.throwsAsync(r.run(['sleep', '30'], { quiet: true, timeoutMs: 500 }));
    t.regex(e!.message, /no answer after 0\.5 s from: sleep 30/);
    t.true(Date.now() - started < 10_000);
    t.is((await r.run(['hostname'], { quiet: true })).stdout.trim(), 'kubeminion1', 'the connection is still usable');
  } finally {
    await r.close();
  }
});
