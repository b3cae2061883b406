/**
 * The recipe's steps on one host, each a HostJob for converge (docs/recipe.md):
 *   masterSteps    steps 7, 9, 10 and 11 on a master (modern: its kubeconfigs, the scheduler, etcd when a member)
 *   etcdSteps      an etcd member that is a host of its own (modern)
 *   pkiToMinion    step 13: ca.crt, <minion>.crt, <minion>.key on a minion (master.ts; restarts left to minions.ts)
 *   minionSteps    steps 14–18: the kubeconfig(s), /etc/kubernetes/{config,kubelet,proxy}, restarts, gates
 */
import path from 'node:path';
import * as modes from '../../config/files.ts';
import { KUBECONFIG_PATH } from '../../config/files.ts';
import { BOOTSTRAP_KUBECONFIG, ETCD_ENV, KUBELET_PKI, kubeletFiles, minionFiles } from '../../config/layout.ts';
import { etcdEnv, masterEnv, minionEnv } from '../../config/profiles.ts';
import type { Inventory } from '../inventory.ts';
import { bootstrapKubeconfig, createToken, deleteTokens, finishJoin, needsJoin, ownKubeconfig, waitRegistered } from '../join.ts';
import { log } from '../log.ts';
import type { HostOutcome, RolloutOptions, Step } from '../remote/hosts.ts';
import type { Remote } from '../remote/remote.ts';
import { converge } from './converge.ts';
import { desired, desiredKubeconfig, flagContext, kubeletCerts, isEtcdMember, kubeconfigsFor, placementsFor, rolesFor } from './desired.ts';
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
    files: minionFiles(r.host.name, kubeletCerts(inv)).map((p) => desired(inv, p)),
    env: [],
    roles: ['minion'],
    deferRestart: true,
    caFile: 'ca.crt',
    gate: async () => {},
  }, o, { files: 'install PKI', env: 'configure' });
}

/**
 * docs/recipe.md steps 14–18 for one minion: kubeconfig(s), /etc/kubernetes/{config,kubelet,proxy}, (modern) the kubelet's
 * serving pair, restarts, active gate. kubelet.certificates: api: the kubelet's own certificates instead, and a node
 * whose kubelet has none that is valid joins by bootstrap token (lib/join.ts) in the same run.
 */
export async function minionSteps(inv: Inventory, r: Remote, step: Step, out: HostOutcome, o: RolloutOptions = {}): Promise<void> {
  const kcs = kubeconfigsFor(inv, r.host);
  const api = kubeletCerts(inv) === 'api';
  if (api && r.dry) log.info(`if its kubelet has no valid client certificate of its own: a bootstrap token, ${BOOTSTRAP_KUBECONFIG}, and the token deleted once it joined`, r.host.name);
  const join = api && !r.dry && await step('inspect kubelet', () => needsJoin(inv, r));
  const token = join ? await step('bootstrap token', () => createToken(inv, r.host.name)) : undefined;
  try {
    await converge(inv, r, step, out, {
      dirs: [...new Set([...kcs.map((k) => path.posix.dirname(k.path)), ...kubeletFiles(inv.profile, r.host.name, kubeletCerts(inv)).map((p) => path.posix.dirname(p.path)),
        // api: the kubelet's folders, where files are retired and its certificate read (root's, proven like the others)
        ...(api ? [path.posix.dirname(BOOTSTRAP_KUBECONFIG), KUBELET_PKI] : [])])]
        .map((dir) => ({ dir, mode: { ...modes.kubeconfig, mode: 0o700 } })).concat({ dir: '/etc/kubernetes', mode: modes.envDir }, { dir: inv.pki.remoteDir, mode: modes.minionPkiDir }),
      files: [...kcs.map((k) => desiredKubeconfig(inv, k, r.host)), ...kubeletFiles(inv.profile, r.host.name, kubeletCerts(inv)).map((p) => desired(inv, p)),
        ...(api ? minionFiles(r.host.name, 'api').map((p) => desired(inv, p)) : []),
        ...(token ? [{ path: BOOTSTRAP_KUBECONFIG, content: () => bootstrapKubeconfig(inv, token), mode: modes.kubeconfig, label: `<bootstrap kubeconfig: ${inv.cluster}, token ${token.id}.<secret>>` }] : [])],
      // remote_dir is only read here (its ca.crt tells which CA the host holds), but even a read is done below a proven folder
      env: minionEnv(inv.profile, flagContext(inv), r.host),
      roles: ['minion'],
      caFile: 'ca.crt',
      // a join restarts the kubelet, which reads the bootstrap kubeconfig only when it starts without a certificate
      ...(join ? { stale: async () => ['kubelet'] } : {}),
      gate: gateFor(inv, r),
      retire: retiredOnMinion(inv, r.host.name, join),
    }, o, { files: 'kubeconfig', env: 'configure' });
    if (token) {
      await step('joined', async () => { await waitRegistered(inv, r.host); await finishJoin(inv, r); });
    }
  } finally {
    // whatever happened, the token goes (a join that failed is done again by the next run, with a new one)
    if (token && !out.done.includes('joined')) await deleteTokens(inv, r.host.name).catch((e: Error) => log.warn(`the bootstrap token stays until it expires: ${e.message}`, r.host.name));
  }
}

/**
 * What a switch of kubelet.certificates leaves behind that must go. To api: the kubelet kubeconfig kubetls wrote (a
 * stale embedded certificate once the kubelet has its own: with it gone the kubelet joins and writes one that names
 * kubelet-client-current.pem), the serving pair and the node's client pair kubetls pushed (the kubelet makes its own
 * keys now), and a bootstrap kubeconfig a killed join left. Back to push: the bootstrap kubeconfig; kubetls writes the
 * kubeconfig and the pairs again.
 */
export function retiredOnMinion(inv: Inventory, name: string, joining = false): { path: string; why: string; keep?: (b: Buffer) => boolean }[] {
  if (inv.profile !== 'modern') return [];
  const bootstrap = { path: BOOTSTRAP_KUBECONFIG, why: 'the bootstrap kubeconfig of a join that did not finish: its token has expired' };
  if (kubeletCerts(inv) === 'push') return [{ ...bootstrap, why: 'kubelet.certificates is push: the bootstrap kubeconfig goes' }];
  return [
    { path: KUBECONFIG_PATH, why: 'kubelet.certificates is api: the kubelet writes its own kubeconfig (naming kubelet-client-current.pem)', keep: (b: Buffer) => ownKubeconfig(inv, b) },
    ...['kubelet.crt', 'kubelet.key'].map((f) => ({ path: `${KUBELET_PKI}/${f}`, why: 'kubelet.certificates is api: the kubelet asks for its own serving certificate' })),
    ...[`${name}.crt`, `${name}.key`].map((f) => ({ path: `${inv.pki.remoteDir}/${f}`, why: 'kubelet.certificates is api: the kubelet makes its own key and client certificate' })),
    ...(joining ? [] : [bootstrap]),
  ];
}
