/**
 * cluster.yaml: load it once, validate everything, then hand out a typed object that the rest of kubetls trusts
 * (lib/inventory.ts).
 *
 * Every problem is reported as `<file>:<line>: <key>: expected <what>, found <what>` and nothing is written
 * before the inventory is valid (scripts exit 2 on an InventoryError).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import path from 'node:path';
import { LineCounter, parseDocument, visit, type Document } from 'yaml';
import { z } from 'zod';
import { caSpecs, leafSpecs } from '../../config/certs.ts';
import { canonicalAddress, DRAIN_SECONDS, type Host, type Inventory } from '../inventory.ts';
import { describe, InventoryError, keyName, locate, valueAt } from './errors.ts';
import { knownKeys, parseCidr, RESERVED_NAMES, schema, systemDirProblem, type Raw, type RawHost } from './schema.ts';


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
      const dnsAt = doc.hasIn(['cluster_dns']) ? ['cluster_dns'] : ['service_cidr'];
      if (isIP(raw.cluster_dns) === 4 && !range.contains(raw.cluster_dns)) {
        at(dnsAt, `expected an address inside service_cidr ${raw.service_cidr}, found ${raw.cluster_dns}`);
      } else {
        // the DNS service needs a ClusterIP of its own: not the kubernetes service's, and not the range's network or
        // broadcast address, which the apiserver never allocates (every pod's resolv.conf would name a dead address)
        const taken = { [range.first]: "the kubernetes service's ClusterIP", [range.network]: "the range's network address", [range.broadcast]: "the range's broadcast address" };
        if (taken[raw.cluster_dns]) at(dnsAt, `expected an address for the cluster's DNS service of its own inside ${raw.service_cidr}, found ${raw.cluster_dns} (${taken[raw.cluster_dns]})`);
      }
    }
  }
  const sshSet = (k: string) => doc.hasIn(['ssh', k]);
  const hostOf = (entry: RawHost, role: Host['role']): Host => {
    const o: { name: string; address?: string; port?: number; user?: string; node_ip?: string } = typeof entry === 'string' ? { name: entry } : entry;
    return { name: o.name, role, address: o.address ?? o.name, port: o.port ?? raw.ssh.port, user: o.user ?? raw.ssh.user, ...(o.node_ip ? { nodeIp: o.node_ip } : {}),
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
  // node_ip is a kubelet's: a minion's, in the modern profile
  const nodeIpAt = (entries: RawHost[] | undefined, p: (i: number) => (string | number)[], why: string) => (entries ?? []).forEach((e, i) => {
    if (typeof e !== 'string' && e.node_ip !== undefined) at([...p(i), 'node_ip'], `expected no node_ip ${why}, found ${e.node_ip}`);
  });
  nodeIpAt(raw.masters ?? (raw.master ? [raw.master] : []), (i) => (raw.masters ? ['masters', i] : ['master']), 'on a master (it runs no kubelet)');
  nodeIpAt(raw.etcd?.members, (i) => ['etcd', 'members', i], 'on an etcd member (it runs no kubelet)');
  if (raw.profile !== 'modern') nodeIpAt(raw.minions, (i) => ['minions', i], 'in the legacy profile (its kubelet serves no certificate kubetls checks)');
  if (raw.kubelet && raw.profile !== 'modern') at(['kubelet'], 'expected no kubelet settings in the legacy profile (its 1.4 kubelet rotates nothing; use profile: modern), found kubelet');
  if (raw.etcd && raw.profile !== 'modern') at(['etcd'], 'expected no etcd settings in the legacy profile (the recipe runs etcd without TLS on the master; use profile: modern), found etcd');
  // Stacked etcd by default (kubeadm's): every master is a member.
  const members: Host[] = raw.etcd?.members ? raw.etcd.members.map((m, i) => {
    const h = hostOf(m, 'etcd');
    const same = masters.find((x) => x.name === h.name);
    if (same) {
      const given: { address?: string; port?: number; user?: string } = typeof m === 'string' ? {} : m;
      if ((given.address && canonicalAddress(given.address) !== canonicalAddress(same.address)) || (given.port && given.port !== same.port) || (given.user && given.user !== same.user)) {
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
  // ... nor the base name of a certificate of this very inventory (config/certs.ts, the list the plan itself makes):
  // `kube-proxy`, `etcd-peer-<master>`, `kubelet-<minion>` would be refused by the plan with exit 1, not here
  const draft = { profile: raw.profile, master, masters, minions, etcd: { members },
    apiserver: { cn: raw.apiserver.cn, dns: raw.apiserver.dns, ip: raw.apiserver.ip, port: raw.apiserver.port } } as unknown as Inventory;
  const taken = new Map<string, string>([...caSpecs(draft).map((c) => [c.name, 'a CA'] as const),
    ...leafSpecs(draft).filter((l) => l.kind !== 'minion').map((l) => [l.name, `the certificate ${l.name}.crt`] as const)]);
  for (const [p, host] of entries) {
    const namePath = [...p, 'name']; // as the schema names it, also for a bare name
    if ((RESERVED_NAMES as readonly string[]).includes(host.name)) {
      at(namePath, `expected a name that is not reserved for a file of the PKI (${RESERVED_NAMES.join(', ')}), found '${host.name}'`);
    } else if (taken.has(host.name)) {
      at(namePath, `expected a name that is not a file of this inventory's PKI, found '${host.name}' (the base name of ${taken.get(host.name)})`);
    } else if (host.role === 'minion' && raw.profile === 'modern' && host.name.length > 52) {
      at(namePath, `expected at most 52 characters (the modern profile's CN system:node:<name> has at most 64), found ${host.name.length}`);
    }
  }
  // Two entries for one SSH endpoint would install two sets of files, with two owners, on one machine at once.
  const endpoints = new Map<string, string>();
  entries.forEach(([p, host]) => {
    const key = `${canonicalAddress(host.address)}:${host.port}`;
    const first = endpoints.get(key);
    if (first) at(p, `expected a host address and port of its own, found ${host.address} port ${host.port} again (first at ${first})`);
    else endpoints.set(key, keyName(p));
  });
  // A node_ip is one node's: not another host's address or node_ip (its serving certificate would name that one, and
  // approve.ts would approve it), not loopback or unspecified (the kubelet refuses them)
  const ipOwners = new Map<string, string>();
  entries.forEach(([p, h]) => ipOwners.set(canonicalAddress(h.address), keyName(p)));
  const balancer = raw.apiserver.endpoint;
  if (balancer) ipOwners.set(canonicalAddress(balancer.address ?? balancer.name), 'apiserver.endpoint');
  minions.forEach((m, i) => {
    if (!m.nodeIp) return;
    const ip = canonicalAddress(m.nodeIp);
    const owner = ipOwners.get(ip);
    if (owner && owner !== `minions[${i}]`) at(['minions', i, 'node_ip'], `expected an address of this node alone, found ${m.nodeIp}, the address of ${owner}`);
    else if (/^127\.|^::1$|^0\.0\.0\.0$|^::$/.test(ip)) at(['minions', i, 'node_ip'], `expected an address the kubelet reports (not loopback, not unspecified), found ${m.nodeIp}`);
    ipOwners.set(ip, `minions[${i}]`);
  });
  // The balancer is no host of the inventory: kubetls never connects to it over SSH, and a host's name or address in
  // its place would send every client to that one host, past the balancer.
  const ep = raw.apiserver.endpoint;
  const endpoint = ep ? { name: ep.name, address: ep.address ?? ep.name, port: ep.port ?? raw.apiserver.port, drainSeconds: ep.drain_seconds ?? DRAIN_SECONDS } : undefined;
  if (endpoint) {
    // one spelling per address (canonicalAddress): IPv6 canonical, an IPv4-mapped one as its IPv4, names in lower case
    const norm = canonicalAddress;
    // clients connect to the endpoint's name (kubeconfigs) and kubetls checks its address: neither may be a host's
    const ours = [endpoint.name, endpoint.address].map(norm);
    const clash = entries.find(([, h]) => [h.name, h.address].map(norm).some((x) => ours.includes(x)));
    if (clash) at(['apiserver', 'endpoint'], `expected a load balancer of its own, not a host of the inventory, found the name or address of ${keyName(clash[0])} (${clash[1].name})`);
    if (['0.0.0.0', '::'].includes(norm(endpoint.address))) at(['apiserver', 'endpoint', 'address'], `expected the balancer's address, found the unspecified address ${endpoint.address}`);
  }
  // apiserver.port is bound on every master's address, beside what else runs there: a port another component of the
  // master listens on would leave one of them unable to start
  const busy: Partial<Record<number, string>> = raw.profile === 'modern'
    ? { 10257: "the controller-manager's secure port", 10259: "the scheduler's secure port",
      ...(members.some((m) => m.role === 'master') ? { 2379: "etcd's client port (etcd runs on the master)", 2380: "etcd's peer port (etcd runs on the master)" } : {}) }
    : { 2379: "etcd's client port (the recipe's etcd runs on the master)", 2380: "etcd's peer port", 8080: "the apiserver's own insecure port",
      10251: "the scheduler's port", 10252: "the controller-manager's port" };
  if (busy[raw.apiserver.port]) at(['apiserver', 'port'], `expected a port no other component of the master listens on, found ${raw.apiserver.port} (${busy[raw.apiserver.port]})`);
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
    kubelet: { certificates: raw.kubelet?.certificates ?? 'push', certificateMinutes: raw.kubelet?.certificate_minutes ?? raw.pki.days * 1440 },
  };
}
