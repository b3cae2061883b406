/**
 * The kubelet kubeconfig of docs/recipe.md step 14, written as the YAML that these four commands produce:
 *   kubectl config --kubeconfig=K set-cluster CLUSTER --server=https://MASTER:6443 --certificate-authority=ca.crt --embed-certs=true
 *   kubectl config --kubeconfig=K set-credentials kubelet --client-certificate=M.crt --client-key=M.key --embed-certs=true --token=TOKEN
 *   kubectl config --kubeconfig=K set-context kubelet-context --cluster=CLUSTER --user=kubelet
 *   kubectl config --kubeconfig=K use-context kubelet-context
 * It embeds the minion's private key and the token: it is uploaded 0600 and never logged.
 */
import { parse, stringify } from 'yaml';

export interface KubeconfigInput {
  cluster: string;
  server: string; // https://kubemaster:6443
  ca: Buffer | string; // PEM
  /** a client certificate and key, embedded; none: the token alone (a bootstrap kubeconfig) */
  cert?: Buffer | string;
  key?: Buffer | string;
  token?: string;
  user?: string;
  context?: string;
  /** the name to check the server's certificate for, when `server` is an address (kubectl's tls-server-name) */
  tlsServerName?: string;
}

const b64 = (v: Buffer | string) => Buffer.from(v).toString('base64');

export function kubeconfig(k: KubeconfigInput): string {
  const user = k.user ?? 'kubelet';
  const context = k.context ?? 'kubelet-context';
  // Keys in the order kubectl writes them (sorted), so that the file is byte-for-byte what the recipe's commands make.
  return stringify({
    apiVersion: 'v1',
    clusters: [{ cluster: { 'certificate-authority-data': b64(k.ca), server: k.server, ...(k.tlsServerName ? { 'tls-server-name': k.tlsServerName } : {}) }, name: k.cluster }],
    contexts: [{ context: { cluster: k.cluster, user }, name: context }],
    'current-context': context,
    kind: 'Config',
    preferences: {},
    users: [{ name: user, user: {
      ...(k.cert && k.key ? { 'client-certificate-data': b64(k.cert), 'client-key-data': b64(k.key) } : {}),
      ...(k.token ? { token: k.token } : {}),
    } }],
  }, { lineWidth: 0, indentSeq: false });
}

/** The credentials of the current context, decoded (for verify.ts and status.ts). */
export function readKubeconfig(text: string): { server: string; ca?: Buffer; cert?: Buffer; key?: Buffer; token?: string; cluster: string } {
  const doc = parse(text) as {
    clusters?: { name: string; cluster: Record<string, string> }[];
    users?: { name: string; user: Record<string, string> }[];
    contexts?: { name: string; context: { cluster: string; user: string } }[];
    'current-context'?: string;
  };
  const ctx = doc.contexts?.find((c) => c.name === doc['current-context'])?.context;
  if (!ctx) throw new Error(`kubeconfig has no current context '${doc['current-context']}'`);
  const cluster = doc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  const user = doc.users?.find((u) => u.name === ctx.user)?.user;
  if (!cluster || !user) throw new Error('kubeconfig: the current context names a cluster or user that is not there');
  const dec = (v?: string) => (v ? Buffer.from(v, 'base64') : undefined);
  return {
    cluster: ctx.cluster,
    server: cluster.server,
    ca: dec(cluster['certificate-authority-data']),
    cert: dec(user['client-certificate-data']),
    key: dec(user['client-key-data']),
    token: user.token,
  };
}
