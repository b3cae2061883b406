#!/usr/bin/env zx
// kubetls lab: a master + K minions on 127.N.0.0/24, each a container booting the real systemd, with a real sshd.
//   npx zx scripts/lab.ts up     [--name lab] [--minions 3] [--out .lab/NAME] [--profile legacy|modern] [--etcd-members 1]
//                                [--masters 1|3|5…] (modern: kubemaster..kubemasterN with stacked etcd behind haproxy on kubelb)
//   (modern: the real Kubernetes v1.37.2 binaries; legacy: stand-ins of the 1.4 programs; both under real systemd)
//   npx zx scripts/lab.ts status [--name lab] [--out DIR]
//   npx zx scripts/lab.ts down   [--name lab] [--out DIR]
//   npx zx scripts/lab.ts prepare [--profile legacy|modern]   (what npm run demo and npm test run first: the system
//                                packages, the inotify limits, the Debian tree; modern: the Kubernetes build. Cached.)
// Needs root, namespaces and systemd-nspawn (lab/README.md); without them it says so in one line and exits 1 (prepare: 2).
import { parseArgs } from 'node:util';
import { LabError, labDown, labStatus, labUnavailable, labUp, resolveLabDir } from '../lab/index.ts';
import { PrepareError, prepareLab } from '../lab/prepare.ts';
import { scriptArgs, usageError, VERSION } from '../lib/cli.ts';

const USAGE = 'usage: lab.ts up|down|status|prepare [--name NAME] [--minions K] [--out DIR] [--profile legacy|modern] [--etcd-members N] [--masters N]';
// strict like every other script: an unknown flag, a missing or extra command, a bad value is exit 2 with the usage
let parsed: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    args: scriptArgs(process.argv).filter((a) => a !== '--'), allowPositionals: true, strict: true,
    options: { name: { type: 'string' }, out: { type: 'string' }, minions: { type: 'string' }, profile: { type: 'string' },
      'etcd-members': { type: 'string' }, masters: { type: 'string' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } },
  });
}
try { parsed = parse(); } catch (e) { usageError((e as Error).message, USAGE); }
const argv = parsed.values;
if (argv.version) { console.log(`kubetls ${VERSION}`); process.exit(0); }
if (argv.help) { console.log(USAGE); process.exit(0); }
const [command, ...extra] = parsed.positionals;
const name = String(argv.name ?? 'lab');
const target = argv.out ? String(argv.out) : name;
const count = (v: string | undefined, flag: string, dflt: number) => {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) usageError(`${flag} expects a whole number, found '${v}'`, USAGE);
  return Number(v);
};

function fail(msg: string): never {
  console.error(msg.startsWith('lab') || msg.startsWith('usage') ? msg : `ERROR: ${msg}`);
  process.exit(1);
}

if (!command || extra.length || !['up', 'down', 'status', 'prepare'].includes(command)) usageError(command ? `unknown command '${[command, ...extra].join(' ')}'` : 'no command', USAGE);
if (argv.profile !== undefined && argv.profile !== 'legacy' && argv.profile !== 'modern') usageError(`--profile expects legacy or modern, found '${argv.profile}'`, USAGE);
const minions = count(argv.minions, '--minions', 3);
const etcdMembers = count(argv['etcd-members'], '--etcd-members', 1);
const masters = count(argv.masters, '--masters', 1);
if (command === 'prepare') {
  try {
    const done = await prepareLab({ kube: argv.profile === 'modern' });
    console.error(`lab: ready${done.length ? ` (${done.join('; ')})` : ''}`);
    process.exit(0);
  } catch (e) {
    if (!(e instanceof PrepareError)) throw e;
    console.error(`lab: ${e.message}`);
    process.exit(2);
  }
}
const why = labUnavailable();
if (why) fail(why);

try {
  if (command === 'up') {
    const t0 = performance.now();
    const lab = await labUp({
      name,
      minions,
      out: argv.out ? String(argv.out) : undefined,
      profile: (argv.profile ?? 'legacy') as 'legacy' | 'modern',
      // modern: N etcd members, the master and kubeetcd2..N (hosts of their own)
      etcdMembers,
      masters,
    });
    const secs = ((performance.now() - t0) / 1000).toFixed(2);
    console.log(`lab ${lab.name} up in ${secs} s: ${lab.hosts.length} hosts on 127.${lab.block}.0.0/24, Kubernetes ${lab.version} (${lab.profile}: ${lab.profile === 'modern' ? 'the real binaries' : 'the 1.4 stand-ins'} under real systemd)`);
    for (const h of lab.hosts) console.log(`  ${h.name.padEnd(14)} ${h.address.padEnd(16)} pid ${h.pid}`);
    console.log(`inventory: ${lab.inventoryPath}`);
    console.log(`try:       ssh -F ${lab.sshConfigPath} ${lab.minions[0]?.name ?? 'kubemaster'} hostname`);
  } else if (command === 'down') {
    const t0 = performance.now();
    const dir = resolveLabDir(target);
    const removed = await labDown(target);
    const secs = ((performance.now() - t0) / 1000).toFixed(2);
    console.log(removed ? `lab down in ${secs} s: ${dir} removed` : `lab: nothing to do (${dir} is not a lab)`);
  } else {
    const s = labStatus(target);
    if (!s) fail(`lab: no lab at ${resolveLabDir(target)}`);
    console.log(`lab ${s.lab.name} (${s.lab.profile}, ${s.lab.version}) in ${s.lab.dir}, block 127.${s.lab.block}.0.0/24`);
    for (const h of s.hosts) {
      const svc = Object.entries(h.services).map(([u, p]) => `${u}(${p})`).join(' ') || '-';
      console.log(`  ${h.name.padEnd(14)} ${h.address.padEnd(16)} ${h.up ? `pid ${h.pid}` : 'DOWN'}`.padEnd(48) + `services: ${svc}`);
    }
  }
} catch (e) {
  fail(e instanceof LabError ? e.message : (e as Error).stack ?? String(e));
}
