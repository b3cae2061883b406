/**
 * kubelet.certificates: api on the modern lab (two minions, the real v1.37.2 kubelet, apiserver and controller-manager):
 * a running push cluster switched to api, the kubelets then carry their own certificates through the CSR API (the client
 * one approved by the real controller-manager, the serving one by approve.ts's rules during minions.ts's gate), the
 * client certificate rotating by itself with no kubetls run, the apiserver's path to a kubelet checked with real curl,
 * and a switch back to push and again to api, node by node, with every node registered all along.
 */
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import type { Lab } from '../lab/index.ts';
import { nodeIpOf } from '../lab/nspawn.ts';
import { editInventory } from './helpers/e2e.ts';
import { tempDir } from './helpers/inventory.ts';
import { useLab } from './helpers/lab.ts';
import { runScript } from './helpers/run.ts';

// three minions, the third left out of cluster.yaml until it joins
const labP = useLab(test, { minions: 3, profile: 'modern' }).then((lab) => {
  editInventory(lab, (d) => { d.minions = d.minions.filter((m: { name?: string } | string) => (typeof m === 'string' ? m : m.name) !== 'kubeminion3'); });
  return lab;
});
const listed = (lab: Lab) => lab.minions.filter((m) => m.name !== 'kubeminion3');
const must = (t: ExecutionContext, r: { code: number; all: string }, code = 0) => t.is(r.code, code, r.all.split('\n').slice(-40).join('\n'));
const inv = (lab: Lab) => ['--inventory', lab.inventoryPath];
const CURRENT = '/var/lib/kubelet/pki/kubelet-client-current.pem';

function kubectl(lab: Lab, args: string[]) {
  const p = (f: string) => path.join(lab.pkiDir, f);
  return execa('kubectl', ['--server', `https://${lab.master.address}:6443`, '--tls-server-name', lab.master.name, '--certificate-authority', p('ca.crt'),
    '--client-certificate', p('admin.crt'), '--client-key', p('admin.key'), '--request-timeout', '10s', ...args], { reject: false, timeout: 30_000 });
}

/** The certificate (never the key) of the kubelet's current client pair on a minion, read inside the host. */
async function clientCert(lab: Lab, host: string): Promise<X509Certificate | undefined> {
  const r = await lab.exec(host, ['openssl', 'x509', '-in', CURRENT]);
  return r.exitCode === 0 ? new X509Certificate(r.stdout) : undefined;
}

/**
 * Every node of the lab registered, and its kubelet still posting its status: polled in the background until stopped.
 * The lab's Nodes are NotReady (no CNI, lab/README.md), so Ready=False is their normal state; Unknown is what the
 * controller-manager sets when a kubelet stopped reporting for --node-monitor-grace-period (20 s), a node lost.
 */
function watchNodes(t: ExecutionContext, lab: Lab, nodesOf: (lab: Lab) => Lab['minions'] = listed) {
  const bad: string[] = [];
  let samples = 0;
  let stop = false;
  const done = (async () => {
    while (!stop) {
      const r = await kubectl(lab, ['get', 'nodes', '-o', 'json']);
      if (r.exitCode === 0) {
        samples++;
        const items = (JSON.parse(r.stdout) as { items: { metadata: { name: string }; status: { conditions?: { type: string; status: string }[] } }[] }).items;
        for (const m of nodesOf(lab)) {
          const n = items.find((i) => i.metadata.name === m.name);
          if (!n) bad.push(`${m.name} not registered`);
          else if (n.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'Unknown')) bad.push(`${m.name} Ready=Unknown (its kubelet stopped reporting)`);
        }
      }
      await sleep(1000);
    }
  })();
  t.teardown(async () => { stop = true; await done; });
  return { stop: async () => { stop = true; await done; return { samples, bad }; } };
}

/** What :10250 of `host` serves when asked for `name`, checked by the real curl as the apiserver's kubelet client. */
function kubeletCurl(lab: Lab, name: string, address: string) {
  const p = (f: string) => path.join(lab.pkiDir, f);
  return execa('curl', ['-sS', '--max-time', '10', '--cacert', p('ca.crt'), '--cert', p('apiserver-kubelet-client.crt'), '--key', p('apiserver-kubelet-client.key'),
    '--resolve', `${name}:10250:${address}`, '-o', '/dev/null', '-w', '%{http_code}', `https://${name}:10250/pods`], { reject: false });
}

test.serial('a push cluster switched to kubelet.certificates: api: each kubelet takes its own client and serving certificates, and a second run changes nothing', async (t) => {
  t.timeout(6 * 60_000);
  const lab = await labP;
  must(t, await runScript('master', inv(lab)));
  must(t, await runScript('minions', inv(lab)));
  const pushed = readFileSync(path.join(lab.pkiDir, 'kubeminion1.crt'));
  // the lab's Nodes report a TEST-NET-2 InternalIP (lab/README.md: the kubelet refuses a loopback node IP): node_ip says so
  editInventory(lab, (d) => {
    d.kubelet = { certificates: 'api', certificate_minutes: 5 };
    for (const m of d.minions) m.node_ip = nodeIpOf(m.address);
  });
  const nodes = watchNodes(t, lab);
  // the bad case first: a binding of kubetls's name that grants the role to others is refused, never kept or widened
  const wrong = await kubectl(lab, ['create', 'clusterrolebinding', 'kubetls:kubelet-bootstrap', '--clusterrole=system:node-bootstrapper', '--group=system:authenticated']);
  t.is(wrong.exitCode, 0, wrong.stderr);
  const refused = await runScript('master', inv(lab));
  t.is(refused.code, 1);
  t.regex(refused.all, /clusterrolebinding kubetls:kubelet-bootstrap exists but does not bind system:node-bootstrapper to group system:bootstrappers:kubetls alone/);
  t.is((await kubectl(lab, ['delete', 'clusterrolebinding', 'kubetls:kubelet-bootstrap'])).exitCode, 0);
  const master = await runScript('master', inv(lab));
  must(t, master);
  t.regex(refused.all, /--cluster-signing-duration=5m/, 'the control plane was configured before the refusal');
  t.regex(refused.all + master.all, /kubectl create clusterrolebinding kubetls:node-autoapprove-certificate-rotation --clusterrole=system:certificates\.k8s\.io:certificatesigningrequests:selfnodeclient --group=system:nodes/);
  const minions = await runScript('minions', inv(lab));
  must(t, minions);
  t.regex(minions.all, /kubectl certificate approve/);
  for (const m of listed(lab)) {
    // the kubeconfig is the kubelet's own now: it names the rotating file, and embeds no certificate
    const kc = lab.readFile(m.name, '/var/lib/kubelet/kubeconfig');
    t.regex(kc, new RegExp(`client-certificate: ${CURRENT}`), m.name);
    t.notRegex(kc, /client-certificate-data|client-key-data|token:/, m.name);
    // the pushed pairs are gone: the kubelet made its own keys
    t.is((await lab.exec(m.name, ['test', '-e', '/var/lib/kubelet/pki/kubelet.key'])).exitCode, 1, m.name);
    t.is((await lab.exec(m.name, ['test', '-e', `/srv/kubernetes/${m.name}.key`])).exitCode, 1, m.name);
    t.is((await lab.exec(m.name, ['test', '-e', '/var/lib/kubelet/bootstrap-kubeconfig'])).exitCode, 1, 'removed once the node joined');
    // and no copy of a retired key is left behind as a backup
    const keys = await lab.exec(m.name, ['sh', '-c', 'ls /srv/kubernetes /var/lib/kubelet/pki /var/lib/kubelet']);
    t.notRegex(keys.stdout, new RegExp(`${m.name}\\.key|kubelet\\.key|bootstrap-kubeconfig|kubeconfig\\.bak`), keys.stdout);
    // the client certificate: the node's identity, from the cluster CA, 10 minutes long (5 signed + 5 backdated)
    const c = (await clientCert(lab, m.name))!;
    t.regex(c.subject, new RegExp(`O=system:nodes\\nCN=system:node:${m.name}`));
    t.true(c.checkIssued(new X509Certificate(readFileSync(path.join(lab.pkiDir, 'ca.crt')))), 'signed by the cluster CA');
    t.is((Date.parse(c.validTo) - Date.parse(c.validFrom)) / 1000, 600);
    // the serving certificate, as the real openssl sees it on :10250: the cluster CA's, for the node's name
    const s = await execa('openssl', ['s_client', '-connect', `${m.address}:10250`, '-servername', m.name, '-CAfile', path.join(lab.pkiDir, 'ca.crt'),
      '-verify_return_error', '-verify_hostname', m.name], { input: '', reject: false, timeout: 20_000 });
    t.regex(s.stdout, /Verify return code: 0 \(ok\)/, s.stderr);
  }
  t.not((await clientCert(lab, 'kubeminion1'))!.fingerprint256, new X509Certificate(pushed).fingerprint256);
  // who approved what: the client CSRs the controller-manager (as it approves a node's renewal), the serving ones kubetls
  const csrs = JSON.parse((await kubectl(lab, ['get', 'csr', '-o', 'json'])).stdout) as { items: { spec: { signerName: string; username: string }; status: { conditions?: { type: string; reason: string }[] } }[] };
  const by = (signer: string) => csrs.items.filter((c) => c.spec.signerName === signer).map((c) => `${c.spec.username} ${c.status.conditions?.[0]?.type} ${c.status.conditions?.[0]?.reason}`).sort();
  t.true(by('kubernetes.io/kube-apiserver-client-kubelet').length >= 2);
  for (const c of by('kubernetes.io/kube-apiserver-client-kubelet')) t.regex(c, /^system:bootstrap:[a-z0-9]{6} Approved AutoApproved$/, 'joined by token');
  // and the tokens are gone
  t.deepEqual(JSON.parse((await kubectl(lab, ['-n', 'kube-system', 'get', 'secrets', '-l', 'app.kubernetes.io/managed-by=kubetls', '-o', 'json'])).stdout).items, []);
  t.deepEqual([...new Set(by('kubernetes.io/kubelet-serving'))], ['system:node:kubeminion1 Approved KubetlsApproved', 'system:node:kubeminion2 Approved KubetlsApproved']);
  const second = await runScript('minions', inv(lab));
  must(t, second);
  t.regex(second.all, /nothing to do: every host already up to date/);
  must(t, await runScript('verify', inv(lab)));
  const seen = await nodes.stop();
  t.true(seen.samples > 5);
  t.deepEqual(seen.bad, []);
});

test.serial('a node added to cluster.yaml joins with kubetls join: registered, serving a certificate approve.ts approved, holding no key kubetls made', async (t) => {
  const lab = await labP;
  const m3 = lab.minions.find((m) => m.name === 'kubeminion3')!;
  editInventory(lab, (d) => { d.minions.push({ name: m3.name, address: m3.address, node_ip: nodeIpOf(m3.address) }); });
  const nodes = watchNodes(t, lab, listed);
  const join = await runScript('join', [...inv(lab), 'kubeminion3']);
  must(t, join);
  t.regex(join.all, /kubectl -n kube-system create secret generic bootstrap-token-[a-z0-9]{6} --type bootstrap\.kubernetes\.io\/token/);
  t.notRegex(join.all, /token-secret=[a-z0-9]{16}|\.[a-z0-9]{16}\b/, 'the token\'s secret is never printed');
  t.regex(join.all, /kubectl certificate approve/);
  t.regex(join.all, /node kubeminion3 is registered/);
  const node = await kubectl(lab, ['get', 'node', 'kubeminion3', '-o', 'jsonpath={.metadata.name}']);
  t.is(node.stdout, 'kubeminion3', node.stderr);
  const s = await execa('openssl', ['s_client', '-connect', `${m3.address}:10250`, '-servername', m3.name, '-CAfile', path.join(lab.pkiDir, 'ca.crt'),
    '-verify_return_error', '-verify_hostname', m3.name], { input: '', reject: false, timeout: 20_000 });
  t.regex(s.stdout, /Verify return code: 0 \(ok\)/, s.stderr);
  // kubetls made no key or certificate for it: none in pki.dir, and on the node only the CA in pki.remote_dir
  t.deepEqual(readdirSync(lab.pkiDir).filter((f) => f.includes('kubeminion3')), []);
  t.is((await lab.exec('kubeminion3', ['ls', '/srv/kubernetes'])).stdout.trim(), 'ca.crt');
  t.is((await lab.exec('kubeminion3', ['test', '-e', '/var/lib/kubelet/bootstrap-kubeconfig'])).exitCode, 1);
  t.deepEqual(JSON.parse((await kubectl(lab, ['-n', 'kube-system', 'get', 'secrets', '-l', 'app.kubernetes.io/managed-by=kubetls', '-o', 'json'])).stdout).items, [], 'the token deleted');
  const again = await runScript('join', [...inv(lab), 'kubeminion3']);
  must(t, again);
  t.regex(again.all, /nothing to do: every host already up to date/);
  t.deepEqual((await nodes.stop()).bad, [], 'the other nodes kept reporting');
});

test.serial('with no kubetls run, a kubelet whose client certificate lives 10 minutes rotates it twice and stays registered', async (t) => {
  t.timeout(12 * 60_000); // two renewals, each 2 to 3.4 minutes after the certificate before it was issued
  const lab = await labP;
  const nodes = watchNodes(t, lab, (l) => l.minions);
  const serials = new Set<string>();
  const first = (await clientCert(lab, 'kubeminion1'))!;
  serials.add(first.serialNumber);
  // renewed at 70–84 % of its 10 minutes, 5 of them backdated: 2 to 3.4 minutes after each issue
  const end = Date.now() + 9 * 60_000;
  while (serials.size < 3 && Date.now() < end) {
    await sleep(10_000);
    const c = await clientCert(lab, 'kubeminion1');
    if (c) serials.add(c.serialNumber);
  }
  t.true(serials.size >= 3, `client certificates seen: ${[...serials].join(', ')}`);
  const seen = await nodes.stop();
  t.deepEqual(seen.bad, []);
  t.true(seen.samples >= 10, `${seen.samples} samples: the watcher saw the nodes all along`);
  // the kubeconfig still names the rotating file (never a certificate embedded at some point)
  t.regex(lab.readFile('kubeminion1', '/var/lib/kubelet/kubeconfig'), new RegExp(`client-certificate: ${CURRENT}`));
});

test.serial('status (with --remote, and in its Prometheus textfile) and verify see the certificates the kubelets carry themselves', async (t) => {
  const lab = await labP;
  must(t, await runScript('approve', inv(lab))); // the serving certificates renewed meanwhile wait for approval
  await sleep(5000); // the kubelet takes a signed certificate within a few seconds
  const prom = path.join(tempDir(), 'kubetls.prom');
  const st = await runScript('status', [...inv(lab), '--remote', '--json', '--prometheus', prom]);
  type Row = { name: string; where: string; subject: string; status: string; notAfter?: string };
  const rows = (JSON.parse(st.stdout) as { rows: Row[] }).rows;
  for (const m of lab.minions) {
    const client = rows.find((r) => r.name === 'kubelet-client-current.pem' && r.where === `${m.name}:/var/lib/kubelet/pki/kubelet-client-current.pem`);
    t.is(client?.status, 'ok', JSON.stringify(client));
    t.is(client?.subject, `O=system:nodes, CN=system:node:${m.name}`);
    t.true(Date.parse(client!.notAfter!) - Date.now() <= 10 * 60_000, 'the kubelet\'s current one, 10 minutes long');
    const served = rows.find((r) => r.name === `${m.name} kubelet-server-current.pem`);
    t.is(served?.status, 'ok', JSON.stringify(served));
  }
  t.false(rows.some((r) => /^kubelet-kubeminion|^kubeminion\d\.crt$/.test(r.name)), 'no row for a certificate kubetls does not hold');
  const text = readFileSync(prom, 'utf8');
  for (const m of lab.minions) {
    t.regex(text, new RegExp(`kubetls_certificate_ok\\{name="kubelet-client-current.pem",where="${m.name}:/var/lib/kubelet/pki/kubelet-client-current.pem",status="ok"\\} 1`));
    t.regex(text, new RegExp(`kubetls_served_certificate_not_after_seconds\\{cert="kubelet",where="${m.address.replaceAll('.', '\\.')}:10250"\\} \\d+`));
  }
  must(t, await runScript('verify', inv(lab)));
});

test.serial('the apiserver\'s request to a kubelet works with its approved serving certificate, and fails when another node\'s certificate answers', async (t) => {
  const lab = await labP;
  must(t, await runScript('approve', inv(lab))); // the serving certificates rotated meanwhile: their CSRs wait
  const [m1, m2] = lab.minions;
  for (let i = 0; i < 30; i++) if ((await kubeletCurl(lab, m1!.name, m1!.address)).stdout === '200') break; else await sleep(1000);
  const ok = await kubeletCurl(lab, m1!.name, m1!.address);
  t.is(ok.stdout, '200', ok.stderr);
  // kubeminion1's name, kubeminion2's kubelet answering: its approved certificate is not valid for kubeminion1
  const wrong = await kubeletCurl(lab, m1!.name, m2!.address);
  t.not(wrong.exitCode, 0);
  t.regex(wrong.stderr, /SSL: no alternative certificate subject name matches target host name 'kubeminion1'|does not match target host name/);
});

test.serial('switching back to push and again to api, one node at a time, keeps every node registered', async (t) => {
  t.timeout(10 * 60_000); // ten runs of kubetls, each kubelet restarted and gated twice
  const lab = await labP;
  const nodes = watchNodes(t, lab, (l) => l.minions);
  editInventory(lab, (d) => { d.kubelet = { certificates: 'push' }; });
  must(t, await runScript('master', inv(lab)));
  must(t, await runScript('minions', [...inv(lab), '--only', 'kubeminion1']));
  // kubeminion1 is pushed again: kubetls's kubeconfig and serving pair, no bootstrap kubeconfig; kubeminion2 untouched
  t.regex(lab.readFile('kubeminion1', '/var/lib/kubelet/kubeconfig'), /client-certificate-data/);
  t.is((await lab.exec('kubeminion1', ['test', '-e', '/var/lib/kubelet/bootstrap-kubeconfig'])).exitCode, 1);
  t.regex(lab.readFile('kubeminion2', '/var/lib/kubelet/kubeconfig'), new RegExp(`client-certificate: ${CURRENT}`));
  must(t, await runScript('minions', inv(lab)));
  must(t, await runScript('verify', inv(lab)));
  const removed = await kubectl(lab, ['get', 'clusterrolebinding', 'kubetls:node-autoapprove-certificate-rotation']);
  t.regex(removed.stderr, /NotFound/, 'push takes the nodes\' right to renew their own client certificates back');
  editInventory(lab, (d) => { d.kubelet = { certificates: 'api', certificate_minutes: 5 }; });
  must(t, await runScript('master', inv(lab)));
  // the bad case: set to api, but no node switched yet: they serve what kubetls pushed, which is not "their own"
  const early = await runScript('status', [...inv(lab), '--remote', '--json']);
  t.is(early.code, 1);
  const row = (JSON.parse(early.stdout) as { rows: { name: string; status: string }[] }).rows.find((r) => r.name === 'kubeminion1 kubelet-server-current.pem');
  t.regex(row?.status ?? '', /^drift: serves kubelet-kubeminion1\.crt, which kubetls pushed: run minions\.ts/);
  const refused = await runScript('verify', inv(lab));
  t.is(refused.code, 1);
  t.regex(refused.all, /serves kubelet-kubeminion1\.crt, which kubetls pushed, not a certificate of its own/);
  must(t, await runScript('minions', [...inv(lab), '--only', 'kubeminion2']));
  must(t, await runScript('minions', inv(lab)));
  must(t, await runScript('verify', inv(lab)));
  const seen = await nodes.stop();
  t.deepEqual(seen.bad, []);
});
