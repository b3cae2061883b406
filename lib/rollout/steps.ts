/**
 * The recipe's steps on one host, each a HostJob for converge (docs/recipe.md):
 *   masterSteps    steps 7, 9, 10 and 11 on a master (modern: its kubeconfigs, the scheduler, etcd when a member)
 *   etcdSteps      an etcd member that is a host of its own (modern)
 *   pkiToMinion    step 13: ca.crt, <minion>.crt, <minion>.key on a minion (master.ts; restarts left to minions.ts)
 *   minionSteps    steps 14–18: the kubeconfig(s), /etc/kubernetes/{config,kubelet,proxy}, restarts, gates
 */
import path from 'node:path';
import * as modes from '../../config/files.ts';
import { ETCD_ENV, kubeletFiles, minionFiles } from '../../config/layout.ts';
import { etcdEnv, masterEnv, minionEnv } from '../../config/profiles.ts';
import type { Inventory } from '../inventory.ts';
import type { HostOutcome, RolloutOptions, Step } from '../remote/hosts.ts';
import type { Remote } from '../remote/remote.ts';
import { converge } from './converge.ts';
import { desired, desiredKubeconfig, flagContext, isEtcdMember, kubeconfigsFor, placementsFor, rolesFor } from './desired.ts';
import { gateFor, staleApiserver } from './gates.ts';

/**
 * docs/recipe.md steps 7, 9, 10 and 11 on a master (modern: also its kubeconfigs, the scheduler, and etcd when the master
 * is a member). The gate waits until its 6443 serves the local server.crt (and, modern, is ready).
 */
export async function masterSteps(inv: Inventory, r: Remote, step: Step, out: HostOutcome, o: RolloutOptions = {}): Promise<void> {
  const host = r.host;
  const member = isEtcdMember(inv, host);
  const ctx = flagContext(inv, host);
  await converge(inv, r, step, out, {
    dirs: [{ dir: inv.pki.remoteDir, mode: modes.masterPkiDir, takeOver: modes.SERVICE_USER }, { dir: '/etc/kubernetes', mode: modes.envDir },
      ...(member ? [{ dir: path.posix.dirname(ETCD_ENV), mode: modes.envDir }] : [])],
    files: [...placementsFor(inv, host).map((p) => desired(inv, p)), ...kubeconfigsFor(inv, host).map((k) => desiredKubeconfig(inv, k, host))],
    env: [...masterEnv(inv.profile, ctx), ...(member ? etcdEnv(ctx, host) : [])],
    roles: rolesFor(inv, host),
    caFile: 'ca.crt',
    stale: async (already) => (already.includes('kube-apiserver') ? [] : staleApiserver(inv, r)),
    gate: gateFor(inv, r),
  }, o, { files: 'install PKI', env: 'configure' });
}

/** Modern: an etcd member that is a host of its own: its etcd pairs, /etc/default/etcd, and `etcd` restarted. */
export async function etcdSteps(inv: Inventory, r: Remote, step: Step, out: HostOutcome, o: RolloutOptions = {}): Promise<void> {
  await converge(inv, r, step, out, {
    dirs: [{ dir: inv.pki.remoteDir, mode: modes.masterPkiDir }, { dir: path.posix.dirname(ETCD_ENV), mode: modes.envDir }],
    files: placementsFor(inv, r.host).map((p) => desired(inv, p)),
    env: etcdEnv(flagContext(inv), r.host),
    roles: ['etcd'],
    caFile: 'etcd-ca.crt',
    gate: gateFor(inv, r),
  }, o, { files: 'install PKI', env: 'configure' });
}


/**
 * docs/recipe.md step 13 for one minion: ca.crt, <minion>.crt, <minion>.key as root:root 0600 (no `rm -fr` of the folder).
 * Nothing is restarted here; a unit that reads one of these files (modern: the kubelet's --client-ca-file) is
 * recorded as owing a restart, which minions.ts does.
 */
export async function pkiToMinion(inv: Inventory, r: Remote, step: Step, out: HostOutcome, o: RolloutOptions = {}): Promise<void> {
  await converge(inv, r, step, out, {
    dirs: [{ dir: inv.pki.remoteDir, mode: modes.minionPkiDir }],
    files: minionFiles(r.host.name).map((p) => desired(inv, p)),
    env: [],
    roles: ['minion'],
    deferRestart: true,
    caFile: 'ca.crt',
    gate: async () => {},
  }, o, { files: 'install PKI', env: 'configure' });
}

/**
 * docs/recipe.md steps 14–18 for one minion: kubeconfig(s), /etc/kubernetes/{config,kubelet,proxy}, (modern) the kubelet's
 * serving pair, restarts, active gate.
 */
export async function minionSteps(inv: Inventory, r: Remote, step: Step, out: HostOutcome, o: RolloutOptions = {}): Promise<void> {
  const kcs = kubeconfigsFor(inv, r.host);
  await converge(inv, r, step, out, {
    dirs: [...new Set([...kcs.map((k) => path.posix.dirname(k.path)), ...kubeletFiles(inv.profile, r.host.name).map((p) => path.posix.dirname(p.path))])]
      .map((dir) => ({ dir, mode: { ...modes.kubeconfig, mode: 0o700 } })).concat({ dir: '/etc/kubernetes', mode: modes.envDir }, { dir: inv.pki.remoteDir, mode: modes.minionPkiDir }),
    files: [...kcs.map((k) => desiredKubeconfig(inv, k, r.host)), ...kubeletFiles(inv.profile, r.host.name).map((p) => desired(inv, p))],
    // remote_dir is only read here (its ca.crt tells which CA the host holds), but even a read is done below a proven folder
    env: minionEnv(inv.profile, flagContext(inv), r.host),
    roles: ['minion'],
    caFile: 'ca.crt',
    gate: gateFor(inv, r),
  }, o, { files: 'kubeconfig', env: 'configure' });
}
