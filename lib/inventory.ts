/**
 * cluster.yaml: load it once, validate everything, then hand out a typed object that the rest of kubetls trusts.
 *
 * Every problem is reported as `<file>:<line>: <key>: expected <what>, found <what>` and nothing is written
 * before the inventory is valid (scripts exit 2 on an InventoryError).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import path from 'node:path';
import { isMap, isNode, isScalar, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { z } from 'zod';

export type Profile = 'legacy' | 'modern';
export type KeyType = 'rsa' | 'ecdsa-p256' | 'ecdsa-p384';

export interface Host {
  name: string;
  /** `etcd`: a member of etcd.members that is not the master (a host of its own, reached over SSH like the others) */
  role: 'master' | 'minion' | 'etcd';
  address: string; // what we connect to; the name is what certificates and URLs use
  port: number;
  user: string;
  /** which of address, port and user cluster.yaml gave (for this host, or under ssh:): those win over ssh_config */
  explicit: { address: boolean; port: boolean; user: boolean };
}

export interface Inventory {
  file: string; // absolute path of cluster.yaml
  /** the example shipped with kubetls (its first line says so): master.ts and renew.ts warn before using it */
  example: boolean;
  cluster: string;
  profile: Profile;
  pki: {
    dir: string; // absolute
    remoteDir: string;
    key: KeyType;
    caBits: number;
    bits: number;
    caDays: number;
    days: number;
    renewBeforeDays: number;
  };
  apiserver: {
    cn: string; dns: string[]; ip: string[]; port: number;
    /**
     * The load balancer in front of the masters (`apiserver.endpoint`; required with more than one master): the
     * address every client outside the control plane uses (kubelets, kube-proxy, the operator's admin.kubeconfig).
     * kubetls does not manage the balancer; it names it in the server certificate and points the clients at it.
     */
    endpoint?: { name: string; address: string; port: number; drainSeconds: number };
  };
  clusterDns: string;
  clusterDomain: string;
  /** modern: the apiserver's --service-cluster-ip-range; its first address is the `kubernetes` service's ClusterIP */
  serviceCidr: string;
  ssh: {
    identityFile: string; knownHosts: string; sudo: boolean; user: string;
    /** the OpenSSH client config read for HostName, User, Port, IdentityFile, ProxyJump… (undefined: none) */
    configFile?: string;
    explicit: { identityFile: boolean; knownHosts: boolean };
  };
  /** The first master (the only one without HA): the CA is named after it, and single-master messages name it. */
  master: Host;
  /** Every master, in inventory order (`masters:`, or the one `master:`); the first is `master`. */
  masters: Host[];
  minions: Host[];
  /**
   * The etcd cluster (modern profile): its members in order. The default is stacked etcd: every master is a member. A
   * member named like a master IS that master host; any other member is a host of its own.
   */
  etcd: { members: Host[] };
}

export class InventoryError extends Error {
  readonly problems: string[];
  /** Each problem becomes exactly one line: a value can never add a line of its own (a forged `ERROR:` line). */
  constructor(problems: string[]) {
    const lines = problems.map(oneLine);
    super(lines.map((p) => `ERROR: ${p}`).join('\n'));
    this.problems = lines;
    this.name = 'InventoryError';
  }
}

/**
 * Control characters (C0, DEL, C1), the Unicode line and paragraph separators and the bidi overrides, written as
 * `\n`, `\t` or `\u{…}`: what a value holds stays visible, and a message stays one line that reads as it is.
 */
export function oneLine(s: string): string {
  const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => named[c] ?? `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

// ---- the schema: what each key must be, said the way the error message will say it -------------------------------

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * A subject's common name. openssl's `-subj` treats `/`, `+` and `=` as structure and X.500 names give `,` `+` `"` `\`
 * `<` `>` `;` a meaning, so a CN is kept to letters, digits, space and `. _ : @ -` (enough for `kubernetes.default.svc`
 * or `system:kube-apiserver`), starts and ends with no space, and has at most 64 characters (X.520's upper bound,
 * which openssl enforces: "string too long"). lib/openssl.ts escapes subjects anyway; this is the first line.
 */
const COMMON_NAME = /^[A-Za-z0-9._:@-](?:[A-Za-z0-9 ._:@-]{0,62}[A-Za-z0-9._:@-])?$/;

/**
 * File base names kubetls uses, or will use, in pki.dir and pki.remote_dir. A host named like one of them would get
 * `<name>.key/.csr/.crt` on top of another file of the PKI (a minion `ca` overwrites the CA). The list holds today's
 * files (ca, server, sa, tokens, openssl) and kubeadm's names for the ones a later profile may add, reserved now so
 * that no inventory that is valid today breaks then. lib/pki.ts (planPki) also refuses any plan whose files collide.
 */
export const RESERVED_NAMES = [
  'ca', 'server', 'sa', 'tokens', 'openssl', 'admin',
  'apiserver', 'apiserver-kubelet-client', 'apiserver-etcd-client', 'front-proxy-ca', 'front-proxy-client',
  'etcd-ca', 'etcd-server', 'etcd-peer', 'etcd-healthcheck-client', 'kubelet', 'controller-manager', 'scheduler', 'super-admin',
] as const;

/**
 * Folders that are never `pki.remote_dir` or `pki.dir`: the installing account makes pki.remote_dir `kube:nogroup 0700`
 * (master) or `root:root 0700` (minions), which would lock the system out of these. The list is the FHS top level,
 * the standard folders one level below `/usr`, `/usr/local` and `/var`, the folders of `/etc` that other software or
 * kubetls itself owns (`/etc/kubernetes` holds the env files, /var/lib/kubelet the kubeconfig, /var/lib/kubetls the
 * restart records), and every user's home folder (`/home/<user>`). Below the folders in UNDER_SYSTEM nothing is
 * allowed at all: they are virtual (/proc, /sys, /dev), emptied at boot (/run, /tmp, /var/tmp, /var/run) or writable
 * by every user, who could plant the folder first. Any other absolute path (e.g. /srv/kubernetes, /etc/kubernetes/pki,
 * /opt/kubetls/pki) is taken as a folder of its own.
 */
const SYSTEM_DIRS = new Set([
  '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/lost+found', '/media', '/mnt',
  '/opt', '/proc', '/root', '/run', '/sbin', '/snap', '/srv', '/sys', '/tmp', '/usr', '/var',
  ...['bin', 'games', 'include', 'lib', 'lib32', 'lib64', 'libexec', 'local', 'sbin', 'share', 'src'].map((d) => `/usr/${d}`),
  ...['bin', 'etc', 'games', 'include', 'lib', 'libexec', 'sbin', 'share', 'src'].map((d) => `/usr/local/${d}`),
  ...['backups', 'cache', 'lib', 'local', 'lock', 'log', 'mail', 'opt', 'run', 'spool', 'tmp', 'www'].map((d) => `/var/${d}`),
  '/var/lib/kubelet', '/var/lib/kubetls',
  ...['cron.d', 'default', 'kubernetes', 'pki', 'ssh', 'ssl', 'ssl/certs', 'ssl/private', 'sudoers.d', 'systemd'].map((d) => `/etc/${d}`),
]);
const UNDER_SYSTEM = ['/proc/', '/sys/', '/dev/', '/run/', '/tmp/', '/var/tmp/', '/var/run/', '/var/lock/'];

/**
 * Why `dir` (absolute, normalised) is not a folder of its own, or undefined. UNDER_SYSTEM applies to the remote folder
 * only: a local PKI in a private temporary folder (mktemp -d) is a fair choice on the operator's own machine.
 */
export function systemDirProblem(dir: string, remote: boolean): string | undefined {
  if (SYSTEM_DIRS.has(dir)) return `a folder of its own, not the system folder ${dir}`;
  const under = remote ? UNDER_SYSTEM.find((p) => dir.startsWith(p)) : undefined;
  if (under) return `a folder of its own, not one under ${under.slice(0, -1)} (virtual, emptied at boot or writable by all)`;
  if (/^\/home\/[^/]+$/.test(dir)) return 'a folder of its own, not a home folder';
  return undefined;
}

/**
 * pki.remote_dir reaches remote shell commands (quoted), the apiserver's flags (`--tls-cert-file=DIR/server.crt`, split
 * on spaces by the unit) and `install -d -o … -m 0700`. So: absolute, only letters, digits and `. _ -` between slashes
 * (no space, no shell character, no `//`), no `.` or `..` part, and not a system folder.
 */
function remoteDirProblem(s: string): string | undefined {
  if (s === '/' || /^\/+$/.test(s)) return 'a folder of its own, not /';
  if (!s.startsWith('/')) return 'an absolute path';
  if (!/^(\/[A-Za-z0-9._-]+)+\/?$/.test(s)) return 'an absolute path of letters, digits and . _ - between single slashes (no space or shell character)';
  if (s.split('/').some((part) => part === '.' || part === '..')) return 'an absolute path without . or .. parts';
  return systemDirProblem(s.replace(/\/$/, ''), true);
}

const int = (min: number, max = Number.MAX_SAFE_INTEGER, what = `an integer from ${min} to ${max}`) =>
  z.number({ invalid_type_error: what }).int(what).min(min, what).max(max, what);
const label = z.string({ invalid_type_error: 'a DNS label' }).regex(DNS_LABEL, 'a DNS label (a-z, 0-9, -; at most 63)');
const dnsName = z.string({ invalid_type_error: 'a DNS name' }).regex(DNS_NAME, 'a DNS name (lower case, dots between labels)');
// A zone id (`fe80::1%eth0`) names an interface of one machine: it has no meaning in a certificate or a flag.
const ip = z.string({ invalid_type_error: 'an IPv4 or IPv6 address' }).refine((s) => isIP(s) !== 0, 'an IPv4 or IPv6 address')
  .refine((s) => !s.includes('%'), 'an IPv4 or IPv6 address without a zone id (%...)');
const address = z.string({ invalid_type_error: 'an IP address or a DNS name' })
  .refine((s) => isIP(s) !== 0 || DNS_NAME.test(s), 'an IP address or a DNS name');
const user = z.string({ invalid_type_error: 'a user name' }).regex(/^[a-z_][a-z0-9_-]*[$]?$/, 'a user name');
const port = int(1, 65535, 'a port from 1 to 65535');
const filePath = z.string({ invalid_type_error: 'a file path' }).min(1, 'a file path')
  .refine((s) => !CONTROL.test(s), 'a file path without control characters');

/** A bare name means `{ name }` (address = name). */
const hostEntry = z.preprocess(
  (v) => (typeof v === 'string' ? { name: v } : v),
  z.object({ name: label, address: address.optional(), port: port.optional(), user: user.optional() },
    { invalid_type_error: 'a host name, or { name, address, port, user }', required_error: 'a host name, or { name, address, port, user }' })
    .strict(),
);

const schema = z.object({
  cluster: z.string({ invalid_type_error: 'a cluster name', required_error: 'a cluster name' })
    .regex(/^[A-Za-z0-9][-A-Za-z0-9_.]*$/, 'a cluster name (letters, digits, - _ .)'),
  profile: z.enum(['legacy', 'modern'], { errorMap: () => ({ message: 'legacy or modern' }) }),
  pki: z.object({
    dir: filePath.default('pki'),
    remote_dir: z.string({ invalid_type_error: 'an absolute path' }).superRefine((s, ctx) => {
      const problem = remoteDirProblem(s);
      if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
    }),
    key: z.enum(['rsa', 'ecdsa-p256', 'ecdsa-p384'], { errorMap: () => ({ message: 'rsa, ecdsa-p256 or ecdsa-p384' }) })
      .default('rsa'),
    ca_bits: int(2048, 16384, 'an integer >= 2048').default(4096),
    bits: int(2048, 16384, 'an integer >= 2048').default(2048),
    ca_days: int(1, 100000, 'a number of days > 0').default(3650),
    days: int(1, 100000, 'a number of days > 0').default(365),
    renew_before_days: int(0, 100000, 'a number of days >= 0').default(30),
  }, { invalid_type_error: 'a mapping of settings' }).strict(),
  apiserver: z.object({
    cn: z.string({ invalid_type_error: 'a common name' })
      .regex(COMMON_NAME, 'a common name (letters, digits, space, . _ : @ -; at most 64; no / = + ,)'),
    dns: z.array(dnsName, { invalid_type_error: 'a list of DNS names' }).default([]),
    ip: z.array(ip, { invalid_type_error: 'a list of IP addresses' }).default([]),
    port: port.default(6443),
    // a bare name means address = name, as for a host; port: the balancer's (default apiserver.port)
    // drain_seconds: how long a master that is told to stop keeps serving while its /readyz already fails, so that the
    // balancer's health checks take it out first (more than the balancer needs to mark a server down: haproxy's
    // inter × fall); the apiserver's --shutdown-delay-duration
    endpoint: z.preprocess((v) => (typeof v === 'string' ? { name: v } : v), z.object({ name: dnsName, address: address.optional(), port: port.optional(),
      // at most 25: a stopping apiserver drains, then waits up to 60 s for its connections, within systemd's default
      // TimeoutStopSec of 90 s (beyond it systemd kills it mid-drain)
      drain_seconds: int(0, 25, 'a number of seconds from 0 to 25').optional() },
    { invalid_type_error: 'the load balancer: a DNS name, or { name, address, port, drain_seconds }' }).strict()).optional(),
  }, { invalid_type_error: 'a mapping of settings' }).strict(),
  cluster_dns: ip.default('10.24.0.10'),
  cluster_domain: dnsName.default('kubic.local'),
  service_cidr: z.string({ invalid_type_error: 'an IPv4 range such as 10.24.0.0/16' })
    .refine((s) => parseCidr(s) !== undefined, 'an IPv4 range such as 10.24.0.0/16 (prefix 12 to 28, no host bits)').default('10.24.0.0/16'),
  ssh: z.object({
    user: user.default('root'),
    port: port.default(22),
    identity_file: filePath.default('~/.ssh/id_ed25519'),
    known_hosts: filePath.default('~/.ssh/known_hosts'),
    sudo: z.boolean({ invalid_type_error: 'true or false' }).default(false),
    config_file: filePath.default('~/.ssh/config'),
  }, { invalid_type_error: 'a mapping of settings' }).strict().default({}),
  master: hostEntry.optional(),
  masters: z.array(hostEntry, { invalid_type_error: 'a list of hosts' }).min(1, 'at least one master').optional(),
  minions: z.array(hostEntry, { invalid_type_error: 'a list of hosts' }).default([]),
  etcd: z.object({
    members: z.array(hostEntry, { invalid_type_error: 'a list of hosts' }).min(1, 'at least one member').optional(),
  }, { invalid_type_error: 'a mapping of settings' }).strict().optional(),
}, { required_error: 'a mapping of settings', invalid_type_error: 'a mapping of settings' }).strict();

type Raw = z.infer<typeof schema>;
type RawHost = NonNullable<Raw['master']>;

/**
 * zod's texts for the issues our own messages above do not cover, phrased as "what was expected". Set as zod's global
 * map, the lowest precedence, so that the messages written into the schema win.
 */
z.setErrorMap((issue, ctx) => {
  if (issue.code === z.ZodIssueCode.invalid_type && issue.received === 'undefined') return { message: 'a value (the key is required)' };
  if (issue.code === z.ZodIssueCode.invalid_type) return { message: `${issue.expected}` };
  return { message: ctx.defaultError };
});

// ---- loading ---------------------------------------------------------------------------------------------------------

/** Read, parse and validate an inventory; throws InventoryError listing every problem with file and line. */
export function loadInventory(file = process.env.KUBETLS_INVENTORY || 'cluster.yaml'): Inventory {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new InventoryError([`${file}: cannot read the inventory: ${(e as NodeJS.ErrnoException).code ?? e}`]);
  }
  return parseInventory(text, abs, file);
}

/** The first line of the example cluster.yaml shipped in the checkout. */
export const EXAMPLE_MARK = /^# kubetls example inventory\b/;

/** Validate inventory text; `shown` is the file name used in messages. */
export function parseInventory(text: string, abs: string, shown = abs): Inventory {
  const lines = new LineCounter();
  // logLevel 'error': yaml's warnings (e.g. a collection used as a key) go nowhere; such a key is refused as unknown anyway
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, logLevel: 'error' });
  const lineOf = (offset: number | undefined) => (offset === undefined ? 1 : lines.linePos(offset).line);
  if (doc.errors.length) {
    const e = doc.errors[0]; // the first syntax error: the ones after it are usually its echoes
    throw new InventoryError([`${shown}:${lineOf(e.pos[0])}: YAML syntax: ${e.message.split('\n')[0]}`]);
  }
  let data: unknown;
  try {
    // yaml counts alias expansions and throws past the limit: a "billion laughs" file is refused, not expanded.
    data = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (e) {
    const alias = firstAlias(doc);
    const what = /alias/i.test(String((e as Error).message))
      ? `YAML aliases: expected at most ${MAX_ALIASES} alias expansions, found more (an alias bomb?)`
      : `YAML: ${String((e as Error).message).split('\n')[0]}`;
    throw new InventoryError([`${shown}:${lineOf(alias)}: ${what}`]);
  }
  const result = schema.safeParse(data);
  if (!result.success) {
    const problems = result.error.issues.flatMap((issue) => {
      const keys = issue.code === z.ZodIssueCode.unrecognized_keys ? issue.keys : [undefined];
      return keys.map((extra) => {
        const at = extra === undefined ? issue.path : [...issue.path, extra];
        const found = extra === undefined ? describe(valueAt(doc, issue.path)) : `unknown key '${extra}'`;
        const expected = extra === undefined ? issue.message : `a known key (${knownKeys(issue.path).join(', ')})`;
        return { line: lineOf(locate(doc, at)), text: `${keyName(at)}: expected ${expected}, found ${found}` };
      });
    });
    problems.sort((a, b) => a.line - b.line);
    throw new InventoryError(problems.map((p) => `${shown}:${p.line}: ${p.text}`));
  }
  return { ...resolve(result.data, abs, shown, doc, lineOf), example: EXAMPLE_MARK.test(text) };
}

/** An IPv4 range `a.b.c.d/n` (12 <= n <= 28, no host bits), its first address and a membership test; else undefined. */
export function parseCidr(s: string): { first: string; contains: (ip: string) => boolean } | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits < 12 || bits > 28) return undefined;
  const num = (o: number[]) => ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const base = num(octets);
  if ((base & ~mask) >>> 0 !== 0) return undefined;
  const f = base + 1;
  return {
    first: [f >>> 24, (f >>> 16) & 255, (f >>> 8) & 255, f & 255].join('.'),
    contains: (ip) => isIP(ip) === 4 && ((num(ip.split('.').map(Number)) & mask) >>> 0) === base,
  };
}

/** How many alias expansions an inventory may use (yaml's own default, stated here so that it is a decision). */
const MAX_ALIASES = 100;

/** The source offset of the first alias (`*name`) in the document, if any. */
function firstAlias(doc: Document): number | undefined {
  let at: number | undefined;
  visit(doc, { Alias(_, node) { at = node.range?.[0]; return visit.BREAK; } });
  return at;
}

/** The checks that span several keys, then the typed object with paths resolved. */
function resolve(raw: Raw, abs: string, shown: string, doc: Document, lineOf: (o?: number) => number): Omit<Inventory, 'example'> {
  const found: { line: number; text: string }[] = [];
  const at = (p: (string | number)[], text: string) => found.push({ line: lineOf(locate(doc, p)), text: `${keyName(p)}: ${text}` });
  if (raw.pki.renew_before_days >= raw.pki.days) {
    at(['pki', 'renew_before_days'], `expected fewer days than pki.days (${raw.pki.days}), found ${raw.pki.renew_before_days}`);
  }
  if (raw.pki.days > raw.pki.ca_days) {
    at(['pki', 'days'], `expected at most pki.ca_days (${raw.pki.ca_days}), found ${raw.pki.days}`);
  }
  if (raw.profile === 'modern') {
    // in-cluster clients reach the apiserver at the `kubernetes` service's ClusterIP, the range's first address: the
    // server certificate must name it (the distro default range, 10.254.0.0/16, left the recipe's 10.24.0.1 unused)
    const range = parseCidr(raw.service_cidr);
    if (range) {
      const first = range.first;
      if (!raw.apiserver.ip.some((a) => a === first)) {
        at(doc.hasIn(['service_cidr']) ? ['service_cidr'] : ['apiserver', 'ip'], `expected the service range's first address ${first} (the kubernetes service's ClusterIP) among apiserver.ip, found ${raw.apiserver.ip.join(', ') || 'none'}`);
      }
      if (isIP(raw.cluster_dns) === 4 && !range.contains(raw.cluster_dns)) {
        at(doc.hasIn(['cluster_dns']) ? ['cluster_dns'] : ['service_cidr'], `expected an address inside service_cidr ${raw.service_cidr}, found ${raw.cluster_dns}`);
      }
    }
  }
  const sshSet = (k: string) => doc.hasIn(['ssh', k]);
  const hostOf = (entry: RawHost, role: Host['role']): Host => {
    const o: { name: string; address?: string; port?: number; user?: string } = typeof entry === 'string' ? { name: entry } : entry;
    return { name: o.name, role, address: o.address ?? o.name, port: o.port ?? raw.ssh.port, user: o.user ?? raw.ssh.user,
      explicit: { address: o.address !== undefined, port: o.port !== undefined || sshSet('port'), user: o.user !== undefined || sshSet('user') } };
  };
  // master: (the recipe's one) or masters: (1, or 3 and more, behind apiserver.endpoint); exactly one of the two
  const masterKey = raw.masters ? 'masters' : 'master';
  if (raw.master && raw.masters) at(['masters'], 'expected either master: or masters:, found both');
  if (!raw.master && !raw.masters) at(['master'], 'expected a value (master: NAME, or masters: [NAME, …] for more than one), found nothing');
  const masterEntries: RawHost[] = raw.masters ?? (raw.master ? [raw.master] : [{ name: 'missing' }]);
  const masters = masterEntries.map((m) => hostOf(m, 'master'));
  const master = masters[0]!;
  const masterPath = (i: number): (string | number)[] => (raw.masters ? ['masters', i] : ['master']);
  if (raw.masters && masters.length === 2) {
    at(['masters'], 'expected 1 master, or 3 and more, found 2 (two stacked etcd members lose quorum when either one fails, and the apiserver with them)');
  }
  if (masters.length > 1 && raw.profile !== 'modern') at(['masters'], `expected one master in the legacy profile (the recipe's Kubernetes 1.4 cluster has one; use profile: modern), found ${masters.length}`);
  if (masters.length > 1 && !raw.apiserver.endpoint) at(['masters'], `expected apiserver.endpoint (the load balancer in front of the masters) with ${masters.length} masters, found none`);
  if (raw.apiserver.endpoint && raw.profile !== 'modern') at(['apiserver', 'endpoint'], 'expected no endpoint in the legacy profile (the recipe\'s kubelets name one master; use profile: modern), found one');
  const minions = raw.minions.map((m) => hostOf(m, 'minion'));
  // etcd: the master alone unless etcd.members says otherwise; a member named like the master is the master host, and
  // must not give it another address; a member named like a minion is refused (kubetls keeps etcd on the control plane:
  // a minion's root would otherwise hold the etcd peer key, which is every secret of the cluster).
  if (raw.etcd && raw.profile !== 'modern') at(['etcd'], 'expected no etcd settings in the legacy profile (the recipe runs etcd without TLS on the master; use profile: modern), found etcd');
  // Stacked etcd by default (kubeadm's): every master is a member.
  const members: Host[] = raw.etcd?.members ? raw.etcd.members.map((m, i) => {
    const h = hostOf(m, 'etcd');
    const same = masters.find((x) => x.name === h.name);
    if (same) {
      const given: { address?: string; port?: number; user?: string } = typeof m === 'string' ? {} : m;
      if ((given.address && given.address !== same.address) || (given.port && given.port !== same.port) || (given.user && given.user !== same.user)) {
        at(['etcd', 'members', i], `expected the master's own address, port and user for the member named like the master, found ${given.address ?? same.address}:${given.port ?? same.port} as ${given.user ?? same.user}`);
      }
      return same;
    }
    if (minions.some((x) => x.name === h.name)) at(['etcd', 'members', i, 'name'], `expected the master or a host of its own (etcd keys do not go to minions), found the minion '${h.name}'`);
    return h;
  }) : masters;
  // etcd needs a majority: 2 members survive no more failures than 1, 4 no more than 3 (and an even split can stall)
  if (raw.profile === 'modern' && members.length % 2 === 0) {
    at(raw.etcd?.members ? ['etcd', 'members'] : [masterKey], raw.etcd?.members
      ? `expected an odd number of members (a majority of ${members.length} survives no more failures than ${members.length - 1} members would), found ${members.length}`
      : `expected an odd number of masters when etcd is stacked on them (the default; or list etcd.members), found ${members.length}`);
  }
  const memberNames = new Set<string>();
  // (the default members are the masters, whose names are checked below as hosts)
  if (raw.etcd?.members) members.forEach((m, i) => {
    if (memberNames.has(m.name)) at(['etcd', 'members', i], `expected a unique member name, found '${m.name}' again`);
    memberNames.add(m.name);
  });
  const seen = new Map<string, string>();
  masters.forEach((m, i) => {
    const first = seen.get(m.name);
    if (first) at(masterPath(i), `expected a unique host name, found '${m.name}' again (first at ${first})`);
    else seen.set(m.name, keyName(masterPath(i)));
  });
  minions.forEach((m, i) => {
    const first = seen.get(m.name);
    if (first) at(['minions', i], `expected a unique host name, found '${m.name}' again (first at ${first})`);
    else seen.set(m.name, `minions[${i}]`);
  });
  // A host's name becomes <name>.key/.csr/.crt beside the CA: it must not be the name of another file of the PKI.
  // Modern minions are named CN=system:node:<name>, and a CN has at most 64 characters: 52 are left for the name.
  const entries: [(string | number)[], Host][] = [...masters.map((m, i): [(string | number)[], Host] => [masterPath(i), m]), ...minions.map((m, i): [(string | number)[], Host] => [['minions', i], m]),
    ...members.map((m, i): [(string | number)[], Host] => [['etcd', 'members', i], m]).filter(([, m]) => m.role === 'etcd' && !minions.some((x) => x.name === m.name))];
  for (const [p, host] of entries) {
    const namePath = [...p, 'name']; // as the schema names it, also for a bare name
    if ((RESERVED_NAMES as readonly string[]).includes(host.name)) {
      at(namePath, `expected a name that is not reserved for a file of the PKI (${RESERVED_NAMES.join(', ')}), found '${host.name}'`);
    } else if (host.role === 'minion' && raw.profile === 'modern' && host.name.length > 52) {
      at(namePath, `expected at most 52 characters (the modern profile's CN system:node:<name> has at most 64), found ${host.name.length}`);
    }
  }
  // Two entries for one SSH endpoint would install two sets of files, with two owners, on one machine at once.
  const endpoints = new Map<string, string>();
  entries.forEach(([p, host]) => {
    const key = `${isIP(host.address) === 6 ? canonicalV6(host.address) : host.address.toLowerCase()}:${host.port}`;
    const first = endpoints.get(key);
    if (first) at(p, `expected a host address and port of its own, found ${host.address} port ${host.port} again (first at ${first})`);
    else endpoints.set(key, keyName(p));
  });
  // The balancer is no host of the inventory: kubetls never connects to it over SSH, and a host's name or address in
  // its place would send every client to that one host, past the balancer.
  const ep = raw.apiserver.endpoint;
  const endpoint = ep ? { name: ep.name, address: ep.address ?? ep.name, port: ep.port ?? raw.apiserver.port, drainSeconds: ep.drain_seconds ?? DRAIN_SECONDS } : undefined;
  if (endpoint) {
    // one spelling per address: IPv6 canonical, an IPv4-mapped IPv6 address as its IPv4, names in lower case
    const norm = (a: string) => {
      const v6 = isIP(a) === 6 ? canonicalV6(a) : a.toLowerCase();
      const mapped = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(v6); // the URL spelling of ::ffff:a.b.c.d
      if (!mapped) return v6;
      const [hi, lo] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
      return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
    };
    // clients connect to the endpoint's name (kubeconfigs) and kubetls checks its address: neither may be a host's
    const ours = [endpoint.name, endpoint.address].map(norm);
    const clash = entries.find(([, h]) => [h.name, h.address].map(norm).some((x) => ours.includes(x)));
    if (clash) at(['apiserver', 'endpoint'], `expected a load balancer of its own, not a host of the inventory, found the name or address of ${keyName(clash[0])} (${clash[1].name})`);
    if (['0.0.0.0', '[::]'].includes(norm(endpoint.address))) at(['apiserver', 'endpoint', 'address'], `expected the balancer's address, found the unspecified address ${endpoint.address}`);
  }
  // The server certificate must name something a client can check: the recipe's curl, kubectl and the kubelets verify it.
  if (!raw.apiserver.dns.length && !raw.apiserver.ip.length) {
    at(['apiserver'], 'expected at least one subjectAltName in apiserver.dns or apiserver.ip, found none');
  }

  const dir = path.dirname(abs);
  const filePathOf = (p: string) => (p === '~' ? homedir() : p.startsWith('~/') ? path.join(homedir(), p.slice(2)) : path.resolve(dir, p));
  // pki.dir is made 0700 and filled with keys: never /, the home folder, a system folder or the inventory's own folder
  // (which holds cluster.yaml and the lock file, and is often the checkout).
  const pkiDir = filePathOf(raw.pki.dir);
  const pkiProblem = pkiDir === '/' ? 'a folder of its own, not /'
    : pkiDir === homedir() ? 'a folder of its own, not the home folder'
      : pkiDir === dir ? 'a folder of its own, not the folder of the inventory'
        : systemDirProblem(pkiDir, false);
  if (pkiProblem) at(['pki', 'dir'], `expected ${pkiProblem}, found ${describe(raw.pki.dir)}`);
  if (found.length) throw new InventoryError(found.sort((a, b) => a.line - b.line).map((f) => `${shown}:${f.line}: ${f.text}`));

  return {
    file: abs,
    cluster: raw.cluster,
    profile: raw.profile,
    pki: {
      dir: pkiDir,
      remoteDir: raw.pki.remote_dir.replace(/\/+$/, ''), // never empty: `/` is refused above
      key: raw.pki.key,
      caBits: raw.pki.ca_bits,
      bits: raw.pki.bits,
      caDays: raw.pki.ca_days,
      days: raw.pki.days,
      renewBeforeDays: raw.pki.renew_before_days,
    },
    apiserver: { cn: raw.apiserver.cn, dns: raw.apiserver.dns, ip: raw.apiserver.ip, port: raw.apiserver.port, ...(endpoint ? { endpoint } : {}) },
    clusterDns: raw.cluster_dns,
    clusterDomain: raw.cluster_domain,
    serviceCidr: raw.service_cidr,
    ssh: {
      identityFile: filePathOf(raw.ssh.identity_file), knownHosts: filePathOf(raw.ssh.known_hosts), sudo: raw.ssh.sudo, user: raw.ssh.user,
      configFile: raw.ssh.config_file === 'none' ? undefined : filePathOf(raw.ssh.config_file),
      explicit: { identityFile: sshSet('identity_file'), knownHosts: sshSet('known_hosts') },
    },
    master,
    masters,
    minions,
    etcd: { members },
  };
}

// ---- helpers for messages --------------------------------------------------------------------------------------------

function keyName(p: (string | number)[]): string {
  return p.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${k}` : k), '') || '(top level)';
}

/**
 * The value at `p` as plain data; for `minions[i].name` of a bare-name entry, the bare name. `getIn` gives a scalar's
 * value but a list or map as its node: `toJS` turns that into data with its aliases resolved (a node's own JSON would
 * show an alias as `{"source":"b"}`). An alias inside its own anchor stays a cycle, which describe() cannot show.
 */
function valueAt(doc: Document, p: (string | number)[]): unknown {
  let v = doc.getIn(p);
  if (v === undefined && p.at(-1) === 'name') v = doc.getIn(p.slice(0, -1));
  return isNode(v) ? v.toJS(doc) : v;
}

/** A value as a message shows it: strings quoted, control characters escaped (never a raw newline), at most 60 characters. */
function describe(v: unknown): string {
  if (v === undefined || v === null) return 'nothing'; // a missing key; `key:` with no value, or an empty file
  let s: string;
  try {
    s = oneLine(typeof v === 'string' ? `'${v}'` : JSON.stringify(v) ?? String(v));
  } catch {
    s = 'a value that cannot be shown'; // e.g. a BigInt or a cycle: the message still names the key and the line
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** An IPv6 address in one spelling (fd00:0::1 and FD00::1 are the same host). */
function canonicalV6(ip: string): string {
  try {
    return new URL(`http://[${ip}]/`).hostname;
  } catch {
    return ip.toLowerCase(); // with a zone id (fe80::1%eth0), which an SSH address may carry
  }
}

/**
 * The source offset of `p`: its key when it sits in a mapping (so `pki:` is named for a problem inside the pki block,
 * not the line of its first child), else its node, else the nearest existing parent (for a missing key). Keys are
 * compared as text: zod names a YAML key `1` or `true` by its string, and it must still find its own line.
 */
function locate(doc: Document, p: (string | number)[]): number | undefined {
  for (let n = p.length; n >= 0; n--) {
    const sub = p.slice(0, n);
    const parent = n > 0 ? doc.getIn(sub.slice(0, -1)) : undefined; // a list or map comes back as its node
    if (isMap(parent)) {
      const pair = parent.items.find((it) => isScalar(it.key) && String(it.key.value) === String(sub[n - 1]));
      if (pair && isScalar(pair.key) && pair.key.range) return pair.key.range[0];
    }
    const range = (doc.getIn(sub, true) as { range?: [number, number, number] } | null | undefined)?.range; // [] is the whole document
    if (range) return range[0];
  }
  return undefined;
}

function knownKeys(p: (string | number)[]): string[] {
  let s: z.ZodTypeAny = schema;
  for (const k of p) {
    s = unwrap(s);
    if (s instanceof z.ZodObject) s = s.shape[k];
    else if (s instanceof z.ZodArray) s = s.element;
    if (!s) return [];
  }
  s = unwrap(s);
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

function unwrap(s: z.ZodTypeAny): z.ZodTypeAny {
  for (;;) {
    if (s instanceof z.ZodDefault || s instanceof z.ZodOptional) s = s._def.innerType;
    else if (s instanceof z.ZodEffects) s = s.innerType();
    else return s;
  }
}

/** apiserver.endpoint.drain_seconds by default: a balancer that checks every 2 s and takes 3 failures (6 s), and a margin. */
export const DRAIN_SECONDS = 10;

/** Every host, the masters first, then the etcd members of their own, then the minions. */
export const allHosts = (inv: Inventory): Host[] => [...inv.masters, ...etcdHosts(inv), ...inv.minions];

/** Where a client reaches the apiserver: an address to connect to, a port, and the name the certificate is checked for. */
export interface ApiTarget { address: string; port: number; name: string }
/** The address every client outside the control plane uses: the balancer (apiserver.endpoint) if any, else the master. */
export const apiTarget = (inv: Inventory): ApiTarget => inv.apiserver.endpoint ?? masterTarget(inv, inv.master);
/** One master's own apiserver (its controller-manager and scheduler use it; the rolling gates ask it). */
export const masterTarget = (inv: Inventory, host: Host): ApiTarget => ({ address: host.address, port: inv.apiserver.port, name: host.name });
/** `https://NAME:PORT` of a target (the name: kubeconfigs and flags say the name the certificate holds). */
export const urlOf = (t: ApiTarget): string => `https://${t.name.includes(':') ? `[${t.name}]` : t.name}:${t.port}`;
/** More than one master (behind apiserver.endpoint): renewals roll one master at a time. */
export const isHa = (inv: Inventory): boolean => inv.masters.length > 1;
/** The etcd members that are hosts of their own (not the master). */
export const etcdHosts = (inv: Inventory): Host[] => inv.etcd.members.filter((m) => m.role === 'etcd');
