// npm run bench: the speed claims of kubetls, measured side by side in one run (the machine is small and noisy:
// read the ratios, not the seconds).
//   1. PKI for 1 CA + server + N minions: key generation bounded by the CPU count vs one at a time
//   2. minions.ts over SSH to N lab minions: --concurrency 16 vs --concurrency 1 (fresh hosts each time)
//   3. the lab itself: 1+50 hosts up and down (bench/lab.ts)
// Bounded: fixed sizes, every step has a timeout; nothing but loopback addresses is contacted.
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { labDown, labUnavailable, labUp } from '../lib/lab/index.ts';
import { loadInventory } from '../lib/inventory.ts';
import { configureLog } from '../lib/log.ts';
import { applyPki, planPki } from '../lib/pki.ts';
import { writeInventory } from '../test/helpers/inventory.ts';

configureLog({ sink: () => undefined });
const N = Number(process.env.BENCH_MINIONS ?? 12);
const seconds = (t0: number) => (performance.now() - t0) / 1000;

async function pki(concurrency: number): Promise<number> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kubetls-bench-'));
  const inv = loadInventory(writeInventory({ pki: { ca_bits: 4096 }, minions: Array.from({ length: N }, (_, i) => `kubeminion${i + 1}`) }, dir));
  const t0 = performance.now();
  await applyPki(inv, planPki(inv), { concurrency });
  const s = seconds(t0);
  rmSync(dir, { recursive: true, force: true });
  return s;
}

async function rollout(concurrency: number): Promise<number> {
  const name = `bench-rollout-${concurrency}`;
  await labDown(name).catch(() => undefined);
  const lab = await labUp({ name, minions: N, profile: 'legacy' });
  try {
    const zx = path.resolve('node_modules/.bin/zx');
    await execa(zx, ['scripts/master.ts', '--inventory', lab.inventoryPath, '--concurrency', String(concurrency)], { timeout: 300_000 });
    const t0 = performance.now();
    await execa(zx, ['scripts/minions.ts', '--inventory', lab.inventoryPath, '--concurrency', String(concurrency)], { timeout: 300_000 });
    return seconds(t0);
  } finally {
    await lab.down();
  }
}

const cpus = availableParallelism();
const [pkiPar, pkiSer] = [await pki(cpus), await pki(1)];
console.log(`PKI, CA 4096 + server + ${N} minions (rsa 2048): parallel(${cpus}) ${pkiPar.toFixed(2)} s, serial ${pkiSer.toFixed(2)} s, ratio ${(pkiSer / pkiPar).toFixed(2)}x`);

const why = labUnavailable();
if (why) console.log(`rollout and lab benches skipped: ${why}`);
else {
  const [par, ser] = [await rollout(16), await rollout(1)];
  console.log(`minions.ts to ${N} minions (kubeconfig, 3 env files, 2 restarts + active gate each): --concurrency 16 ${par.toFixed(2)} s, --concurrency 1 ${ser.toFixed(2)} s, ratio ${(ser / par).toFixed(2)}x`);
  const lab = await execa(process.execPath, ['--import=tsx', 'bench/lab.ts', '50'], { reject: false, timeout: 120_000 });
  console.log(lab.stdout.trim() || lab.stderr.trim());
}
