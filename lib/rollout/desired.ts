/**
 * What each host should hold, decided locally and purely from the inventory and pki.dir: its files (config/layout.ts),
 * its kubeconfigs, the variables of its environment files (config/profiles.ts), and which of its units read which
 * path. converge brings a host to it; verify, status and renew read it to compare and to know where a file goes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FileMode } from '../../config/files.ts';
import * as modes from '../../config/files.ts';
import { etcdFiles, kubeletFiles, masterFiles, masterKubeconfigs, minionFiles, minionKubeconfigs, type FilePlacement, type KubeconfigPlacement } from '../../config/layout.ts';
import { etcdEnv, masterEnv, minionEnv, unitsFor, type EnvEdit, type FlagContext, type UnitRole } from '../../config/profiles.ts';
import { allHosts, apiTarget, type Host, type Inventory, type KubeletCerts, kubeletApi, masterTarget, urlOf } from '../inventory.ts';
import { kubeconfig } from '../kubeconfig.ts';
import { shown } from '../log.ts';
import { deployedBytes } from '../pki/trust.ts';
import { runningRotation } from '../state.ts';

/** One file a host should hold. `content` is called only when not a dry run. */
export interface Desired { path: string; content: () => Buffer; mode: FileMode; label: string }

/** The flags' inputs for one host (a master binds its own address; every client names the balancer, or the master). */
export function flagContext(inv: Inventory, host: Host = inv.master): FlagContext {
  return {
    remoteDir: inv.pki.remoteDir,
    masterUrl: urlOf(apiTarget(inv)),
    masterAddress: (host.role === 'master' ? host : inv.master).address,
    drainSeconds: inv.apiserver.endpoint?.drainSeconds,
    port: inv.apiserver.port,
    clusterDns: inv.clusterDns,
    clusterDomain: inv.clusterDomain,
    serviceCidr: inv.serviceCidr,
    kubeconfig: modes.KUBECONFIG_PATH,
    cluster: inv.cluster,
    etcd: inv.etcd.members.map((m) => ({ name: m.name, address: m.address })),
    kubelet: kubeletCerts(inv),
    signingMinutes: inv.kubelet.certificateMinutes,
  };
}

/** Who carries the kubelets' certificates on this cluster (legacy: always kubetls). */
export const kubeletCerts = (inv: Inventory): KubeletCerts => (kubeletApi(inv) ? 'api' : 'push');
export const isEtcdMember = (inv: Inventory, host: Host) => inv.profile === 'modern' && inv.etcd.members.some((m) => m.name === host.name);
/** Whose units run on a host, in restart order: etcd before the apiserver that needs it. */
export const rolesFor = (inv: Inventory, host: Host): UnitRole[] =>
  (host.role === 'master' ? (isEtcdMember(inv, host) ? ['etcd', 'master'] : ['master']) : host.role === 'etcd' ? ['etcd'] : ['minion']);
/** The local files a kubeconfig is made from. */
export const kubeconfigInputs = (k: KubeconfigPlacement) => ['ca.crt', `${k.cert}.crt`, `${k.cert}.key`, ...(k.token ? ['tokens.csv'] : [])];
export const remotePath = (inv: Inventory, p: string) => p.replace('{remote}', inv.pki.remoteDir);

/** The plain files a host receives (config/layout.ts), without duplicates (etcd-ca.crt on a master that is a member). */
export function placementsFor(inv: Inventory, host: Host): FilePlacement[] {
  const list = host.role === 'master'
    ? [...masterFiles(inv.profile), ...(isEtcdMember(inv, host) ? etcdFiles(host.name) : [])]
    : host.role === 'etcd' ? etcdFiles(host.name)
      : [...minionFiles(host.name, kubeletCerts(inv)), ...kubeletFiles(inv.profile, host.name, kubeletCerts(inv))];
  return list.filter((p, i) => list.findIndex((q) => q.path === p.path) === i);
}

/** The variables kubetls sets on a host, per environment file (verify.ts checks them). */
export function envFor(inv: Inventory, host: Host): EnvEdit[] {
  const ctx = flagContext(inv, host);
  if (host.role === 'master') return [...masterEnv(inv.profile, ctx), ...(isEtcdMember(inv, host) ? etcdEnv(ctx, host) : [])];
  return host.role === 'etcd' ? etcdEnv(ctx, host) : minionEnv(inv.profile, ctx, host);
}

/** The kubeconfigs a host receives. */
export function kubeconfigsFor(inv: Inventory, host: Host): KubeconfigPlacement[] {
  return host.role === 'master' ? masterKubeconfigs(inv.profile) : host.role === 'minion' ? minionKubeconfigs(inv.profile, host.name, kubeletCerts(inv)) : [];
}

/**
 * The local files a host receives: [local path, remote path, the bytes it should hold, its owner and mode] (status.ts
 * and verify.ts compare them): the file itself, or during a CA rotation the trust bundle of its phase (lib/pki/trust.ts).
 */
export function pkiFilesFor(inv: Inventory, host: Host): [string, string, () => Buffer, FileMode][] {
  return placementsFor(inv, host).map((p) => [path.join(inv.pki.dir, p.file), remotePath(inv, p.path), placedBytes(inv, p), p.mode]);
}

/** The units kubetls runs on a host, in restart order. */
export const unitsOf = (inv: Inventory, host: Host): string[] => rolesFor(inv, host).flatMap((r) => unitsFor(inv.profile, r, kubeletCerts(inv))).map((u) => u.unit);

/**
 * Where a host would keep the restart each of its units still owes (`restart.<unit>` in PENDING_DIR: what a run that
 * was killed, or whose restart or gate failed, left behind; lib/rollout/converge.ts writes and clears them): status and
 * verify look at them in the same round trip as the files.
 */
export const restartMarkers = (inv: Inventory, host: Host): [unit: string, path: string][] => unitsOf(inv, host).map((u) => [u, `${modes.PENDING_DIR}/restart.${u}`]);

/**
 * What is wrong with the owner and mode a deployed file has, against what kubetls gives it (undefined: nothing). For a
 * secret (a key, the token, a kubeconfig that embeds a key) a mode wider than its own is `insecure mode 0644`, which
 * status and verify report as such; anything else is drift.
 */
export function modeProblem(have: { owner: string; group: string; mode: number }, want: FileMode, secret: boolean): { insecure?: string; drift?: string } | undefined {
  const octal = (m: number) => `0${m.toString(8).padStart(3, '0')}`;
  if (secret && (have.mode & ~want.mode & 0o777)) return { insecure: octal(have.mode) };
  if (have.owner !== want.owner || have.group !== want.group) return { drift: `owner ${have.owner}:${have.group}, expected ${want.owner}:${want.group}` };
  if (have.mode !== want.mode) return { drift: `mode ${octal(have.mode)}, expected ${octal(want.mode)}` };
  return undefined;
}

/** A local PKI file that holds a secret: a private key or the token (the kubeconfigs embed both). */
export const isSecret = (file: string) => file.endsWith('.key') || file.endsWith('tokens.csv');
const placedBytes = (inv: Inventory, p: FilePlacement) => () => (p.alone ? readLocal(path.join(inv.pki.dir, p.file)) : deployedLocal(inv, p.file));

/** The local PKI files a host's files are made from (base names): what renew.ts reissued reaches exactly these hosts. */
export function localInputs(inv: Inventory, host: Host): Set<string> {
  const out = new Set(placementsFor(inv, host).map((p) => p.file));
  for (const k of kubeconfigsFor(inv, host)) kubeconfigInputs(k).forEach((f) => out.add(f));
  return out;
}

/** Which hosts local PKI files (base names) reach: those whose files or kubeconfigs are made from one of them. */
export function hostsReached(inv: Inventory, files: string[]): Set<string> {
  return new Set(allHosts(inv).filter((h) => [...localInputs(inv, h)].some((f) => files.includes(f))).map((h) => h.name));
}

/**
 * Where the given local PKI files end up and who reads them there: for renew.ts --dry-run ("server.crt → kubemaster:
 * /srv/kubernetes/server.crt, restarts kube-apiserver").
 */
export function wherePlaced(inv: Inventory, files: string[]): { host: string; path: string; units: string[] }[] {
  const out: { host: string; path: string; units: string[] }[] = [];
  for (const h of allHosts(inv)) {
    const readers = (p: string) => unitsToRestart(inv, rolesFor(inv, h), [p], [], []);
    for (const p of placementsFor(inv, h)) if (files.includes(p.file)) out.push({ host: h.name, path: remotePath(inv, p.path), units: readers(remotePath(inv, p.path)) });
    for (const k of kubeconfigsFor(inv, h)) {
      if (kubeconfigInputs(k).some((f) => files.includes(f))) out.push({ host: h.name, path: remotePath(inv, k.path), units: readers(remotePath(inv, k.path)) });
    }
  }
  return out;
}

/**
 * A kubeconfig as lib/kubeconfig.ts writes it: the kubelet's is the recipe's step 14 byte for byte. Its server is the
 * balancer (or the one master); a master's own components (`local`) name that master's apiserver, as kubeadm's
 * controller-manager.conf and scheduler.conf do, so that they never depend on the balancer.
 */
export function kubeconfigContent(inv: Inventory, k: KubeconfigPlacement, host: Host = inv.master): Buffer {
  const pki = (f: string) => readLocal(path.join(inv.pki.dir, f));
  const token = k.token ? pki('tokens.csv').toString('utf8').split(',')[0] : undefined;
  return Buffer.from(kubeconfig({
    // certificate-authority-data: during a CA rotation, the trust bundle of its phase (lib/pki/trust.ts)
    cluster: inv.cluster, server: k.local ? urlOf(masterTarget(inv, host)) : urlOf(apiTarget(inv)), ca: deployedLocal(inv, 'ca.crt'), cert: pki(`${k.cert}.crt`), key: pki(`${k.cert}.key`), token,
    ...(k.user === 'kubelet' ? {} : { user: k.user, context: `${k.user}@${inv.cluster}` }),
  }));
}


/** The units to restart, in the order of config/profiles.ts: those reading a changed path, owed by an earlier run, or stale. */
export function unitsToRestart(inv: Inventory, roles: UnitRole[], changed: string[], owed: string[], stale: string[]): string[] {
  return roles.flatMap((role) => unitsFor(inv.profile, role, kubeletCerts(inv))).filter((u) => owed.includes(u.unit) || stale.includes(u.unit)
    || u.reads.some((p) => changed.includes(remotePath(inv, p)))).map((u) => u.unit);
}


export const desired = (inv: Inventory, p: FilePlacement): Desired => {
  const local = path.join(inv.pki.dir, p.file);
  return { path: remotePath(inv, p.path), content: placedBytes(inv, p), mode: p.mode, label: shown(local) };
};
export const desiredKubeconfig = (inv: Inventory, k: KubeconfigPlacement, host: Host): Desired => ({
  path: remotePath(inv, k.path), content: () => kubeconfigContent(inv, k, host), mode: k.mode,
  label: `<kubeconfig: ${inv.cluster}, user ${k.user}, ${k.cert}.crt${k.token ? ' + token' : ''} embedded>`,
});



/** A local PKI file, named in the error when it cannot be read. */
function readLocal(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`${shown(file)}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing: run scripts/master.ts first' : (e as Error).message}`);
  }
}

/** What a host receives for a local PKI file (a trust bundle during a CA rotation), named in the error when it cannot be read. */
function deployedLocal(inv: Inventory, file: string): Buffer {
  try {
    return deployedBytes(inv, file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException; // the file that could not be read: this one, or the other half of its bundle
    throw new Error(`${shown(err.path ?? path.join(inv.pki.dir, file))}: ${err.code === 'ENOENT' ? 'missing: run scripts/master.ts first' : err.message}`);
  }
}

/**
 * What to run to finish a host's files or owed restarts: during a CA rotation its own command (master.ts and
 * minions.ts refuse to run then), else renew.ts, which finishes any host an earlier run left behind (minions.ts and
 * master.ts would too).
 */
export function finishHint(inv: Inventory, host: Host): string {
  const r = runningRotation(inv);
  if (r) return `run renew.ts --rotate-ca ${r.what} (a CA rotation is running)`;
  return `run renew.ts (or ${host.role === 'minion' ? 'minions.ts' : 'master.ts'})`;
}
