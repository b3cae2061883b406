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
import { isMap, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';

export type Profile = 'legacy' | 'modern';
export type KeyType = 'rsa' | 'ecdsa-p256' | 'ecdsa-p384';

export interface Host {
  name: string;
  role: 'master' | 'minion';
  address: string; // what we connect to; the name is what certificates and URLs use
  port: number;
  user: string;
}

export interface Inventory {
  file: string; // absolute path of cluster.yaml
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
  apiserver: { cn: string; dns: string[]; ip: string[]; port: number };
  clusterDns: string;
  clusterDomain: string;
  ssh: { identityFile: string; knownHosts: string; sudo: boolean };
  master: Host;
  minions: Host[];
}

export class InventoryError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.map((p) => `ERROR: ${p}`).join('\n'));
    this.name = 'InventoryError';
  }
}

// ---- the schema: what each key must be, said the way the error message will say it -------------------------------

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

const int = (min: number, max = Number.MAX_SAFE_INTEGER, what = `an integer from ${min} to ${max}`) =>
  z.number({ invalid_type_error: what }).int(what).min(min, what).max(max, what);
const label = z.string({ invalid_type_error: 'a DNS label' }).regex(DNS_LABEL, 'a DNS label (a-z, 0-9, -; at most 63)');
const dnsName = z.string({ invalid_type_error: 'a DNS name' }).regex(DNS_NAME, 'a DNS name (lower case, dots between labels)');
const ip = z.string({ invalid_type_error: 'an IPv4 or IPv6 address' }).refine((s) => isIP(s) !== 0, 'an IPv4 or IPv6 address');
const address = z.string({ invalid_type_error: 'an IP address or a DNS name' })
  .refine((s) => isIP(s) !== 0 || DNS_NAME.test(s), 'an IP address or a DNS name');
const user = z.string({ invalid_type_error: 'a user name' }).regex(/^[a-z_][a-z0-9_-]*[$]?$/, 'a user name');
const port = int(1, 65535, 'a port from 1 to 65535');
const filePath = z.string({ invalid_type_error: 'a file path' }).min(1, 'a file path');

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
    remote_dir: z.string({ invalid_type_error: 'an absolute path' }).regex(/^\/[^\0]*$/, 'an absolute path'),
    key: z.enum(['rsa', 'ecdsa-p256', 'ecdsa-p384'], { errorMap: () => ({ message: 'rsa, ecdsa-p256 or ecdsa-p384' }) })
      .default('rsa'),
    ca_bits: int(2048, 16384, 'an integer >= 2048').default(4096),
    bits: int(2048, 16384, 'an integer >= 2048').default(2048),
    ca_days: int(1, 100000, 'a number of days > 0').default(3650),
    days: int(1, 100000, 'a number of days > 0').default(365),
    renew_before_days: int(0, 100000, 'a number of days >= 0').default(30),
  }).strict(),
  apiserver: z.object({
    cn: z.string({ invalid_type_error: 'a common name' }).min(1, 'a common name'),
    dns: z.array(dnsName, { invalid_type_error: 'a list of DNS names' }).default([]),
    ip: z.array(ip, { invalid_type_error: 'a list of IP addresses' }).default([]),
    port: port.default(6443),
  }).strict(),
  cluster_dns: ip.default('10.24.0.10'),
  cluster_domain: dnsName.default('kubic.local'),
  ssh: z.object({
    user: user.default('root'),
    port: port.default(22),
    identity_file: filePath.default('~/.ssh/id_ed25519'),
    known_hosts: filePath.default('~/.ssh/known_hosts'),
    sudo: z.boolean({ invalid_type_error: 'true or false' }).default(false),
  }).strict().default({}),
  master: hostEntry,
  minions: z.array(hostEntry, { invalid_type_error: 'a list of hosts' }).default([]),
}, { required_error: 'a mapping of settings', invalid_type_error: 'a mapping of settings' }).strict();

type Raw = z.infer<typeof schema>;

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
export function loadInventory(file = 'cluster.yaml'): Inventory {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new InventoryError([`${file}: cannot read the inventory: ${(e as NodeJS.ErrnoException).code ?? e}`]);
  }
  return parseInventory(text, abs, file);
}

/** Validate inventory text; `shown` is the file name used in messages. */
export function parseInventory(text: string, abs: string, shown = abs): Inventory {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const lineOf = (offset: number | undefined) => (offset === undefined ? 1 : lines.linePos(offset).line);
  if (doc.errors.length) {
    const e = doc.errors[0]; // the first syntax error: the ones after it are usually its echoes
    throw new InventoryError([`${shown}:${lineOf(e.pos[0])}: YAML syntax: ${e.message.split('\n')[0]}`]);
  }
  const result = schema.safeParse(doc.toJS());
  if (!result.success) {
    const problems = result.error.issues.flatMap((issue) => {
      const keys = issue.code === z.ZodIssueCode.unrecognized_keys ? issue.keys : [undefined];
      return keys.map((extra) => {
        const at = extra === undefined ? issue.path : [...issue.path, extra];
        const found = extra === undefined ? describe(valueAt(doc, issue.path)) : `unknown key '${extra}'`;
        const expected = extra === undefined ? issue.message : `a known key (${knownKeys(issue.path).join(', ')})`;
        return { line: lineOf(locate(doc, at, extra !== undefined)), text: `${keyName(at)}: expected ${expected}, found ${found}` };
      });
    });
    problems.sort((a, b) => a.line - b.line);
    throw new InventoryError(problems.map((p) => `${shown}:${p.line}: ${p.text}`));
  }
  return resolve(result.data, abs, shown, doc, lineOf);
}

/** The checks that span several keys, then the typed object with paths resolved. */
function resolve(raw: Raw, abs: string, shown: string, doc: Document, lineOf: (o?: number) => number): Inventory {
  const problems: string[] = [];
  const at = (p: (string | number)[], text: string) => problems.push(`${shown}:${lineOf(locate(doc, p))}: ${keyName(p)}: ${text}`);
  if (raw.pki.renew_before_days >= raw.pki.days) {
    at(['pki', 'renew_before_days'], `expected fewer days than pki.days (${raw.pki.days}), found ${raw.pki.renew_before_days}`);
  }
  if (raw.pki.days > raw.pki.ca_days) {
    at(['pki', 'days'], `expected at most pki.ca_days (${raw.pki.ca_days}), found ${raw.pki.days}`);
  }
  const hostOf = (entry: Raw['master'], role: Host['role']): Host => {
    const o = typeof entry === 'string' ? { name: entry } : entry;
    return { name: o.name, role, address: o.address ?? o.name, port: o.port ?? raw.ssh.port, user: o.user ?? raw.ssh.user };
  };
  const master = hostOf(raw.master, 'master');
  const minions = raw.minions.map((m) => hostOf(m, 'minion'));
  const seen = new Map<string, string>([[master.name, 'master']]);
  minions.forEach((m, i) => {
    const first = seen.get(m.name);
    if (first) at(['minions', i], `expected a unique host name, found '${m.name}' again (first at ${first})`);
    else seen.set(m.name, `minions[${i}]`);
  });
  if (problems.length) throw new InventoryError(problems);

  const dir = path.dirname(abs);
  const filePathOf = (p: string) => (p.startsWith('~/') ? path.join(homedir(), p.slice(2)) : path.resolve(dir, p));
  return {
    file: abs,
    cluster: raw.cluster,
    profile: raw.profile,
    pki: {
      dir: path.resolve(dir, raw.pki.dir),
      remoteDir: raw.pki.remote_dir.replace(/\/+$/, '') || '/',
      key: raw.pki.key,
      caBits: raw.pki.ca_bits,
      bits: raw.pki.bits,
      caDays: raw.pki.ca_days,
      days: raw.pki.days,
      renewBeforeDays: raw.pki.renew_before_days,
    },
    apiserver: { ...raw.apiserver },
    clusterDns: raw.cluster_dns,
    clusterDomain: raw.cluster_domain,
    ssh: { identityFile: filePathOf(raw.ssh.identity_file), knownHosts: filePathOf(raw.ssh.known_hosts), sudo: raw.ssh.sudo },
    master,
    minions,
  };
}

// ---- helpers for messages --------------------------------------------------------------------------------------------

function keyName(p: (string | number)[]): string {
  return p.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${k}` : k), '') || '(top level)';
}

/** The value at `p`; for `minions[i].name` of a bare-name entry, the bare name. */
function valueAt(doc: Document, p: (string | number)[]): unknown {
  const v = doc.getIn(p);
  if (v === undefined && p.at(-1) === 'name') return doc.getIn(p.slice(0, -1));
  return v;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (isScalar(v)) v = v.value;
  if (v && typeof v === 'object' && 'toJSON' in v) v = (v as { toJSON(): unknown }).toJSON();
  const s = typeof v === 'string' ? `'${v}'` : JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** The source offset of the node at `p`, or of its nearest existing parent (for a missing key). */
function locate(doc: Document, p: (string | number)[], wantKey = false): number | undefined {
  for (let n = p.length; n >= 0; n--) {
    const sub = p.slice(0, n);
    if (wantKey && n === p.length && n > 0) {
      const parent = doc.getIn(sub.slice(0, -1), true);
      if (isMap(parent)) {
        const pair = parent.items.find((it) => isScalar(it.key) && it.key.value === sub[n - 1]);
        if (pair && isScalar(pair.key)) return pair.key.range?.[0];
      }
      continue;
    }
    const node = n === 0 ? doc.contents : doc.getIn(sub, true);
    const range = (node as { range?: [number, number, number] } | null)?.range;
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

/** Every host, master first. */
export const allHosts = (inv: Inventory): Host[] => [inv.master, ...inv.minions];
