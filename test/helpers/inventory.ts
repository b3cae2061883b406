/** Test inventories: the shipped cluster.yaml's shape, written to a fresh temp folder, with overrides. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';

export const repoRoot = path.resolve(import.meta.dirname, '../..');

/** Temp folders made by tempDir(), removed when the test process exits: test keys and inventories never pile up in /tmp. */
const made: string[] = [];
process.once('exit', () => {
  for (const dir of made) try { rmSync(dir, { recursive: true, force: true }); } catch { /* a folder a test made unreadable: left */ }
});

/** A fresh folder under the system temp folder, removed when this test process exits. */
export function tempDir(prefix = 'kubetls-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export interface InventoryDoc {
  [key: string]: unknown;
}

/** The recipe's cluster with test-friendly key sizes (2048-bit CA: the 4096-bit default costs seconds per test). */
export function baseInventory(): InventoryDoc {
  return {
    cluster: 'debian-cluster',
    profile: 'legacy',
    pki: { dir: 'pki', remote_dir: '/srv/kubernetes', key: 'rsa', ca_bits: 2048, bits: 2048, ca_days: 3650, days: 365, renew_before_days: 30 },
    apiserver: { cn: 'kubernetes.default.svc', dns: ['kubernetes.default.svc', 'kubemaster'], ip: ['10.24.0.1'], port: 6443 },
    cluster_dns: '10.24.0.10',
    cluster_domain: 'kubic.local',
    master: { name: 'kubemaster', address: 'kubemaster' },
    minions: ['kubeminion1', 'kubeminion2'],
  };
}

/** Write an inventory (the base one with `patch` merged at the top level and into `pki`/`apiserver`) to a new folder. */
export function writeInventory(patch: InventoryDoc = {}, dir = tempDir()): string {
  const doc = baseInventory();
  for (const [k, v] of Object.entries(patch)) {
    doc[k] = v && typeof v === 'object' && !Array.isArray(v) && typeof doc[k] === 'object' ? { ...(doc[k] as object), ...v } : v;
  }
  const file = path.join(dir, 'cluster.yaml');
  writeFileSync(file, stringify(doc));
  return file;
}
