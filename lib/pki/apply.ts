/**
 * Carrying out a plan (lib/pki/plan.ts) with the real openssl (lib/pki/openssl.ts): keys and signatures in parallel,
 * every file made under a `.new` name in pki.dir and renamed into place once its whole item succeeded; then the
 * operator's admin.kubeconfig.
 */
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { caSpecs, type CaName } from '../../config/certs.ts';
import { local as localModes } from '../../config/files.ts';
import { writeAtomic } from '../atomic.ts';
import { apiTarget, type Inventory } from '../inventory.ts';
import { kubeconfig } from '../kubeconfig.ts';
import { log, shown } from '../log.ts';
import { ensureDir, inspectPkiDir } from './dir.ts';
import * as openssl from './openssl.ts';
import type { Plan, PlanItem } from './plan.ts';
import { writeNewToken } from './token.ts';
import { deployedBytes } from './trust.ts';

export interface ApplyOptions { dryRun?: boolean; concurrency?: number }
export interface PkiResult { plan: Plan; written: string[] }

/**
 * Carry out a plan. Keys are generated in parallel (bounded by the CPU count), the CA key alongside the others; only
 * signing waits for the CA, and signs in parallel too (each signing has a database of its own). Every file is produced
 * under a `.new` name in pki.dir and renamed into place once the whole item succeeded.
 */
export async function applyPki(inv: Inventory, plan: Plan, o: ApplyOptions = {}): Promise<PkiResult> {
  const dir = inv.pki.dir;
  const dry = { dryRun: o.dryRun };
  const written: string[] = [];
  const work = plan.items.filter((i) => i.action !== 'keep');
  inspectPkiDir(dir); // refused (PkiDirError) before anything is written, even admin.kubeconfig on a run with nothing to do
  if (!work.length && !plan.config.changed) {
    if (writeAdminKubeconfig(inv, o.dryRun)) written.push('admin.kubeconfig');
    return { plan, written };
  }

  ensureDir(dir, o.dryRun);
  const cnf = plan.config.file;
  if (plan.config.changed) {
    log.action(`cat > ${shown(cnf)}  # generated from ${shown(inv.file)} and config/openssl.ts`);
    if (!o.dryRun) writeAtomic(cnf, plan.config.text, localModes.public);
    written.push('openssl.cnf');
  }
  const p = (f: string) => path.join(dir, f);
  const tmp = (f: string) => `${p(f)}.new`;
  const commit = (item: PlanItem) => {
    for (const f of item.files) {
      if (!o.dryRun && !existsSync(tmp(f))) continue;
      log.cmd(['mv', tmp(f), p(f)]);
      if (!o.dryRun) renameSync(tmp(f), p(f));
      written.push(f);
    }
  };
  if (!o.dryRun) for (const item of work) for (const f of item.files) rmSync(tmp(f), { force: true }); // leftovers of a killed run
  const keys = pLimit(o.concurrency ?? availableParallelism());
  // Each CA's files while it is being made: its .new names; after that, the real ones. A leaf waits only for its CA.
  const caReady = new Map<CaName, Promise<void>>();
  for (const c of caSpecs(inv)) {
    const item = plan.items.find((i) => i.kind === 'ca' && i.name === c.name)!;
    caReady.set(c.name, item.action === 'create'
      ? keys(async () => {
        await openssl.genkey(tmp(`${c.name}.key`), inv.pki.key, inv.pki.caBits, dry);
        await openssl.selfSignCa({ key: tmp(`${c.name}.key`), subj: openssl.subj(c.cn), days: inv.pki.caDays, out: tmp(`${c.name}.crt`), config: cnf }, dry);
        commit(item);
      })
      : Promise.resolve());
  }

  const jobs = work.map(async (item) => {
    const spec = item.spec;
    if (item.kind === 'ca') return caReady.get(item.name as CaName);
    if (item.kind === 'token') {
      writeNewToken(inv, item.action === 'reissue', o.dryRun);
      return commit(item);
    }
    if (item.kind === 'sa') {
      await keys(async () => {
        await openssl.genkey(tmp('sa.key'), inv.pki.key, inv.pki.bits, dry);
        await openssl.pubout({ key: tmp('sa.key'), out: tmp('sa.pub') }, dry);
      });
      return commit(item);
    }
    if (!spec) return;
    const [key, csr, crt] = item.files.map(tmp);
    const subj = openssl.subj(spec.cn, spec.o);
    await keys(async () => {
      if (spec.kind === 'server') {
        await openssl.genkey(key, inv.pki.key, inv.pki.bits, dry); // step 3
        await openssl.reqNew({ key, subj, reqexts: 'SAN', config: cnf, out: csr }, dry); // step 4
      } else {
        await openssl.reqNewkey({ type: inv.pki.key, bits: inv.pki.bits, keyout: key, subj, config: cnf, out: csr }, dry); // step 12
      }
    });
    await caReady.get(spec.ca);
    await keys(() => openssl.signCsr({ csr, ca: p(`${spec.ca}.crt`), caKey: p(`${spec.ca}.key`), extensions: spec.section,
      extfile: cnf, days: inv.pki.days, out: crt }, dry)); // steps 5 and 12
    commit(item);
  });
  const results = await Promise.allSettled([...caReady.values(), ...jobs]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  if (writeAdminKubeconfig(inv, o.dryRun)) written.push('admin.kubeconfig');
  return { plan, written };
}

/**
 * The operator's kubeconfig (modern profile), kept in pki.dir beside the CA key and never sent anywhere: user
 * CN=kubernetes-admin in O=system:masters, which every cluster authorizes without an RBAC binding (a break-glass
 * credential, like kubeadm's super-admin.conf; see docs/profiles.md). It connects to master.address and checks the
 * apiserver's certificate for master.name (tls-server-name), as verify.ts does. Written when it differs from what the
 * current files give; returns true when written.
 */
export function adminKubeconfigText(inv: Inventory): string | undefined {
  const f = (n: string) => path.join(inv.pki.dir, n);
  if (inv.profile !== 'modern' || !existsSync(f('admin.crt')) || !existsSync(f('admin.key')) || !existsSync(f('ca.crt'))) return undefined;
  const api = apiTarget(inv);
  const host = isIP(api.address) === 6 ? `[${api.address}]` : api.address;
  return kubeconfig({
    cluster: inv.cluster, server: `https://${host}:${api.port}`, tlsServerName: api.name,
    ca: deployedBytes(inv, 'ca.crt'), cert: readFileSync(f('admin.crt')), key: readFileSync(f('admin.key')),
    user: 'kubernetes-admin', context: `kubernetes-admin@${inv.cluster}`,
  });
}
export function writeAdminKubeconfig(inv: Inventory, dryRun?: boolean): boolean {
  const text = adminKubeconfigText(inv);
  const file = path.join(inv.pki.dir, 'admin.kubeconfig');
  if (text === undefined || (existsSync(file) && readFileSync(file, 'utf8') === text)) return false;
  const api = apiTarget(inv);
  log.action(`kubectl config … --kubeconfig=${shown(file)}  # admin.crt + admin.key embedded, server ${api.address}:${api.port} checked for ${api.name}`);
  if (!dryRun) writeAtomic(file, text, localModes.secret);
  return true;
}
