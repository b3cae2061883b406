/**
 * The inventory's error messages: one line per problem, `<file>:<line>: <key>: expected <what>, found <what>`, with
 * the line found in the YAML source and every value shown escaped, so that no value can forge a line of its own.
 */
import { isMap, isNode, isScalar, type Document } from 'yaml';

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

export function keyName(p: (string | number)[]): string {
  return p.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${k}` : k), '') || '(top level)';
}

/**
 * The value at `p` as plain data; for `minions[i].name` of a bare-name entry, the bare name. `getIn` gives a scalar's
 * value but a list or map as its node: `toJS` turns that into data with its aliases resolved (a node's own JSON would
 * show an alias as `{"source":"b"}`). An alias inside its own anchor stays a cycle, which describe() cannot show.
 */
export function valueAt(doc: Document, p: (string | number)[]): unknown {
  let v = doc.getIn(p);
  if (v === undefined && p.at(-1) === 'name') v = doc.getIn(p.slice(0, -1));
  return isNode(v) ? v.toJS(doc) : v;
}

/** A value as a message shows it: strings quoted, control characters escaped (never a raw newline), at most 60 characters. */
export function describe(v: unknown): string {
  if (v === undefined || v === null) return 'nothing'; // a missing key; `key:` with no value, or an empty file
  let s: string;
  try {
    s = oneLine(typeof v === 'string' ? `'${v}'` : JSON.stringify(v) ?? String(v));
  } catch {
    s = 'a value that cannot be shown'; // e.g. a BigInt or a cycle: the message still names the key and the line
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * The source offset of `p`: its key when it sits in a mapping (so `pki:` is named for a problem inside the pki block,
 * not the line of its first child), else its node, else the nearest existing parent (for a missing key). Keys are
 * compared as text: zod names a YAML key `1` or `true` by its string, and it must still find its own line.
 */
export function locate(doc: Document, p: (string | number)[]): number | undefined {
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
