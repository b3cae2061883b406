/**
 * The checks `ca.ts import` makes before kubetls signs with a CA certificate the operator's root issued (the operator's
 * own root: docs/own-root.md). A pure function of the certificate, the root, the key kubetls made and the names the
 * leaves under that CA will carry: every problem found, each a sentence that says what is wrong, none that quotes a key.
 *
 *   problems = importProblems({ cert, root, key, sans, now })   // [] → the certificate may be imported
 *
 * node:crypto's X509Certificate gives subjects, validity, signatures and keys but not basicConstraints' pathlen, the
 * key usage bits or name constraints: those are read from the text the real `openssl x509 -noout -ext …` prints
 * (parseExtensions below; lib/pki/intermediate.ts runs it).
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';

/** What of a certificate's extensions the checks read, from `openssl x509 -noout -ext basicConstraints,keyUsage,nameConstraints`. */
export interface CaExtensions {
  /** basicConstraints: CA:TRUE (false when it says CA:FALSE or is absent) */
  ca: boolean;
  /** basicConstraints' pathlen, when it has one */
  pathlen?: number;
  /** the key usage bits as openssl names them (`Certificate Sign`, `CRL Sign`); undefined when there is no such extension */
  keyUsage?: string[];
  /** name constraints, as openssl prints each (`DNS:example.com`, `IP:10.0.0.0/255.0.0.0`) */
  permitted: string[];
  excluded: string[];
  /** the algorithm its issuer signed it with, as openssl names it (`ecdsa-with-SHA256`, `sha1WithRSAEncryption`) */
  signature?: string;
}

/**
 * The extensions of one certificate from the text `openssl x509 -noout -ext basicConstraints,keyUsage,nameConstraints
 * -text -certopt …` prints (the extensions, then an indented `Signature Algorithm:` line).
 */
export function parseExtensions(text: string): CaExtensions {
  const out: CaExtensions = { ca: false, permitted: [], excluded: [] };
  let section = '';
  let list: string[] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const sig = /^Signature Algorithm: (.+)$/.exec(line);
    if (sig) { out.signature = sig[1]; continue; }
    if (/^X509v3 /.test(raw)) { // a heading starts at the left margin; its values are indented
      section = line.replace(/^X509v3 /, '').replace(/:.*$/, '');
      list = undefined;
      continue;
    }
    if (section === 'Basic Constraints') {
      out.ca = /(^|, )CA:TRUE(,|$)/.test(line);
      const m = /pathlen:(\d+)/.exec(line);
      if (m) out.pathlen = Number(m[1]);
    } else if (section === 'Key Usage') {
      out.keyUsage = line.split(',').map((s) => s.trim()).filter(Boolean);
    } else if (section === 'Name Constraints') {
      if (line === 'Permitted:') list = out.permitted;
      else if (line === 'Excluded:') list = out.excluded;
      else list?.push(line);
    }
  }
  return out;
}

export interface CaCert { x509: X509Certificate; ext: CaExtensions }
export interface ImportInput {
  /** the certificate the operator's root signed for kubetls's CA */
  cert: CaCert;
  /** the root's certificate (never its key) */
  root: CaCert;
  /** the key kubetls made for this CA (`ca.ts request`) */
  key: KeyObject;
  /** every SAN the leaves under this CA carry (`DNS:name`, `IP:address`): name constraints must allow them */
  sans: string[];
  now: Date;
  /** pki.renew_before_days: a certificate that ends inside it would be due at once */
  renewBeforeDays?: number;
}

const EKU_SERVER = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT = '1.3.6.1.5.5.7.3.2';
const EKU_ANY = '2.5.29.37.0';
/** How far in the future a notBefore may be (a signer whose clock runs ahead), as kubetls backdates its own by 5 min. */
const SKEW_MS = 5 * 60_000;

/** Every reason the certificate cannot be kubetls's CA under that root; [] when it can. */
export function importProblems(i: ImportInput): string[] {
  const out: string[] = [];
  const { cert, root } = i;
  const from = (x: X509Certificate) => new Date(x.validFrom);
  const to = (x: X509Certificate) => new Date(x.validTo);
  // the root: the top of the chain, a CA that may have a CA below it
  const rootSelfSigned = root.x509.checkIssued(root.x509) && root.x509.verify(root.x509.publicKey);
  if (!rootSelfSigned) out.push(`the root is not self-signed (issuer ${oneLine(root.x509.issuer)}): give the certificate at the top of your chain`);
  if (!root.ext.ca) out.push('the root is not a CA certificate (basicConstraints CA:TRUE missing)');
  if (root.ext.keyUsage && !root.ext.keyUsage.includes('Certificate Sign')) out.push('the root\'s key usage does not allow Certificate Sign');
  if (root.ext.pathlen === 0) out.push('the root has pathlen 0: it may sign no CA, and kubetls\'s CA would be one below it');
  if (narrowsEku(root.x509.keyUsage)) out.push('the root\'s extended key usage does not allow both serverAuth and clientAuth, so nothing below it may serve or log in');
  if (to(root.x509) <= i.now) out.push(`the root expired on ${iso(to(root.x509))}`);
  // the certificate: a CA, issued by that root, inside its lifetime, for the key kubetls holds
  if (cert.x509.fingerprint256 === root.x509.fingerprint256) out.push('the certificate is the root itself: import the certificate your root signed for kubetls\'s request');
  if (!cert.ext.ca) out.push('the certificate is not a CA certificate (basicConstraints CA:TRUE missing): sign the request as a CA (basicConstraints=critical,CA:TRUE)');
  if (!cert.ext.keyUsage) out.push('the certificate has no key usage: a CA certificate must allow Certificate Sign (RFC 5280 4.2.1.3)');
  else if (!cert.ext.keyUsage.includes('Certificate Sign')) out.push('the certificate\'s key usage does not allow Certificate Sign');
  if (narrowsEku(cert.x509.keyUsage)) out.push('the certificate\'s extended key usage does not allow both serverAuth and clientAuth, which the leaves under it need');
  if (/sha1|md5|md2|md4/i.test(cert.ext.signature ?? '')) out.push(`the root signed the certificate with ${cert.ext.signature}: Go's crypto/x509 refuses it as insecure; sign with SHA-256 or better`);
  if (!cert.x509.checkIssued(root.x509) || !cert.x509.verify(root.x509.publicKey)) out.push(`the certificate does not chain to the given root (issuer ${oneLine(cert.x509.issuer)}, root ${oneLine(root.x509.subject)})`);
  if (from(cert.x509) < from(root.x509)) out.push(`the certificate starts (${iso(from(cert.x509))}) before its root (${iso(from(root.x509))})`);
  if (to(cert.x509) > to(root.x509)) out.push(`the certificate outlives its root: it ends ${iso(to(cert.x509))}, the root ${iso(to(root.x509))}`);
  if (to(cert.x509) <= i.now) out.push(`the certificate expired on ${iso(to(cert.x509))}`);
  else if (i.renewBeforeDays !== undefined && to(cert.x509).getTime() - i.now.getTime() <= i.renewBeforeDays * 86_400_000) {
    out.push(`the certificate ends ${iso(to(cert.x509))}, inside pki.renew_before_days (${i.renewBeforeDays} d): it would be due at once; sign it for longer`);
  }
  if (from(cert.x509).getTime() > i.now.getTime() + SKEW_MS) out.push(`the certificate is not valid before ${iso(from(cert.x509))}`);
  if (!cert.x509.checkPrivateKey(i.key)) out.push('the certificate does not match the key kubetls made for this CA: sign the request ca.ts request wrote');
  // name constraints, of the root and of the certificate itself, over every name the leaves will carry
  for (const [who, c] of [['the root', root], ['the certificate', cert]] as const) {
    const other = [...c.ext.permitted, ...c.ext.excluded].filter((n) => !/^(DNS|IP):/.test(n));
    if (other.length) out.push(`${who}'s name constraints include ${other.join(', ')}: kubetls checks DNS and IP constraints only`);
    for (const san of i.sans) {
      const why = constraintProblem(san, c.ext);
      if (why) out.push(`${who}'s name constraints refuse ${san}, which a certificate under this CA carries: ${why}`);
    }
  }
  return out;
}

/** Whether an extendedKeyUsage (node's `keyUsage`: OIDs; undefined when absent, which restricts nothing) leaves out serverAuth or clientAuth. */
function narrowsEku(eku: string[] | undefined): boolean {
  return !!eku && !eku.includes(EKU_ANY) && !(eku.includes(EKU_SERVER) && eku.includes(EKU_CLIENT));
}

/** Why name constraints refuse one SAN (`DNS:name`, `IP:address`), or undefined when they allow it. */
export function constraintProblem(san: string, ext: Pick<CaExtensions, 'permitted' | 'excluded'>): string | undefined {
  const kind = san.slice(0, san.indexOf(':'));
  const value = san.slice(san.indexOf(':') + 1);
  const ofKind = (list: string[]) => list.filter((n) => n.startsWith(`${kind}:`)).map((n) => n.slice(kind.length + 1));
  const matches = (c: string) => (kind === 'DNS' ? dnsWithin(value, c) : ipWithin(value, c));
  const excluded = ofKind(ext.excluded).find(matches);
  if (excluded !== undefined) return `excluded by ${kind}:${excluded}`;
  const permitted = ofKind(ext.permitted);
  if (permitted.length && !permitted.some(matches)) return `not within the permitted ${permitted.map((p) => `${kind}:${p}`).join(', ')}`;
  return undefined;
}

/**
 * RFC 5280 4.2.1.10 as Go's crypto/x509 reads it: `example.com` allows itself and every name below it, `.example.com`
 * only the names below it. Case does not matter.
 */
export function dnsWithin(name: string, constraint: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  const c = constraint.toLowerCase();
  if (c === '') return true;
  if (c.startsWith('.')) return n.endsWith(c);
  return n === c || n.endsWith(`.${c}`);
}

/** An address inside `ADDRESS/MASK` as openssl prints an IP constraint (`10.0.0.0/255.0.0.0`, `FD00:0:…/FFFF:FF00:…`). */
export function ipWithin(address: string, constraint: string): boolean {
  const [net, mask] = constraint.split('/');
  const a = ipBytes(address);
  const n = ipBytes(net ?? '');
  const m = ipBytes(mask ?? '');
  if (!a || !n || !m || a.length !== n.length || n.length !== m.length) return false;
  return a.every((b, k) => (b & m[k]!) === (n[k]! & m[k]!));
}

/** The bytes of an IPv4 or IPv6 address (IPv6 in any spelling openssl or a person writes), undefined when it is not one. */
export function ipBytes(ip: string): number[] | undefined {
  if (isIP(ip) === 4) return ip.split('.').map(Number);
  if (isIP(ip) !== 6) return undefined;
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(ip); // ::ffff:10.0.0.1: the last 32 bits written as IPv4
  if (v4) {
    const [a, b, c, d] = v4[2]!.split('.').map(Number) as [number, number, number, number];
    return ipBytes(`${v4[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`);
  }
  const [head, tail] = ip.toLowerCase().split('::') as [string, string | undefined];
  const groups = (s: string | undefined) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return all.flatMap((g) => { const v = parseInt(g, 16); return [v >> 8, v & 0xff]; });
}

const iso = (d: Date) => d.toISOString().slice(0, 16).replace('T', ' ') + 'Z';
const oneLine = (dn: string) => dn.split('\n').join(', ');
