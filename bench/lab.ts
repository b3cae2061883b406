// How long the lab takes: up and down of 1 master + K minions (default 50), then one SSH round trip to every host, and
// the hosts' memory once booted (every process of every host's cgroups, VmRSS summed), with no Kubernetes unit
// started: the price of the hosts themselves. Every host boots the real systemd (lab/nspawn.ts).
//   node --import=tsx bench/lab.ts [K] [--profile legacy|modern]
// No target: the figures are reported (lab/README.md keeps them); the run fails only when a host did not answer.
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { cgroupPids, cgroupsOf, netCgroupOf } from '../lab/nspawn.ts';
import { labDown, labUp } from '../lab/index.ts';

const args = process.argv.slice(2);
const profile = args[args.indexOf('--profile') + 1] === 'modern' && args.includes('--profile') ? 'modern' : 'legacy';
const minions = Number(args.find((a) => /^\d+$/.test(a)) ?? 50);
const name = `bench-${profile}`;
await labDown(name).catch(() => {});
let t0 = performance.now();
const lab = await labUp({ name, minions, profile });
const up = (performance.now() - t0) / 1000;
t0 = performance.now();
const results = await Promise.all(lab.hosts.map((h) =>
  execa('ssh', ['-F', lab.sshConfigPath, h.name, 'hostname'], { reject: false, timeout: 30000 })));
const sshAll = (performance.now() - t0) / 1000;
const ok = results.filter((r, i) => r.exitCode === 0 && r.stdout.trim() === lab.hosts[i]!.name).length;
let memory = '';
{
  // resident memory of every process of every host (the cgroups' own counters are not per host on a shared v1 tree)
  let kib = 0;
  let procs = 0;
  for (const h of lab.hosts) {
    // every hierarchy holds every process once: count each PID once
    for (const pid of new Set([...cgroupsOf(name, h.name), netCgroupOf(name, h.name)].flatMap(cgroupPids))) {
      try {
        kib += Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
        procs++;
      } catch { /* gone */ }
    }
  }
  memory = `, memory ${(kib / 1024).toFixed(0)} MiB RSS in ${procs} processes (${(kib / 1024 / lab.hosts.length).toFixed(1)} MiB per host)`;
}
t0 = performance.now();
await labDown(lab.dir);
const down = (performance.now() - t0) / 1000;
console.log(`lab bench (${profile}): 1+${minions} hosts: up ${up.toFixed(2)} s, ssh hostname to all ${sshAll.toFixed(2)} s (${ok}/${lab.hosts.length} ok), down ${down.toFixed(2)} s${memory}`);
process.exitCode = ok === lab.hosts.length ? 0 : 1;
