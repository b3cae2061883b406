#!/usr/bin/env -S npx zx
/**
 * `npm run demo`: the whole recipe on a lab of real systemd hosts with real OpenSSH on this machine (1 master + 3
 * minions on 127.x loopback addresses): prepare the lab's parts (once, cached) → lab up → master.ts → minions.ts →
 * verify.ts → status.ts --remote → lab down. Exit 2 with one line when this machine cannot run the lab.
 *   npm run demo [-- --keep] [--profile legacy|modern] [--masters 3] [--own-root]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { labDown, labUnavailable, labUp } from '../lab/index.ts';
import { PrepareError, prepareLab } from '../lab/prepare.ts';
import { ExitError, main, parseFlags, usageError } from '../lib/cli.ts';
import { log } from '../lib/log.ts';

const USAGE = `
usage: npm run demo [-- --keep] [--profile legacy|modern] [--minions K] [--masters N] [--own-root]

  --keep             leave the lab running afterwards (stop it with: npx zx scripts/lab.ts down --name demo)
  --profile P        legacy (the recipe's Kubernetes 1.4 flags, default) or modern (Kubernetes >= 1.28)
  --minions K        how many minions (default 3)
  --masters N        modern: N masters (1, 3, 5…) with stacked etcd behind a real haproxy (kubelb); everything is then
                     verified through that endpoint
  --own-root         modern: first make a root of your own (its key in a folder outside pki.dir), put kubetls's
                     three CAs under it as intermediates (ca.ts request / import), delete the root's key, then build
                     the cluster; at the end curl and openssl s_client trust the root alone (docs/own-root.md)
`;

await main(async () => {
  const { values: f } = parseFlags({
    keep: { type: 'boolean', default: false },
    profile: { type: 'string', default: 'legacy' },
    minions: { type: 'string', default: '3' },
    masters: { type: 'string', default: '1' },
    'own-root': { type: 'boolean', default: false },
  }, USAGE);
  if (f['own-root'] && f.profile !== 'modern') usageError('--own-root goes with --profile modern', USAGE);
  if (!/^\d+$/.test(f.masters)) usageError(`--masters expects a whole number, found '${f.masters}'`, USAGE);
  if (f.profile !== 'legacy' && f.profile !== 'modern') usageError(`--profile expects legacy or modern, found '${f.profile}'`, USAGE);
  try {
    await prepareLab({ kube: f.profile === 'modern' });
  } catch (e) {
    if (e instanceof PrepareError) throw new ExitError(`lab: ${e.message}`, 2);
    throw e;
  }
  const why = labUnavailable();
  if (why) throw new ExitError(why, 2);
  const masters = Number(f.masters);
  const name = `demo-${f.profile}${masters > 1 ? '-ha' : ''}`;
  await labDown(name).catch(() => undefined);
  log.phase(`lab up: ${masters > 1 ? `${masters} masters behind haproxy` : 'kubemaster'} + ${f.minions} minions (${f.profile})`);
  const lab = await labUp({ name, minions: Number(f.minions), profile: f.profile, masters });
  for (const h of lab.hosts) log.info(`${h.name} ${h.address}:22 (ssh -F ${path.relative(process.cwd(), lab.sshConfigPath)} ${h.name})`);
  const inv = path.relative(process.cwd(), lab.inventoryPath);
  let code = 0;
  const rootDir = f['own-root'] ? mkdtempSync(path.join(tmpdir(), 'kubetls-demo-root-')) : undefined;
  const rootCrt = rootDir && path.join(rootDir, 'root.crt');
  const shell = async (argv: string[]) => {
    log.cmd(argv);
    const r = await execa(argv[0]!, argv.slice(1), { stdio: 'inherit', reject: false });
    if (r.exitCode !== 0) throw new ExitError(`${argv.slice(0, 2).join(' ')} … exited ${r.exitCode}`, 1);
  };
  try {
    if (rootDir && rootCrt) {
      // what the operator does on the machine that holds the root: here a folder outside pki.dir, gone before master.ts
      log.phase(`your own root, in ${rootDir}`);
      const rootKey = path.join(rootDir, 'root.key');
      await shell(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', rootKey, '-subj', '/CN=Demo Root',
        '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', rootCrt]);
      for (const ca of ['ca', 'etcd-ca', 'front-proxy-ca']) {
        await shell([process.execPath, '--import=tsx', path.join('scripts', 'ca.ts'), 'request', ca, '--inventory', inv]);
        const signed = path.join(rootDir, `${ca}.crt`);
        await shell(['openssl', 'x509', '-req', '-in', path.join(lab.pkiDir, `${ca}.csr`), '-CA', rootCrt, '-CAkey', rootKey, '-CAcreateserial',
          '-copy_extensions', 'copyall', '-days', '1825', '-out', signed]);
        await shell([process.execPath, '--import=tsx', path.join('scripts', 'ca.ts'), 'import', ca, '--cert', signed, '--root', rootCrt, '--inventory', inv]);
      }
      log.cmd(['rm', rootKey]);
      rmSync(rootKey);
    }
    for (const [script, ...args] of [['master.ts'], ['minions.ts'], ['verify.ts'], ['status.ts', '--remote']]) {
      log.phase(`npx zx scripts/${script} --inventory ${inv}${args.length ? ` ${args.join(' ')}` : ''}`);
      const r = await execa(process.execPath, ['--import=tsx', path.join('scripts', script), '--inventory', inv, ...args], { stdio: 'inherit', reject: false });
      if (r.exitCode !== 0) {
        code = r.exitCode ?? 1;
        log.error(`scripts/${script} exited ${r.exitCode}`);
        break;
      }
    }
    if (code === 0 && f.profile === 'modern') {
      // what runs is real: systemd's own status, the binary's own version, the real kubectl listing the nodes
      const admin = path.relative(process.cwd(), path.join(lab.pkiDir, 'admin.kubeconfig'));
      for (const [what, run] of [
        ...lab.masters.map((m) => [`[${m.name}] $ systemctl status --no-pager --lines=0 kube-apiserver`, () => lab.exec(m.name, ['systemctl', 'status', '--no-pager', '--lines=0', 'kube-apiserver'])] as const),
        ...(lab.lb ? [[`[${lab.lb.name}] $ systemctl status --no-pager --lines=0 haproxy`, () => lab.exec(lab.lb!.name, ['systemctl', 'status', '--no-pager', '--lines=0', 'haproxy'])] as const] : []),
        ['[kubemaster] $ kube-apiserver --version', () => lab.exec('kubemaster', ['kube-apiserver', '--version'])],
        [`$ kubectl --kubeconfig ${admin} get nodes`, () => execa('kubectl', ['--kubeconfig', admin, 'get', 'nodes'], { reject: false, timeout: 30000 })],
        ...(rootCrt ? [
          [`$ curl --cacert ${rootCrt} (the root alone) https://kubemaster:6443/version`, () => execa('curl', ['-sS', '--fail', '--cacert', rootCrt,
            '--cert', path.join(lab.pkiDir, 'admin.crt'), '--key', path.join(lab.pkiDir, 'admin.key'), '--resolve', `kubemaster:6443:${lab.master.address}`,
            'https://kubemaster:6443/version'], { reject: false, timeout: 30000 })],
          [`$ openssl s_client -verify_return_error -CAfile ${rootCrt} -connect ${lab.master.address}:6443 -servername kubemaster`, async () => {
            const r = await execa('openssl', ['s_client', '-verify_return_error', '-CAfile', rootCrt, '-connect', `${lab.master.address}:6443`, '-servername', 'kubemaster'],
              { input: '', reject: false, timeout: 30000 });
            return { ...r, stdout: r.stdout.split('\n').filter((l) => /^(depth=|Verify return code)/.test(l.trim())).join('\n'), stderr: '' };
          }],
        ] as const : []),
      ] as const) {
        log.phase(what);
        const r = await run();
        const said = String(r.stdout ?? '') + String(r.stderr ?? '');
        process.stdout.write(said.endsWith('\n') ? said : `${said}\n`);
        if (r.exitCode !== 0) code = r.exitCode ?? 1;
      }
    }
  } finally {
    if (rootDir) rmSync(rootDir, { recursive: true, force: true });
    if (f.keep) log.info(`lab left running: npx zx scripts/lab.ts down --name ${name}`);
    else {
      log.phase('lab down');
      await lab.down();
    }
  }
  return code;
});
