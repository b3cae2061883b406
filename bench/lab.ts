// How long the lab takes: up and down of 1 master + K minions (default 50), then one SSH round trip to every host.
//   node --import=tsx bench/lab.ts [K]          (targets: up < 10 s, down < 2 s for K = 50 on 2 cores)
import { execa } from 'execa';
import { labDown, labUp } from '../lib/lab/index.ts';

const minions = Number(process.argv[2] ?? 50);
const name = 'bench';
await labDown(name).catch(() => {});
let t0 = performance.now();
const lab = await labUp({ name, minions, profile: 'modern' });
const up = (performance.now() - t0) / 1000;
t0 = performance.now();
const results = await Promise.all(lab.hosts.map((h) =>
  execa('ssh', ['-F', lab.sshConfigPath, h.name, 'hostname'], { reject: false, timeout: 30000 })));
const sshAll = (performance.now() - t0) / 1000;
const ok = results.filter((r, i) => r.exitCode === 0 && r.stdout.trim() === lab.hosts[i]!.name).length;
t0 = performance.now();
await labDown(lab.dir);
const down = (performance.now() - t0) / 1000;
console.log(`lab bench: 1+${minions} hosts: up ${up.toFixed(2)} s, ssh hostname to all ${sshAll.toFixed(2)} s (${ok}/${lab.hosts.length} ok), down ${down.toFixed(2)} s`);
process.exitCode = ok === lab.hosts.length && up < 10 && down < 2 ? 0 : 1;
