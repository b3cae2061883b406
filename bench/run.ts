// npm run bench: kubetls side by side with the recipe's own commands, in one invocation, and
// bench/RESULTS.md written from what it measured. The machine is small and noisy: read the ratios and the medians.
//
//   BENCH_MINIONS=50 BENCH_RUNS=3 BENCH_SCALE=10,25,50 npm run bench      (the defaults)
//
// Figures (each: BENCH_RUNS runs, the median; wall and CPU of the whole process tree, from GNU time):
//   pki     `kubetls master --pki-only` (1 master + N minions, RSA 2048, CA 4096) vs bench/recipe-pki.sh (the loop
//           verbatim); openssl's own CPU in kubetls's run is summed through a PATH shim, and the limit is that sum / cores
//   remote  `kubetls master` + `kubetls minions` on a fresh lab of 1 + N vs bench/recipe-remote.sh (one ssh/scp per
//           command, host after host) on a second fresh lab of the same size; both start from the same PKI files
//   noop    `kubetls master` + `kubetls minions` again, nothing to do (same lab)
//   renew   `kubetls renew` with nothing due (same lab)
//   help    `kubetls status --help` and `npx zx scripts/status.ts --help`
//   scale   the remote figure for each size of BENCH_SCALE: wall, kubetls's CPU, max RSS, and CPU per added host
// Bounded: fixed sizes, every command has a timeout; only loopback lab addresses are contacted.
import { execa, type Options } from 'execa';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { labDown, labUnavailable, labUp, type Lab } from '../lab/index.ts';
import { stringify } from 'yaml';

const N = Number(process.env.BENCH_MINIONS ?? 50);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SCALE = (process.env.BENCH_SCALE ?? '10,25,50').split(',').map(Number).filter((k) => k > 0);
const CORES = availableParallelism();
const repo = path.resolve(import.meta.dirname, '..');
const kubetls = [process.execPath, path.join(repo, 'bin/kubetls.mjs')];
const TIMEOUT = 1_800_000;

interface Sample { wall: number; cpu: number; rssMiB: number }
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };
const med = (ss: Sample[]): Sample => ({ wall: median(ss.map((s) => s.wall)), cpu: median(ss.map((s) => s.cpu)), rssMiB: median(ss.map((s) => s.rssMiB)) });
const f2 = (x: number) => x.toFixed(2);
const progress = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

/** Run argv under GNU time: wall, user+sys of the process and every child it waited for, max RSS. */
async function timed(argv: string[], o: Options = {}): Promise<Sample> {
  const out = path.join(mkdtempSync(path.join(tmpdir(), 'kubetls-bench-time-')), 'time');
  const r = await execa('/usr/bin/time', ['-f', '%e %U %S %M', '-o', out, ...argv], { reject: false, timeout: TIMEOUT, ...o });
  const [wall, user, sys, rss] = readFileSync(out, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  rmSync(path.dirname(out), { recursive: true, force: true });
  if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} exited ${r.exitCode}: ${String(r.stderr).slice(-600)}`);
  return { wall: wall!, cpu: user! + sys!, rssMiB: rss! / 1024 };
}
const sum = (a: Sample, b: Sample): Sample => ({ wall: a.wall + b.wall, cpu: a.cpu + b.cpu, rssMiB: Math.max(a.rssMiB, b.rssMiB) });

// ---- pki ---------------------------------------------------------------------------------------------------------------

/** A PATH folder whose `openssl` appends its own user+sys to `log`, then is the real openssl. */
function opensslShim(dir: string, log: string): string {
  const bin = path.join(dir, 'shim');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'openssl'), `#!/bin/sh\nexec /usr/bin/time -a -o ${log} -f '%U %S' /usr/bin/openssl "$@"\n`);
  chmodSync(path.join(bin, 'openssl'), 0o755);
  return bin;
}

/** The recipe's cluster (1 master + n minions, RSA 2048, CA 4096), as bench/recipe-pki.sh makes it, in `dir`/cluster.yaml. */
function recipeInventory(dir: string, n: number): string {
  const file = path.join(dir, 'cluster.yaml');
  writeFileSync(file, stringify({
    cluster: 'debian-cluster', profile: 'legacy',
    pki: { dir: 'pki', remote_dir: '/srv/kubernetes', key: 'rsa', ca_bits: 4096, bits: 2048, ca_days: 3650, days: 365, renew_before_days: 30 },
    apiserver: { cn: 'kubernetes.default.svc', dns: ['kubernetes.default.svc', 'kubemaster'], ip: ['10.24.0.1'], port: 6443 },
    cluster_dns: '10.24.0.10', cluster_domain: 'kubic.local',
    master: { name: 'kubemaster', address: 'kubemaster' },
    minions: Array.from({ length: n }, (_, i) => `kubeminion${i + 1}`),
  }));
  return file;
}

async function pkiRun(): Promise<{ recipe: Sample; kubetls: Sample; openssl: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kubetls-bench-pki-'));
  try {
    mkdirSync(path.join(dir, 'recipe'));
    const recipe = await timed(['bash', path.join(repo, 'bench/recipe-pki.sh'), String(N)], { cwd: path.join(dir, 'recipe') });
    const inv = recipeInventory(dir, N);
    const log = path.join(dir, 'openssl-cpu');
    const bin = opensslShim(dir, log);
    const k = await timed([...kubetls, 'master', '--pki-only', '--inventory', inv], { env: { PATH: `${bin}:${process.env.PATH}` } });
    const openssl = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number)).reduce((a, [u, s]) => a + u! + s!, 0);
    return { recipe, kubetls: k, openssl };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- remote, noop, renew, scale ------------------------------------------------------------------------------------------

async function freshLab(name: string, minions: number): Promise<Lab> {
  await labDown(name).catch(() => undefined);
  const lab = await labUp({ name, minions, profile: 'legacy' });
  await execa(kubetls[0]!, [...kubetls.slice(1), 'master', '--pki-only', '--inventory', lab.inventoryPath], { timeout: TIMEOUT });
  return lab;
}

async function kubetlsRemote(minions: number, more = false): Promise<{ first: Sample; noop?: Sample; renew?: Sample }> {
  const lab = await freshLab(`bench-k${minions}`, minions);
  try {
    const inv = ['--inventory', lab.inventoryPath];
    const first = sum(await timed([...kubetls, 'master', ...inv]), await timed([...kubetls, 'minions', ...inv]));
    if (!more) return { first };
    const noop = sum(await timed([...kubetls, 'master', ...inv]), await timed([...kubetls, 'minions', ...inv]));
    const renew = await timed([...kubetls, 'renew', '--quiet', ...inv]);
    return { first, noop, renew };
  } finally {
    await lab.down();
  }
}

async function recipeRemote(minions: number): Promise<Sample> {
  const lab = await freshLab(`bench-r${minions}`, minions);
  try {
    return await timed(['bash', path.join(repo, 'bench/recipe-remote.sh'), lab.dir, lab.pkiDir, ...lab.hosts.map((h) => h.name)]);
  } finally {
    await lab.down();
  }
}

// ---- the run -------------------------------------------------------------------------------------------------------------

const started = new Date();
const load0 = loadavg()[0]!;
const commit = (await execa('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, reject: false })).stdout || '?';
const openssl = (await execa('openssl', ['version'])).stdout;
const rows: string[][] = [];
const notes: string[] = [];

const pki = { recipe: [] as Sample[], kubetls: [] as Sample[], openssl: [] as number[] };
for (let i = 0; i < RUNS; i++) {
  progress(`pki run ${i + 1}/${RUNS} (1 + ${N})`);
  const r = await pkiRun();
  pki.recipe.push(r.recipe); pki.kubetls.push(r.kubetls); pki.openssl.push(r.openssl);
}
{
  const rec = med(pki.recipe), k = med(pki.kubetls), own = median(pki.openssl), limit = own / CORES;
  rows.push([`PKI, 1 + ${N}, RSA 2048, CA 4096`, `${f2(rec.wall)} s wall, ${f2(rec.cpu)} s CPU`,
    `${f2(k.wall)} s wall, ${f2(k.cpu)} s CPU (openssl's own: ${f2(own)} s)`,
    `${f2(rec.wall / k.wall)}x faster; wall / limit (${f2(own)} s / ${CORES} cores = ${f2(limit)} s) = ${f2(k.wall / limit)}; CPU ${f2(k.cpu / rec.cpu)}x the loop's`]);
}

const help = { bin: [] as Sample[], zx: [] as Sample[] };
for (let i = 0; i < RUNS; i++) {
  help.bin.push(await timed([...kubetls, 'status', '--help']));
  help.zx.push(await timed(['npx', 'zx', 'scripts/status.ts', '--help'], { cwd: repo }));
}
rows.push(['`--help`', '-', `kubetls status --help: ${f2(med(help.bin).wall)} s; npx zx scripts/status.ts --help: ${f2(med(help.zx).wall)} s`, 'target <= 0.5 s']);

const why = labUnavailable();
const scale: { k: number; s: Sample }[] = [];
if (why) notes.push(`remote, no-op, renew and scale skipped: ${why}`);
else {
  const k = { first: [] as Sample[], noop: [] as Sample[], renew: [] as Sample[] };
  const rec: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    progress(`remote run ${i + 1}/${RUNS}: kubetls on 1 + ${N}`);
    const r = await kubetlsRemote(N, true);
    k.first.push(r.first); k.noop.push(r.noop!); k.renew.push(r.renew!);
    progress(`remote run ${i + 1}/${RUNS}: the recipe's loop on 1 + ${N}`);
    rec.push(await recipeRemote(N));
  }
  const kf = med(k.first), rf = med(rec);
  rows.push([`remote half (steps 7-18), 1 + ${N} on the lab`, `${f2(rf.wall)} s wall, ${f2(rf.cpu)} s CPU`, `${f2(kf.wall)} s wall, ${f2(kf.cpu)} s CPU`, `${f2(rf.wall / kf.wall)}x faster (target >= 15x)`]);
  rows.push([`master + minions again, nothing to do, 1 + ${N}`, '-', `${f2(med(k.noop).wall)} s wall, ${f2(med(k.noop).cpu)} s CPU`, 'target <= 3 s']);
  rows.push(['renew, nothing due', '-', `${f2(med(k.renew).wall)} s wall, ${f2(med(k.renew).cpu)} s CPU`, 'target <= 1 s']);
  for (const size of SCALE) {
    const ss: Sample[] = [];
    for (let i = 0; i < RUNS; i++) {
      progress(`scale: kubetls on 1 + ${size}, run ${i + 1}/${RUNS}`);
      ss.push(size === N ? k.first[i]! : (await kubetlsRemote(size)).first);
    }
    scale.push({ k: size, s: med(ss) });
  }
}

const table = (head: string[], body: string[][]) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
const scaleRows = scale.map(({ k, s }, i) => {
  const prev = scale[i - 1];
  const per = prev ? `${f2((s.cpu - prev.s.cpu) / (k - prev.k))} s CPU, ${f2((s.wall - prev.s.wall) / (k - prev.k))} s wall` : '-';
  return [`1 + ${k}`, `${f2(s.wall)} s`, `${f2(s.cpu)} s`, `${s.rssMiB.toFixed(0)} MiB`, per];
});
const report = `# Benchmarks

Written by \`npm run bench\` (bench/run.ts) on ${started.toISOString().slice(0, 16)}Z, commit ${commit}.
Machine: ${CORES} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}, ${openssl}; load average ${f2(load0)} at the
start, ${f2(loadavg()[0]!)} at the end (the machine is shared: read the ratios). ${RUNS} runs per figure, medians.
CPU is user + sys of the whole process tree (GNU time): for kubetls, node plus every openssl it ran; for the recipe,
bash, ssh, scp and openssl. The lab's own processes (sshd, the stand-ins) are not in either figure.

${table(['figure', 'the recipe\'s own commands', 'kubetls', 'ratio'], rows)}

Scale (kubetls \`master\` + \`minions\`, PKI already built, fresh lab each run):

${table(['hosts', 'wall', 'kubetls CPU', 'max RSS (one process)', 'per added host (from the row above)'], scaleRows)}
${notes.map((n) => `\n${n}`).join('')}
Targets missed, by how much and why, and where the CPU of the slowest phase goes: docs/speed.md.

Exact commands:
- recipe PKI: \`bash bench/recipe-pki.sh ${N}\` in an empty folder; kubetls: \`kubetls master --pki-only --inventory DIR/cluster.yaml\`
  with \`openssl\` on PATH being \`/usr/bin/time -a -o LOG -f '%U %S' /usr/bin/openssl "$@"\`
- recipe remote: \`bash bench/recipe-remote.sh LABDIR LABDIR/pki kubemaster kubeminion1 … kubeminion${N}\`;
  kubetls: \`kubetls master --inventory LABDIR/cluster.yaml\` then \`kubetls minions --inventory LABDIR/cluster.yaml\`
- no-op: the same two again; renew: \`kubetls renew --quiet --inventory LABDIR/cluster.yaml\`
- \`kubetls\` is \`node bin/kubetls.mjs\`; every command runs under \`/usr/bin/time -f '%e %U %S %M'\`
`;
writeFileSync(path.join(repo, 'bench/RESULTS.md'), report);
process.stdout.write(report);
