/**
 * Every file kubetls puts on a host: which local PKI file (or which kubeconfig built from local files) goes where,
 * with which owner and mode. Which unit reads which file is in config/profiles.ts (`unitsFor`), so that a changed file
 * restarts exactly its readers. The "Files" table of docs/profiles.md is this file, in prose.
 *
 * `{remote}` is pki.remote_dir. The legacy profile is the recipe's steps 7, 13 and 14 word for word; the modern one
 * adds kubeadm's certificate set (https://kubernetes.io/docs/setup/best-practices/certificates/) under kubeadm's
 * file names where kubeadm has one, and the recipe's names where the recipe has one (server.crt, tokens.csv).
 */
import type { KubeletCerts, Profile } from '../lib/inventory.ts';
import { envFile, KUBECONFIG_PATH, kubeconfig as kubeconfigMode, masterPki, minionPki, type FileMode } from './files.ts';

/**
 * A local PKI file (base name in pki.dir) copied to `path`. During a CA rotation a CA certificate is sent as a trust
 * bundle (old + new, lib/pki/trust.ts), unless `alone`: then it is the local file itself, always one certificate.
 */
export interface FilePlacement { file: string; path: string; mode: FileMode; alone?: boolean }
/**
 * A kubeconfig built from local files: the cluster CA, the client certificate `<cert>.crt`/`.key`, and for the
 * kubelet the bearer token too (the recipe's step 14). `user` is the kubeconfig's user entry name.
 */
export interface KubeconfigPlacement {
  path: string; cert: string; user: string; token?: boolean; mode: FileMode;
  /** the master's own apiserver (controller-manager, scheduler), not the balancer every other client uses */
  local?: boolean;
}

/** Public certificates that two services running as different users read (kube and etcd): world-readable, no secret. */
export const publicCert: FileMode = { owner: 'root', group: 'root', mode: 0o644 };
/** etcd's own keys, read by the etcd unit's user (Debian's etcd-server runs etcd as `etcd`). */
export const etcdPki: FileMode = { owner: 'etcd', group: 'etcd', mode: 0o600 };

/** Where the kubelet keeps its serving pair by default (`--cert-dir=/var/lib/kubelet/pki`): the names are its own. */
export const KUBELET_PKI = '/var/lib/kubelet/pki';
export const KUBE_PROXY_KUBECONFIG = '/var/lib/kube-proxy/kubeconfig';
/** kubelet.certificates: api: what the kubelet asks for its client certificate with while it has none (kubeadm's name). */
export const BOOTSTRAP_KUBECONFIG = '/var/lib/kubelet/bootstrap-kubeconfig';
/** kubelet.certificates: api: the kubelet's current client and serving pairs (certificate and key in one file), its own. */
export const KUBELET_CLIENT_CURRENT = `${KUBELET_PKI}/kubelet-client-current.pem`;
export const KUBELET_SERVER_CURRENT = `${KUBELET_PKI}/kubelet-server-current.pem`;

/** The master's files (step 7, and for modern the control plane's kubeadm set). */
export function masterFiles(profile: Profile): FilePlacement[] {
  const m = (file: string, mode = masterPki, name = file): FilePlacement => ({ file, path: `{remote}/${name}`, mode });
  const recipe = ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'tokens.csv'].map((f) => m(f));
  if (profile === 'legacy') return recipe;
  // the controller-manager's signer: the certificate ca.key belongs to, alone. The real kube-controller-manager
  // refuses a bundle there ("expected 1 certificate, found 2", pkg/controller/certificates/signer/ca_provider.go),
  // and ca.crt is one during a CA rotation
  const signer: FilePlacement = { file: 'ca.crt', path: '{remote}/ca-signer.crt', mode: masterPki, alone: true };
  return [...recipe, signer, m('sa.key'), m('sa.pub'),
    m('apiserver-kubelet-client.crt'), m('apiserver-kubelet-client.key'),
    m('apiserver-etcd-client.crt'), m('apiserver-etcd-client.key'),
    m('front-proxy-ca.crt'), m('front-proxy-client.crt'), m('front-proxy-client.key'),
    m('etcd-ca.crt', publicCert)];
}

/** The control plane's own kubeconfigs (modern): kubeadm's controller-manager.conf and scheduler.conf. */
export function masterKubeconfigs(profile: Profile): KubeconfigPlacement[] {
  if (profile === 'legacy') return [];
  return [
    { path: '{remote}/controller-manager.conf', cert: 'controller-manager', user: 'system:kube-controller-manager', mode: masterPki, local: true },
    { path: '{remote}/scheduler.conf', cert: 'scheduler', user: 'system:kube-scheduler', mode: masterPki, local: true },
  ];
}

/** An etcd member's files (modern): the etcd CA's certificate, its serving and its peer pair (kubeadm's etcd/ names, flat). */
export function etcdFiles(member: string): FilePlacement[] {
  return [
    { file: 'etcd-ca.crt', path: '{remote}/etcd-ca.crt', mode: publicCert },
    { file: `etcd-server-${member}.crt`, path: '{remote}/etcd-server.crt', mode: etcdPki },
    { file: `etcd-server-${member}.key`, path: '{remote}/etcd-server.key', mode: etcdPki },
    { file: `etcd-peer-${member}.crt`, path: '{remote}/etcd-peer.crt', mode: etcdPki },
    { file: `etcd-peer-${member}.key`, path: '{remote}/etcd-peer.key', mode: etcdPki },
  ];
}

/** A minion's files of step 13 (master.ts copies them): the CA and the node's client pair (api: the CA alone). */
export function minionFiles(name: string, kubelet: KubeletCerts = 'push'): FilePlacement[] {
  return ['ca.crt', ...(kubelet === 'api' ? [] : [`${name}.crt`, `${name}.key`])].map((file): FilePlacement => ({ file, path: `{remote}/${file}`, mode: minionPki }));
}

/** Modern: the kubelet's serving pair (minions.ts installs it with the kubelet's other inputs); api: the kubelet's own. */
export function kubeletFiles(profile: Profile, name: string, kubelet: KubeletCerts = 'push'): FilePlacement[] {
  if (profile === 'legacy' || kubelet === 'api') return [];
  return [
    { file: `kubelet-${name}.crt`, path: `${KUBELET_PKI}/kubelet.crt`, mode: minionPki },
    { file: `kubelet-${name}.key`, path: `${KUBELET_PKI}/kubelet.key`, mode: minionPki },
  ];
}

/**
 * A minion's kubeconfigs: the kubelet's (step 14, its node identity + the token) and, modern, kube-proxy's own. With
 * kubelet.certificates: api the kubelet writes its kubeconfig itself, after it joined with a bootstrap token
 * (lib/join.ts writes the bootstrap kubeconfig then, and removes it once the node is in).
 */
export function minionKubeconfigs(profile: Profile, name: string, certs: KubeletCerts = 'push'): KubeconfigPlacement[] {
  const kubelet: KubeconfigPlacement = { path: KUBECONFIG_PATH, cert: name, user: 'kubelet', token: true, mode: kubeconfigMode };
  const proxy: KubeconfigPlacement = { path: KUBE_PROXY_KUBECONFIG, cert: 'kube-proxy', user: 'system:kube-proxy', mode: kubeconfigMode };
  if (profile === 'legacy') return [kubelet];
  return certs === 'api' ? [proxy] : [kubelet, proxy];
}

/** /etc/default/etcd, as Debian's etcd-server package ships it (root:root 0644, no secret). */
export const ETCD_ENV = '/etc/default/etcd';
export const etcdEnvMode = envFile;
