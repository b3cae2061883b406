/**
 * Owners and modes of every file kubetls writes, local and remote.
 *
 * docs/recipe.md step 7 (`chown -R kube:nogroup /srv/kubernetes; chmod 600 /srv/kubernetes/*`) on the master: the apiserver,
 * controller-manager and scheduler run as `kube` and must read these files; nobody else needs to.
 * docs/recipe.md step 13 (`chown -R root:root; chmod 600`) on the minions: kubelet and kube-proxy run as root.
 * Modes are numbers here (0o600); in cluster.yaml they would be strings, because YAML reads 0600 as decimal 600.
 */
export interface FileMode {
  owner: string;
  group: string;
  mode: number;
}

/** The local PKI folder and what is in it (mkcert's habit: keys 0600; we keep certificates 0600 too, as the recipe). */
export const local = {
  dir: 0o700,
  secret: 0o600, // *.key, tokens.csv
  public: 0o600, // *.crt, *.csr, ca.srl, openssl.cnf: the recipe's chmod 600 applies to everything in the folder
} as const;

/** Files in pki.remote_dir on the master, read by the services that run as `kube` (step 7). */
export const masterPki: FileMode = { owner: 'kube', group: 'nogroup', mode: 0o600 };
/** Files in pki.remote_dir on a minion, read by kubelet and kube-proxy as root (step 13). */
export const minionPki: FileMode = { owner: 'root', group: 'root', mode: 0o600 };
/** /var/lib/kubelet/kubeconfig (step 14): embeds the minion's key and the token. */
export const kubeconfig: FileMode = { owner: 'root', group: 'root', mode: 0o600 };
/** /etc/kubernetes/* environment files: no secrets in them, readable like the distro ships them. */
export const envFile: FileMode = { owner: 'root', group: 'root', mode: 0o644 };

/**
 * The remote folders we create, if missing. Every folder root writes into belongs to root (lib/remote/survey.ts dirProblem):
 * the recipe's `chown -R kube:nogroup /srv/kubernetes` also gave `kube` the folder, and with it the power to plant a
 * symlink where root writes next. The files stay `kube:nogroup 0600`; the master's folder is `root:root 0755` so that
 * `kube` can reach them (it lists only names), a minion's `root:root 0700` (only root reads there).
 */
export const masterPkiDir: FileMode = { owner: 'root', group: 'root', mode: 0o755 };
export const minionPkiDir: FileMode = { owner: 'root', group: 'root', mode: 0o700 };
/** The account that the recipe's step 7 made owner of pki.remote_dir: the one owner kubetls takes the folder back from. */
export const SERVICE_USER = masterPki.owner;
/** /var/lib/kubetls: where a host remembers the restarts it still owes (root only). */
export const stateDir: FileMode = { owner: 'root', group: 'root', mode: 0o700 };
/** /etc/kubernetes, when a host lacks it (the distro packages ship it root:root 0755). */
export const envDir: FileMode = { owner: 'root', group: 'root', mode: 0o755 };

/** Where the kubelet kubeconfig lives on every minion (step 14). */
export const KUBECONFIG_PATH = '/var/lib/kubelet/kubeconfig';
/**
 * Where a host remembers a restart it still owes (`restart.<unit>`, lib/rollout/converge.ts recordRestarts) and the
 * backups a rollback would put back (`rollback.list`): root's alone (stateDir).
 */
export const PENDING_DIR = '/var/lib/kubetls';
/** How many `<file>.bak-<UTC timestamp>` copies remote writes keep per file. */
export const BACKUPS_KEPT = 3;
