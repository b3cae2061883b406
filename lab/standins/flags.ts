// Which flags each 1.4 binary of the legacy profile accepts (the recipe's era). 'b' = bool, 's' = takes a value.
// The modern profile runs the real v1.37.2 binaries, whose own parser refuses what 1.37 removed (--kubelet-https,
// --insecure-*, --admission-control, --api-servers, --logtostderr, …).
export type FlagKind = 'b' | 's';
export type FlagSpec = Record<string, FlagKind>;

const spec = (bools: string, strings: string): FlagSpec => {
  const s: FlagSpec = {};
  for (const f of strings.split(/\s+/).filter(Boolean)) s[f] = 's';
  for (const f of bools.split(/\s+/).filter(Boolean)) s[f] = 'b';
  return s;
};

const KLOG_LEGACY = spec('logtostderr alsologtostderr', 'v vmodule log-dir log-flush-frequency stderrthreshold log-backtrace-at');

type Binary = 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kubelet' | 'kube-proxy';

const LEGACY: Record<Binary, FlagSpec> = {
  'kube-apiserver': {
    ...KLOG_LEGACY,
    ...spec('allow-privileged kubelet-https enable-swagger-ui service-account-lookup watch-cache anonymous-auth profiling',
      'admission-control admission-control-config-file advertise-address apiserver-count authorization-mode ' +
        'authorization-policy-file basic-auth-file bind-address cert-dir client-ca-file cloud-config cloud-provider ' +
        'cors-allowed-origins etcd-cafile etcd-certfile etcd-keyfile etcd-prefix etcd-servers etcd-servers-overrides ' +
        'event-ttl insecure-bind-address insecure-port port address kubelet-certificate-authority kubelet-client-certificate ' +
        'kubelet-client-key kubelet-port kubelet-timeout master-service-namespace max-requests-inflight ' +
        'min-request-timeout public-address-override runtime-config secure-port service-account-key-file ' +
        'service-cluster-ip-range service-node-port-range storage-backend tls-cert-file tls-private-key-file ' +
        'token-auth-file'),
  },
  'kube-controller-manager': {
    ...KLOG_LEGACY,
    ...spec('allocate-node-cidrs leader-elect use-service-account-credentials profiling',
      'address port master kubeconfig cloud-provider cluster-cidr cluster-name cluster-signing-cert-file ' +
        'cluster-signing-key-file concurrent-deployment-syncs concurrent-endpoint-syncs node-monitor-grace-period ' +
        'node-monitor-period node-startup-grace-period pod-eviction-timeout root-ca-file ' +
        'service-account-private-key-file service-cluster-ip-range terminated-pod-gc-threshold'),
  },
  'kube-scheduler': {
    ...KLOG_LEGACY,
    ...spec('leader-elect profiling', 'address port master kubeconfig algorithm-provider policy-config-file scheduler-name'),
  },
  kubelet: {
    ...KLOG_LEGACY,
    ...spec('allow-privileged enable-server enable-debugging-handlers register-node register-schedulable ' +
      'require-kubeconfig',
      'address port api-servers cadvisor-port cert-dir cgroup-root client-ca-file cluster-dns cluster-domain config ' +
        'container-runtime docker-endpoint hairpin-mode healthz-bind-address healthz-port hostname-override ' +
        'image-gc-high-threshold kubeconfig max-pods network-plugin node-ip node-labels node-status-update-frequency ' +
        'pod-infra-container-image read-only-port root-dir tls-cert-file tls-private-key-file'),
  },
  'kube-proxy': {
    ...KLOG_LEGACY,
    ...spec('masquerade-all', 'bind-address cluster-cidr healthz-bind-address healthz-port hostname-override ' +
      'kubeconfig master proxy-mode proxy-port-range'),
  },
};

export function flagSpec(binary: Binary): FlagSpec {
  return LEGACY[binary];
}

export class FlagError extends Error {}

export interface ParsedFlags {
  values: Map<string, string>;
  args: string[];
  get(name: string): string | undefined;
  bool(name: string): boolean;
}

const BOOL_TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True'];
const BOOL_FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False'];

/** pflag semantics: `--a=b`, `--a b`, `--bool`, `--bool=false`; `_` in names normalised to `-` (as Kubernetes'
 * WordSepNormalizeFunc does); `-v N` shorthand. Errors use cobra's wording. */
export function parseFlags(argv: string[], spec: FlagSpec): ParsedFlags {
  const values = new Map<string, string>();
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    let raw: string;
    let value: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      raw = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      value = eq >= 0 ? a.slice(eq + 1) : undefined;
    } else if (a.startsWith('-') && a.length > 1) {
      const short = a.slice(1, 2);
      if (short !== 'v') throw new FlagError(`unknown shorthand flag: '${short}' in ${a}`);
      raw = 'v';
      value = a.length > 2 ? a.slice(a[2] === '=' ? 3 : 2) : undefined;
    } else {
      args.push(a);
      continue;
    }
    const name = raw.replace(/_/g, '-');
    const kind = spec[name];
    if (!kind) throw new FlagError(`unknown flag: --${raw}`);
    if (kind === 'b') {
      const v = value ?? 'true';
      if (!BOOL_TRUE.includes(v) && !BOOL_FALSE.includes(v)) {
        throw new FlagError(`invalid argument "${v}" for "--${raw}" flag: strconv.ParseBool: parsing "${v}": invalid syntax`);
      }
      values.set(name, BOOL_TRUE.includes(v) ? 'true' : 'false');
    } else {
      if (value === undefined) {
        if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: --${raw}`);
        value = argv[++i]!;
      }
      values.set(name, value);
    }
  }
  return {
    values,
    args,
    get: (n) => values.get(n),
    bool: (n) => values.get(n) === 'true',
  };
}
