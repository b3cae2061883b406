/**
 * What a CertificateSigningRequest object asks, read for lib/csr/decide.ts: the request itself by the real openssl
 * (`openssl req -verify -subject -text`: node has no CSR parser), the rest from the object as the apiserver stored it.
 */
import { execa } from 'execa';
import type { CsrFacts } from './decide.ts';

/** The parts of a certificates.k8s.io/v1 CertificateSigningRequest this approver reads. */
export interface CsrObject {
  metadata: { name: string; resourceVersion?: string };
  spec: { request: string; signerName: string; username?: string; groups?: string[]; usages?: string[] };
  status?: { conditions?: { type: string; status?: string }[]; certificate?: string };
}

/** Approved, Denied or Failed already: nothing left to decide (a run killed half-way never decides twice). */
export const decided = (o: CsrObject): boolean => (o.status?.conditions ?? []).some((c) => ['Approved', 'Denied', 'Failed'].includes(c.type));

/** The facts of one CSR object. A request openssl cannot read has no SAN, no key and no valid signature: denied. */
export async function readCsr(o: CsrObject): Promise<CsrFacts> {
  const pem = Buffer.from(o.spec.request, 'base64');
  const r = await execa('openssl', ['req', '-noout', '-verify', '-subject', '-nameopt', 'sep_multiline,sname,esc_2253,esc_ctrl,utf8',
    '-text', '-reqopt', 'no_header,no_version,no_subject,no_attributes,no_sigdump'], { input: pem, reject: false });
  // the SANs from the DER (openssl's text joins them with ", ", which a DNS name may itself contain)
  const der = await execa('openssl', ['asn1parse'], { input: pem, reject: false });
  return {
    signerName: o.spec.signerName, username: o.spec.username ?? '', groups: o.spec.groups ?? [], usages: o.spec.usages ?? [],
    ...parseReqText(`${r.stdout}\n${r.stderr}`), ...sansOf(der.exitCode === 0 ? der.stdout : ''), signatureOk: r.exitCode === 0 && /self-signature verify OK/.test(r.stdout + r.stderr),
  };
}

/** The subject and the key from openssl's text of a request (see readCsr). Exported for the tests. */
export function parseReqText(text: string): Pick<CsrFacts, 'subject' | 'key'> {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.startsWith('subject='));
  const subject: string[] = [];
  for (let i = at + 1; at >= 0 && i < lines.length && /^ {4}\S/.test(lines[i]!); i++) subject.push(lines[i]!.trim());
  const alg = /Public Key Algorithm: (\S+)/.exec(text)?.[1];
  const bits = Number(/Public-Key: \((\d+) bit\)/.exec(text)?.[1] ?? 0);
  const curve = /NIST CURVE: (\S+)/.exec(text)?.[1]; // a curve without a NIST name has none here (and is denied)
  const type = alg === 'rsaEncryption' ? 'rsa' as const : alg === 'id-ecPublicKey' ? 'ec' as const : 'other' as const;
  return { subject, key: { type, bits, ...(type === 'ec' && curve ? { curve } : {}) } };
}

/**
 * Every SAN of every subjectAltName extension in `openssl asn1parse` output: the extension's value is DER
 * GeneralNames, read here tag by tag (RFC 5280 4.2.1.6). Anything but a dNSName or a 4- or 16-byte iPAddress, and any
 * DER this reader does not follow, lands in otherSans (and is denied). Exported for the tests.
 */
export function sansOf(asn1: string): Pick<CsrFacts, 'dns' | 'ips' | 'otherSans'> {
  const out = { dns: [] as string[], ips: [] as string[], otherSans: [] as string[] };
  const lines = asn1.split('\n');
  lines.forEach((l, i) => {
    if (!/:X509v3 Subject Alternative Name\s*$/.test(l)) return;
    const value = lines.slice(i + 1, i + 3).map((x) => /OCTET STRING\s+\[HEX DUMP\]:([0-9A-F]*)/i.exec(x)?.[1]).find(Boolean);
    if (!value) { out.otherSans.push('(unreadable subjectAltName)'); return; }
    readGeneralNames(Buffer.from(value, 'hex'), out);
  });
  return out;
}

const KINDS: Record<number, string> = { 0xa0: 'othername', 0x81: 'email', 0xa3: 'x400', 0xa4: 'dirname', 0xa5: 'ediparty', 0x86: 'URI', 0x88: 'registeredID' };

function readGeneralNames(b: Buffer, out: { dns: string[]; ips: string[]; otherSans: string[] }): void {
  const seq = tlv(b, 0);
  if (!seq || b[0] !== 0x30 || seq.end !== b.length) { out.otherSans.push('(malformed subjectAltName)'); return; }
  for (let at = seq.start; at < seq.end;) {
    const el = tlv(b, at);
    if (!el || el.end > seq.end) { out.otherSans.push('(malformed subjectAltName)'); return; }
    const tag = b[at]!;
    const v = b.subarray(el.start, el.end);
    if (tag === 0x82) out.dns.push(v.toString('latin1'));
    else if (tag === 0x87 && v.length === 4) out.ips.push([...v].join('.'));
    else if (tag === 0x87 && v.length === 16) out.ips.push(Array.from({ length: 8 }, (_, k) => v.readUInt16BE(2 * k).toString(16)).join(':'));
    else out.otherSans.push(tag === 0x87 ? `IP:(${v.length} bytes)` : `${KINDS[tag] ?? `tag 0x${tag.toString(16)}`}:${tag === 0x81 || tag === 0x86 ? v.toString('latin1') : '(not shown)'}`);
    at = el.end;
  }
}

/** One DER tag-length-value at `at`: where its value starts and ends (definite lengths up to 4 bytes only). */
function tlv(b: Buffer, at: number): { start: number; end: number } | undefined {
  if (at + 2 > b.length) return undefined;
  const first = b[at + 1]!;
  if (first < 0x80) return { start: at + 2, end: at + 2 + first };
  const n = first & 0x7f;
  if (n === 0 || n > 4 || at + 2 + n > b.length) return undefined;
  let len = 0;
  for (let k = 0; k < n; k++) len = len * 256 + b[at + 2 + k]!;
  return { start: at + 2 + n, end: at + 2 + n + len };
}
