// Nodes made ready per minute: kubelet.certificates push against api, on a fresh modern lab of 1 master + K minions
// (default 4; a list such as 8,16 for several sizes: every minion runs the real kubelet and kube-proxy, about 150 MiB each). For each mode, on its own lab:
// `kubetls master`, then the figure: `kubetls minions` from nothing to every node registered and serving a certificate
// of the cluster CA on :10250 (push: the certificates kubetls made and pushed; api: each node joins with a bootstrap
// token, gets its client certificate from the controller-manager and its serving one approved by kubetls). Then a
// second `kubetls minions`, with nothing to do. Wall time of each run, and nodes per minute from the first.
//   npm run bench:kubelet -- [K[,K…]] [--runs N]       (writes bench/RESULTS-kubelet.md)
// Only loopback lab addresses are contacted; every command has a timeout.
import { execa } from 'execa';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { labDown, labUp } from '../lab/index.ts';
import { nodeIpOf } from '../lab/nspawn.ts';

const args = process.argv.slice(2);
const SIZES = (args.find((a) => /^\d+(,\d+)*$/.test(a)) ?? '4').split(',').map(Number);
const RUNS = args.includes('--runs') ? Number(args[args.indexOf('--runs') + 1]) : 1;
const repo = path.resolve(import.meta.dirname, '..');
const kubetls = (cmd: string, inventory: string) =>
  execa(process.execPath, [path.join(repo, 'bin/kubetls.mjs'), cmd, '--inventory', inventory], { reject: false, timeout: 900_000, env: { NODE_OPTIONS: '' } });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function one(mode: 'push' | 'api', K: number): Promise<{ first: number; again: number }> {
  const name = `bench-kapi-${mode}`;
  await labDown(name).catch(() => {});
  const lab = await labUp({ name, minions: K, profile: 'modern' });
  try {
    if (mode === 'api') {
      const doc = parse(readFileSync(lab.inventoryPath, 'utf8'));
      doc.kubelet = { certificates: 'api' };
      for (const m of doc.minions) m.node_ip = nodeIpOf(m.address);
      writeFileSync(lab.inventoryPath, stringify(doc));
    }
    const master = await kubetls('master', lab.inventoryPath);
    if (master.exitCode !== 0) throw new Error(`master: ${master.stderr.slice(-500)}`);
    let t0 = performance.now();
    const first = await kubetls('minions', lab.inventoryPath);
    const firstS = (performance.now() - t0) / 1000;
    if (first.exitCode !== 0) throw new Error(`minions (${mode}): ${first.stdout.slice(-1500)}`);
    t0 = performance.now();
    const again = await kubetls('minions', lab.inventoryPath);
    const againS = (performance.now() - t0) / 1000;
    if (!/nothing to do/.test(again.stdout + again.stderr)) throw new Error(`second minions (${mode}) did something`);
    return { first: firstS, again: againS };
  } finally {
    await labDown(name).catch(() => {});
  }
}

const rows: string[] = [];
for (const K of SIZES) for (const mode of ['push', 'api'] as const) {
  const samples = [];
  for (let i = 0; i < RUNS; i++) samples.push(await one(mode, K));
  const first = median(samples.map((s) => s.first));
  const again = median(samples.map((s) => s.again));
  rows.push(`| ${mode} | ${K} | ${first.toFixed(1)} s | ${(K / first * 60).toFixed(1)} | ${again.toFixed(1)} s |`);
  process.stderr.write(`${mode}: ${first.toFixed(1)} s for ${K} nodes, second run ${again.toFixed(1)} s\n`);
}
const table = ['| mode | nodes | minions.ts from nothing to ready | nodes per minute | second run |', '|---|---|---|---|---|', ...rows].join('\n');
const commit = (await execa('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, reject: false })).stdout.trim();
const report = `# Benchmark: kubelet.certificates push against api

Written by \`npm run bench:kubelet\` (bench/kubelet-api.ts) on ${new Date().toISOString().slice(0, 16)}Z, commit ${commit}.
Machine: ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(2)} at the end. ${RUNS} run(s) per mode, medians.
Each mode on a fresh modern lab of 1 master + K minions (real kubelet and kube-proxy on each), after \`kubetls master\`:
\`kubetls minions\` from nothing to every node serving a certificate of the cluster CA for its name on :10250, then
again with nothing to do. push: the certificates kubetls made, pushed over SSH. api: each node joined with a bootstrap
token, its client certificate signed by the controller-manager, its serving certificate approved by kubetls.

${table}
`;
writeFileSync(path.join(repo, 'bench/RESULTS-kubelet.md'), report);
process.stdout.write(`${table}\n`);
