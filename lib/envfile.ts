/**
 * /etc/kubernetes/* are systemd EnvironmentFiles: `VAR="value"` lines, comments, blank lines. kubetls owns a few
 * variables (config/profiles.ts) and must leave every other byte of the file exactly as it was.
 *
 * setVarsBuffer replaces the one assignment of each VAR, or appends `VAR="value"` at the end. The file is read as
 * latin1 (one character per byte, every byte value allowed), so bytes that are not UTF-8, NULs, odd line endings and
 * everything else outside our assignment go back out unchanged. The assignment is found the way systemd's own parser
 * (src/basic/env-file.c) reads the file:
 *   - `\n` and `\r` both end a line, so a CRLF file is read line by line; our line keeps the file's ending;
 *   - a backslash escapes the next character, and an escaped newline continues the value on the next line
 *     (backslash continuation); a double- or single-quoted value may span lines. The whole logical line is replaced;
 *   - there are no inline comments: in `VAR="x" # note` systemd reads the value `x# note`. Keeping ` # note` after our
 *     value would therefore change what the service gets, so the note is moved to a comment line of its own just
 *     above our assignment: the operator's words survive and the value is exactly ours.
 * Values are written on one line in double quotes.
 */

export interface EditResult { text: string; changed: boolean }
export interface BufferEditResult { bytes: Buffer; changed: boolean }

/** Double-quoted for systemd: backslash, double quote and `$` escaped. */
export function quoteValue(v: string): string {
  return `"${v.replace(/([\\"$])/g, '\\$1')}"`;
}

const NEWLINE = '\n\r';
const SPACE = ' \t\n\r';

/** One assignment in the file (offsets into the latin1 text). */
interface Assignment {
  key: string;
  lineStart: number; // first byte of the line the key is on
  valueStart: number; // just after `=`
  end: number; // the newline byte that ends the logical line (not included), or the file's length
  comment?: number; // where an unquoted ` #…` starts inside the value (what looks like an inline comment)
}

/** Every assignment, in order; comment lines and lines without `=` are skipped, as systemd does. */
function scan(s: string): Assignment[] {
  const out: Assignment[] = [];
  let i = 0;
  while (i < s.length) {
    while (i < s.length && SPACE.includes(s[i])) i++;
    if (i >= s.length) break;
    const keyStart = i;
    if (s[i] === '#' || s[i] === ';') { // a comment runs to the end of its line (systemd >= 254 ends it there even after a `\`)
      while (i < s.length && !NEWLINE.includes(s[i])) i++;
      continue;
    }
    while (i < s.length && s[i] !== '=' && !NEWLINE.includes(s[i])) i++;
    if (s[i] !== '=') continue; // no `=`: systemd ignores the line
    const key = s.slice(keyStart, i).trim().replace(/^export\s+/, '');
    const valueStart = ++i;
    let comment: number | undefined;
    while (i < s.length && !NEWLINE.includes(s[i])) {
      const c = s[i];
      if (c === '\\') i += 2; // escapes the next byte; an escaped newline is a continuation line
      else if (c === '"') { // to the closing quote, across lines; `\x` inside is one escape
        for (i++; i < s.length && s[i] !== '"'; i += s[i] === '\\' ? 2 : 1);
        i++;
      } else if (c === "'") { // no escapes inside single quotes
        for (i++; i < s.length && s[i] !== "'"; i++);
        i++;
      } else {
        if (c === '#' && comment === undefined && (s[i - 1] === ' ' || s[i - 1] === '\t')) comment = i;
        i++;
      }
    }
    i = Math.min(i, s.length);
    const lineStart = Math.max(s.lastIndexOf('\n', keyStart - 1), s.lastIndexOf('\r', keyStart - 1)) + 1;
    out.push({ key, lineStart, valueStart, end: i, comment });
  }
  return out;
}

/** The line ending the file mostly uses (CRLF if it has any), for lines we add. */
function fileEol(s: string): string {
  return s.includes('\r\n') ? '\r\n' : '\n';
}

/** The line ending right after `end`, or the file's when the assignment is the last line without one. */
function eolAt(s: string, end: number): string {
  if (s.startsWith('\r\n', end)) return '\r\n';
  if (end < s.length) return s[end];
  return fileEol(s);
}

/** UTF-8 text (our values) as latin1 characters, one per byte, so it can be spliced into the file's text. */
const asBytes = (v: string) => Buffer.from(v, 'utf8').toString('latin1');

/** setVar on latin1 text (one character per byte). */
function setVarLatin1(s: string, name: string, value: string): string {
  const line = asBytes(`${name}=${quoteValue(value)}`);
  const at = scan(s).filter((a) => a.key === name).at(-1); // the last assignment wins, as in systemd
  if (!at) {
    const eol = fileEol(s);
    return `${s}${s === '' || NEWLINE.includes(s.at(-1)!) ? '' : eol}${line}${eol}`;
  }
  let note = '';
  if (at.comment !== undefined) {
    // A note that spans lines (continued with `\`, or a quote left open across a line break) becomes one comment
    // line; a trailing `\` is dropped so that the comment cannot swallow our assignment on a systemd older than 254
    // (which continued comments). Every line break goes: a second line of the note would be read as an assignment.
    const text = s.slice(at.comment, at.end).replace(/\\?(\r\n|\n|\r)/g, ' ').replace(/[\s\\]+$/, '');
    note = `${text}${eolAt(s, at.end)}`;
  }
  return `${s.slice(0, at.lineStart)}${note}${line}${s.slice(at.end)}`;
}

/** Set each variable in the file's bytes; every byte outside our assignments is kept as it was. */
export function setVarsBuffer(before: Buffer, vars: Record<string, string>): BufferEditResult {
  let s = before.toString('latin1');
  for (const [k, v] of Object.entries(vars)) s = setVarLatin1(s, k, v);
  const bytes = Buffer.from(s, 'latin1');
  return { bytes, changed: !bytes.equals(before) };
}

/** The same on a (UTF-8) string. Prefer setVarsBuffer: a string cannot carry bytes that are not UTF-8. */
export function setVars(text: string, vars: Record<string, string>): EditResult {
  const out = setVarsBuffer(Buffer.from(text, 'utf8'), vars).bytes.toString('utf8');
  return { text: out, changed: out !== text };
}

export function setVar(text: string, name: string, value: string): EditResult {
  return setVars(text, { [name]: value });
}

/**
 * The value of VAR as systemd reads it (quotes removed, escapes resolved, escaped newlines dropped); a newline inside
 * quotes reads as a space, which is how it acts in `$VAR`. Undefined when VAR is not assigned.
 */
export function getVar(file: string | Buffer, name: string): string | undefined {
  const s = typeof file === 'string' ? asBytes(file) : file.toString('latin1');
  const at = scan(s).filter((a) => a.key === name).at(-1);
  if (!at) return undefined;
  let v = '';
  let pre = true; // systemd's PRE_VALUE: at the start and after a closing quote, whitespace is skipped
  let trailing = -1; // where unquoted trailing whitespace starts (systemd chomps it)
  for (let i = at.valueStart; i < at.end; i++) {
    const c = s[i];
    if (c === '\\') {
      if (i + 1 < at.end && !NEWLINE.includes(s[i + 1])) v += s[i + 1];
      i++;
      pre = false;
      trailing = -1;
    } else if (c === '"') {
      for (i++; i < at.end && s[i] !== '"'; i++) {
        if (s[i] !== '\\') v += s[i];
        else if (++i >= at.end || NEWLINE.includes(s[i])) continue; // continuation inside quotes, or a `\` at the very end
        else v += '"\\`$'.includes(s[i]) ? s[i] : `\\${s[i]}`;
      }
      pre = true;
      trailing = -1;
    } else if (c === "'") {
      for (i++; i < at.end && s[i] !== "'"; i++) v += s[i];
      pre = true;
      trailing = -1;
    } else if (c === ' ' || c === '\t') {
      if (pre) continue;
      if (trailing < 0) trailing = v.length;
      v += c;
    } else {
      v += c;
      pre = false;
      trailing = -1;
    }
  }
  if (trailing >= 0) v = v.slice(0, trailing);
  return Buffer.from(v.replace(/\r\n|\n|\r/g, ' '), 'latin1').toString('utf8');
}
