/**
 * What a CertificateSigningRequest object asks, read for lib/csr/decide.ts: the request itself by the real openssl
 * (node has no CSR parser: `openssl req -verify`, `-subject`, `-pubkey` and `asn1parse`, one call per fact), the rest
 * from the object as the apiserver stored it.
 */
import { createPublicKey } from 'node:crypto';
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

/**
 * The request's DER, only when `spec.request` is exactly one PEM block named CERTIFICATE REQUEST and nothing else: two
 * readers (openssl here, Go in the apiserver and the signer) must never see two different requests in one text.
 */
export function strictDer(request: string): Buffer | undefined {
  const text = Buffer.from(request, 'base64').toString('latin1');
  const m = /^-----BEGIN CERTIFICATE REQUEST-----\r?\n((?:[A-Za-z0-9+/=]+\r?\n)+)-----END CERTIFICATE REQUEST-----\r?\n?$/.exec(text);
  return m ? Buffer.from(m[1]!.replace(/\s/g, ''), 'base64') : undefined;
}

const CURVE_NAMES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/**
 * The facts of one CSR object, every reader fed the same DER, each answer from a call of its own (no free text of the
 * request can pose as another field). A request that is not one strict PEM block, or that openssl cannot read, has no
 * subject, no SAN, no key and no valid signature: denied.
 */
export async function readCsr(o: CsrObject): Promise<CsrFacts> {
  const spec = { signerName: o.spec.signerName, username: o.spec.username ?? '', groups: o.spec.groups ?? [], usages: o.spec.usages ?? [] };
  const der = strictDer(o.spec.request);
  if (!der) return { ...spec, subject: [], dns: [], ips: [], otherSans: ['(not one CERTIFICATE REQUEST block)'], key: { type: 'other', bits: 0 }, signatureOk: false };
  const openssl = (args: string[]) => execa('openssl', ['req', '-inform', 'DER', '-noout', ...args], { input: der, reject: false });
  const verified = await openssl(['-verify']);
  const subject = await openssl(['-subject', '-nameopt', 'sep_multiline,sname,esc_2253,esc_ctrl,utf8']);
  const pub = await openssl(['-pubkey']);
  const asn1 = await execa('openssl', ['asn1parse', '-inform', 'DER'], { input: der, reject: false });
  let key: CsrFacts['key'] = { type: 'other', bits: 0 };
  try {
    const k = createPublicKey(pub.stdout);
    const d = k.asymmetricKeyDetails ?? {};
    if (k.asymmetricKeyType === 'rsa') key = { type: 'rsa', bits: d.modulusLength ?? 0 };
    else if (k.asymmetricKeyType === 'ec') {
      const curve = CURVE_NAMES[d.namedCurve ?? ''];
      key = curve ? { type: 'ec', bits: Number(curve.slice(2)), curve } : { type: 'ec', bits: 0 };
    }
  } catch { /* no key openssl could give: other */ }
  return {
    ...spec, subject: subject.exitCode === 0 ? subjectLines(subject.stdout) : [], key,
    ...sansOf(asn1.exitCode === 0 ? asn1.stdout : ''),
    // openssl 3.0 may exit 0 on a bad signature: its own line is the answer, and this call prints nothing else
    signatureOk: verified.exitCode === 0 && /^Certificate request self-signature verify OK$/m.test(`${verified.stdout}\n${verified.stderr}`)
      && !/verify failure|error/i.test(`${verified.stdout}\n${verified.stderr}`),
  };
}

/** The subject lines of `openssl req -noout -subject -nameopt sep_multiline,…` (one attribute per line). Exported for the tests. */
export function subjectLines(text: string): string[] {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.startsWith('subject='));
  const out: string[] = [];
  for (let i = at + 1; at >= 0 && i < lines.length && /^ {4}\S/.test(lines[i]!); i++) out.push(lines[i]!.trim());
  return out;
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
