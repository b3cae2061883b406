/**
 * What each key of cluster.yaml must be, said the way the error message will say it (zod), and the rules about
 * folders and names that more than one key shares. lib/inventory/load.ts applies it, then checks what spans keys.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * A subject's common name. openssl's `-subj` treats `/`, `+` and `=` as structure and X.500 names give `,` `+` `"` `\`
 * `<` `>` `;` a meaning, so a CN is kept to letters, digits, space and `. _ : @ -` (enough for `kubernetes.default.svc`
 * or `system:kube-apiserver`), starts and ends with no space, and has at most 64 characters (X.520's upper bound,
 * which openssl enforces: "string too long"). lib/pki/openssl.ts escapes subjects anyway; this is the first line.
 */
const COMMON_NAME = /^[A-Za-z0-9._:@-](?:[A-Za-z0-9 ._:@-]{0,62}[A-Za-z0-9._:@-])?$/;

/**
 * File base names kubetls uses, or will use, in pki.dir and pki.remote_dir. A host named like one of them would get
 * `<name>.key/.csr/.crt` on top of another file of the PKI (a minion `ca` overwrites the CA). The list holds today's
 * files (ca, server, sa, tokens, openssl) and kubeadm's names for the ones a later profile may add, reserved now so
 * that no inventory that is valid today breaks then. The names of this inventory's own certificates (config/certs.ts:
 * kube-proxy, etcd-peer-<master>, kubelet-<minion>…) are refused by lib/inventory/load.ts beside these, and
 * lib/pki/plan.ts (planPki) still refuses any plan whose files collide.
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
  // node_ip (a modern minion): the address its Node reports (the kubelet's --node-ip) when that is not `address`, the
  // one kubetls reaches it by; its serving certificate may name both
  z.object({ name: label, address: address.optional(), port: port.optional(), user: user.optional(), node_ip: ip.optional() },
    { invalid_type_error: 'a host name, or { name, address, port, user }', required_error: 'a host name, or { name, address, port, user }' })
    .strict(),
);

export const schema = z.object({
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
  // who carries the kubelets' certificates (modern): `push`, kubetls over SSH (the recipe); `api`, the kubelets
  // themselves through the CSR API (client rotation, serving certificates approved by approve.ts).
  // certificate_minutes: what the controller-manager signs for (--cluster-signing-duration); default pki.days
  kubelet: z.object({
    certificates: z.enum(['push', 'api'], { errorMap: () => ({ message: 'push or api' }) }).default('push'),
    certificate_minutes: int(5, 100000 * 1440, 'a number of minutes from 5').optional(),
  }, { invalid_type_error: 'a mapping of settings' }).strict().optional(),
  etcd: z.object({
    members: z.array(hostEntry, { invalid_type_error: 'a list of hosts' }).min(1, 'at least one member').optional(),
  }, { invalid_type_error: 'a mapping of settings' }).strict().optional(),
}, { required_error: 'a mapping of settings', invalid_type_error: 'a mapping of settings' }).strict();

export type Raw = z.infer<typeof schema>;
export type RawHost = NonNullable<Raw['master']>;

/**
 * zod's texts for the issues our own messages above do not cover, phrased as "what was expected". Set as zod's global
 * map, the lowest precedence, so that the messages written into the schema win.
 */
z.setErrorMap((issue, ctx) => {
  if (issue.code === z.ZodIssueCode.invalid_type && issue.received === 'undefined') return { message: 'a value (the key is required)' };
  if (issue.code === z.ZodIssueCode.invalid_type) return { message: `${issue.expected}` };
  return { message: ctx.defaultError };
});


/**
 * An IPv4 range `a.b.c.d/n` (12 <= n <= 28, no host bits): its network and broadcast addresses, its first address (the
 * `kubernetes` service's ClusterIP) and a membership test; else undefined.
 */
export function parseCidr(s: string): { first: string; network: string; broadcast: string; contains: (ip: string) => boolean } | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits < 12 || bits > 28) return undefined;
  const num = (o: number[]) => ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const base = num(octets);
  if ((base & ~mask) >>> 0 !== 0) return undefined;
  const dotted = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
  return {
    first: dotted(base + 1),
    network: dotted(base),
    broadcast: dotted((base | ~mask) >>> 0),
    contains: (ip) => isIP(ip) === 4 && ((num(ip.split('.').map(Number)) & mask) >>> 0) === base,
  };
}


export function knownKeys(p: (string | number)[]): string[] {
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
