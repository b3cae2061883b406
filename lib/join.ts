/**
 * kubelet.certificates: api: a node joins by bootstrap token (Kubernetes' TLS bootstrapping, as `kubeadm join` does it).
 * minions.ts (and join.ts, for one node) calls it for a node whose kubelet has no valid client certificate of its own:
 *
 *   1. a token: a `bootstrap.kubernetes.io/token` Secret in kube-system that expires after TOKEN_MINUTES, in kubetls's
 *      own group (BOOTSTRAP_GROUP), labelled with the node it is for; an earlier one of that node is deleted first;
 *   2. the bootstrap kubeconfig (/var/lib/kubelet/bootstrap-kubeconfig, 0600): the cluster CA and that token only;
 *   3. the kubelet restarted: it makes its key, asks for a client certificate with the token (the controller-manager's
 *      built-in approver signs it: the group may, lib/rbac.ts), writes its kubeconfig, registers, and asks for its
 *      serving certificate (approved by the gate, approve.ts's rules);
 *   4. once the node is registered: the Secret deleted and the bootstrap kubeconfig removed. A run killed before that
 *      leaves a token that expires by itself (the controller-manager's tokencleaner deletes it).
 *
 * No private key of the node exists outside it: the kubelet makes its own, and kubetls holds none of it.
 * The token's secret half is written to the node's file and sent to the apiserver, never logged.
 */
import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BOOTSTRAP_KUBECONFIG, KUBELET_CLIENT_CURRENT } from '../config/layout.ts';
import { KUBECONFIG_PATH } from '../config/files.ts';
import { apiTarget, type Host, type Inventory, urlOf } from './inventory.ts';
import { parse } from 'yaml';
import { kubeconfig } from './kubeconfig.ts';
import { kubeletClientRow } from './kubelet-own.ts';
import { log } from './log.ts';
import { deployedBytes } from './pki/trust.ts';
import { adminCredential, apiRequest } from './probe.ts';
import type { Remote } from './remote/remote.ts';

/** The group every kubetls bootstrap token gives (system:bootstrappers:<…>, the form the apiserver requires). */
export const BOOTSTRAP_GROUP = 'system:bootstrappers:kubetls';
/** How long a token lives: a join takes seconds; the margin is for a slow node. */
export const TOKEN_MINUTES = 15;
const SECRETS = '/api/v1/namespaces/kube-system/secrets';
const NODE_LABEL = 'kubetls.io/node';

export interface BootstrapToken { id: string; secret: string; expires: Date }

/** [a-z0-9]{n} from the CSPRNG: the alphabet and lengths the bootstrap token format requires (6 and 16). */
const random = (n: number) => Array.from({ length: n }, () => 'abcdefghijklmnopqrstuvwxyz0123456789'[randomInt(36)]).join('');


/** The Secret the apiserver reads a bootstrap token from (https://kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/). */
export function tokenSecret(node: string, t: BootstrapToken): object {
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'bootstrap.kubernetes.io/token',
    metadata: { name: `bootstrap-token-${t.id}`, namespace: 'kube-system', labels: { 'app.kubernetes.io/managed-by': 'kubetls', [NODE_LABEL]: node } },
    stringData: {
      description: `kubetls join ${node}`, 'token-id': t.id, 'token-secret': t.secret, expiration: t.expires.toISOString().replace(/\.\d+Z$/, 'Z'),
      'usage-bootstrap-authentication': 'true', 'auth-extra-groups': BOOTSTRAP_GROUP,
    },
  };
}

/**
 * Make a token for `node` (as admin), after deleting any earlier kubetls token of that node. A POST that failed may
 * still have made it (an answer lost): the node's tokens are deleted again before the error goes on.
 */
export async function createToken(inv: Inventory, node: string, now = new Date()): Promise<BootstrapToken> {
  try {
    return await makeToken(inv, node, now);
  } catch (e) {
    await deleteTokens(inv, node).catch(() => undefined);
    throw e;
  }
}
async function makeToken(inv: Inventory, node: string, now: Date): Promise<BootstrapToken> {
  await deleteTokens(inv, node);
  const t: BootstrapToken = { id: random(6), secret: random(16), expires: new Date(now.getTime() + TOKEN_MINUTES * 60_000) };
  log.cmd(['kubectl', '-n', 'kube-system', 'create', 'secret', 'generic', `bootstrap-token-${t.id}`, '--type', 'bootstrap.kubernetes.io/token',
    `--from-literal=token-id=${t.id}`, '--from-literal=token-secret=<secret>', `--from-literal=expiration=${t.expires.toISOString()}`,
    '--from-literal=usage-bootstrap-authentication=true', `--from-literal=auth-extra-groups=${BOOTSTRAP_GROUP}`], node);
  const r = await apiRequest(inv, 'POST', SECRETS, adminCredential(inv), tokenSecret(node, t));
  if (r.status !== 201) throw new Error(`create secret bootstrap-token-${t.id}: HTTP ${r.status} ${JSON.stringify((r.json as { message?: string })?.message ?? '').slice(0, 200)}`);
  return t;
}

/** Delete every kubetls bootstrap token made for `node`, or for any node (none: nothing to do). */
export async function deleteTokens(inv: Inventory, node?: string): Promise<void> {
  const selector = encodeURIComponent(`app.kubernetes.io/managed-by=kubetls,${node ? `${NODE_LABEL}=${node}` : NODE_LABEL}`);
  const list = await apiRequest(inv, 'GET', `${SECRETS}?labelSelector=${selector}`, adminCredential(inv));
  if (list.status !== 200) throw new Error(`list bootstrap tokens of ${node}: HTTP ${list.status}`);
  for (const s of (list.json as { items?: { metadata: { name: string } }[] }).items ?? []) {
    log.cmd(['kubectl', '-n', 'kube-system', 'delete', 'secret', s.metadata.name], node);
    const d = await apiRequest(inv, 'DELETE', `${SECRETS}/${encodeURIComponent(s.metadata.name)}`, adminCredential(inv));
    if (d.status !== 200 && d.status !== 404) throw new Error(`delete secret ${s.metadata.name}: HTTP ${d.status}`);
  }
}

/** The bootstrap kubeconfig: the cluster CA (the bundle of a CA rotation's phase) and the token, no client certificate. */
export function bootstrapKubeconfig(inv: Inventory, t: BootstrapToken): Buffer {
  return Buffer.from(kubeconfig({ cluster: inv.cluster, server: urlOf(apiTarget(inv)), ca: deployedBytes(inv, 'ca.crt'), token: `${t.id}.${t.secret}`,
    user: 'kubelet-bootstrap', context: `kubelet-bootstrap@${inv.cluster}` }));
}

/**
 * Whether a node's kubelet must join: it has no client certificate of its own that is in date, issued by the cluster
 * CA for this node (lib/kubelet-own.ts reads it on the node: only the certificate crosses the connection), or its
 * kubeconfig is not one this cluster would give it today (ownKubeconfig).
 */
export async function needsJoin(inv: Inventory, r: Remote): Promise<boolean> {
  const c = await kubeletClientRow(inv, r, new Date());
  if (c.status !== 'ok' && !c.status.startsWith('renew due')) {
    log.info(`${c.where}: ${c.status}: the node joins`, r.host.name);
    return true;
  }
  const kc = await r.read(KUBECONFIG_PATH).catch(() => undefined);
  if (kc && ownKubeconfig(inv, kc)) return false;
  log.info(`${KUBECONFIG_PATH} is not the kubelet's own for this cluster (its server, its CA, kubelet-client-current.pem): the node joins`, r.host.name);
  return true;
}

/**
 * The kubeconfig a kubelet wrote after it joined this cluster as it is today: one cluster, the apiserver every node
 * uses (the balancer, or the master) and the cluster CA as the nodes receive it, one user whose certificate and key are
 * kubelet-client-current.pem. Anything else (kubetls's pushed one, one of another endpoint or CA) is retired, and the
 * node joins again.
 */
export function ownKubeconfig(inv: Inventory, b: Buffer): boolean {
  type Kc = { clusters?: { cluster?: Record<string, string> }[]; users?: { user?: Record<string, string> }[] };
  let doc: Kc;
  try { doc = parse(b.toString('utf8')) as Kc; } catch { return false; }
  const cluster = doc?.clusters?.length === 1 ? doc.clusters[0]!.cluster : undefined;
  const user = doc?.users?.length === 1 ? doc.users[0]!.user : undefined;
  if (!cluster || !user) return false;
  let ca: Buffer;
  try { ca = deployedBytes(inv, 'ca.crt'); } catch { return false; }
  return cluster.server === urlOf(apiTarget(inv)) && Buffer.from(cluster['certificate-authority-data'] ?? '', 'base64').equals(ca)
    && user['client-certificate'] === KUBELET_CLIENT_CURRENT && user['client-key'] === KUBELET_CLIENT_CURRENT;
}

/** Wait (bounded) until the node is registered (its Node object exists), as admin. */
export async function waitRegistered(inv: Inventory, node: Host, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await apiRequest(inv, 'GET', `/api/v1/nodes/${encodeURIComponent(node.name)}`, adminCredential(inv)).catch((e: Error) => ({ status: 0, json: e.message }));
    if (r.status === 200) { log.info(`node ${node.name} is registered`, node.name); return; }
    if (Date.now() > end) throw new Error(`node ${node.name} is not registered after ${timeoutMs / 1000} s (HTTP ${r.status}): see journalctl -u kubelet on it`);
    await sleep(1000);
  }
}

/** After a join: the token deleted and the bootstrap kubeconfig removed (its token is dead; nothing reads it any more). */
export async function finishJoin(inv: Inventory, r: Remote): Promise<void> {
  await deleteTokens(inv, r.host.name);
  // and any backup of it (a join that a killed run left had written one): no copy of a token stays
  await r.run(['sh', '-c', 'rm -f -- "$1" "$1".bak-*', 'sh', BOOTSTRAP_KUBECONFIG]);
}
