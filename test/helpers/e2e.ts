/** Helpers for the end-to-end tests that run our scripts against a lab. */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import path from 'node:path';
import { loadInventory } from '../../lib/inventory/load.ts';
import { parseCert } from '../../lib/pki/read.ts';
import { servedCert } from '../../lib/probe.ts';
import type { Lab } from '../../lab/index.ts';
import { ALL_UNIT_NAMES } from '../../lab/units.ts';

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** owner:group mode sha256 of a file inside a lab host, or undefined when it is missing. */
export async function remoteFile(lab: Lab, host: string, file: string): Promise<{ owner: string; mode: string; sha: string } | undefined> {
  const r = await lab.exec(host, ['sh', '-c', 'stat -c "%U:%G %a" "$1" && sha256sum < "$1"', 'sh', file]);
  if (r.exitCode !== 0) return undefined;
  const [st, sum] = r.stdout.trim().split('\n');
  const [owner, mode] = st.split(' ');
  return { owner, mode, sha: sum.split(' ')[0] };
}

/**
 * How many times kubetls started or restarted each of the kube units and etcd on a host since journal line `from`
 * (the host's real journal). Not counted: the host's own boot units, and the start systemd makes on its own after a
 * unit failed (Restart=on-failure: its "Scheduled restart job" message comes right before it): the real
 * controller-manager and scheduler exit when the apiserver they lead through goes away, and systemd starts them
 * again (lab/README.md, measured). A start kubetls makes after a failure is counted.
 */
export function restarts(lab: Lab, host: string, from = 0): Record<string, number> {
  const out: Record<string, number> = {};
  const scheduled = new Set<string>();
  for (const j of lab.journal(host).slice(from)) {
    if (!ALL_UNIT_NAMES.includes(j.unit)) continue;
    if (j.event === 'scheduled') scheduled.add(j.unit);
    else if (j.event === 'restart' || j.event === 'start') {
      if (scheduled.has(j.unit)) scheduled.delete(j.unit);
      else out[j.unit] = (out[j.unit] ?? 0) + 1;
    }
  }
  return out;
}

/** Change the lab's cluster.yaml in place (a function of the parsed document). */
export function editInventory(lab: Lab, edit: (doc: Record<string, any>) => void, file = lab.inventoryPath): string {
  const doc = parse(readFileSync(lab.inventoryPath, 'utf8')) as Record<string, any>;
  edit(doc);
  writeFileSync(file, stringify(doc));
  return file;
}

/** The serial of the server.crt in the lab's local PKI, and of the certificate its apiserver serves right now. */
export const localServerSerial = (lab: Lab) => parseCert(readFileSync(path.join(lab.pkiDir, 'server.crt'))).serial;
export async function servedSerial(lab: Lab): Promise<string> {
  return (await servedCert(loadInventory(lab.inventoryPath))).serial;
}

/** Add a DNS SAN to the lab's inventory: the next master.ts reissues server.crt/key, installs them, restarts the apiserver. */
let sanCount = 0;
export const addSan = (lab: Lab, prefix = 'extra') => editInventory(lab, (d) => { d.apiserver.dns.push(`${prefix}${++sanCount}.example`); });
