/**
 * /etc/kubernetes/* are systemd EnvironmentFiles: `VAR="value"` lines, comments, blank lines. kubetls owns a few
 * variables (config/profiles.ts) and must leave every other line, comment and variable exactly as it was.
 *
 * setVar replaces the one assignment of VAR (a multi-line quoted value, as the recipe writes KUBE_API_ARGS over several
 * lines, is replaced as a whole) or appends `VAR="value"` at the end. Values are written on one line in double quotes.
 */

export interface EditResult { text: string; changed: boolean }

/** Double-quoted for systemd: backslash, double quote and `$` escaped. */
export function quoteValue(v: string): string {
  return `"${v.replace(/([\\"$])/g, '\\$1')}"`;
}

/** Where `VAR=` is assigned: [first line, last line] (inclusive), following an open double quote across lines. */
function findAssignment(lines: string[], name: string): [number, number] | undefined {
  let found: [number, number] | undefined;
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/.exec(lines[i]);
    if (!m) continue;
    let end = i;
    let rest = m[2];
    while (openQuote(rest) && end + 1 < lines.length) rest += `\n${lines[++end]}`;
    if (m[1] === name) found = [i, end]; // the last assignment wins, as in systemd
    i = end;
  }
  return found;
}

/** True when a value has an unterminated double or single quote. */
function openQuote(value: string): boolean {
  let q: string | null = null;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (q === '"' && c === '\\') { i++; continue; }
    if (q) { if (c === q) q = null; continue; }
    if (c === '"' || c === "'") q = c;
    else if (c === '#') break;
  }
  return q !== null;
}

export function setVar(text: string, name: string, value: string): EditResult {
  const line = `${name}=${quoteValue(value)}`;
  const trailing = text.endsWith('\n') || text === '';
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const at = findAssignment(lines, name);
  if (at) lines.splice(at[0], at[1] - at[0] + 1, line);
  else lines.push(line);
  const out = `${lines.join('\n')}${trailing || !at ? '\n' : ''}`;
  return { text: out, changed: out !== text };
}

export function setVars(text: string, vars: Record<string, string>): EditResult {
  let out = text;
  for (const [k, v] of Object.entries(vars)) out = setVar(out, k, v).text;
  return { text: out, changed: out !== text };
}

/** The value of VAR as systemd reads it (quotes removed, escapes resolved); undefined when not assigned. */
export function getVar(text: string, name: string): string | undefined {
  const lines = text.split('\n');
  const at = findAssignment(lines, name);
  if (!at) return undefined;
  const raw = lines.slice(at[0], at[1] + 1).join('\n').replace(/^[^=]*=\s*/, '').trim();
  if (raw.startsWith('"') && raw.endsWith('"')) return raw.slice(1, -1).replace(/\\(.)/g, '$1').replace(/\\?\n/g, ' ');
  if (raw.startsWith("'") && raw.endsWith("'")) return raw.slice(1, -1);
  return raw;
}
