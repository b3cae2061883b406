// systemd's EnvironmentFile= and ExecStart= variable expansion, as far as the kubernetes units use them.
//  - `KEY=value`, `KEY="value"` (may span lines), `KEY='value'`, `#`/`;` comment lines, blank lines
//  - `$VAR` (unquoted, alone as a word) expands to the value split on whitespace; empty values vanish
//  - `${VAR}` expands to the value as one word

export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  let i = 0;
  const n = text.length;
  while (i < n) {
    // skip whitespace and newlines
    while (i < n && /\s/.test(text[i]!)) i++;
    if (i >= n) break;
    if (text[i] === '#' || text[i] === ';') {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }
    let key = '';
    while (i < n && text[i] !== '=' && text[i] !== '\n') key += text[i++];
    if (text[i] !== '=') continue; // a line without "=": systemd ignores it with a warning
    i++;
    key = key.trim();
    let value = '';
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
    while (i < n && text[i] !== '\n') {
      const c = text[i]!;
      if (c === '"' || c === "'") {
        i++;
        while (i < n && text[i] !== c) {
          if (c === '"' && text[i] === '\\' && i + 1 < n && '"\\`$'.includes(text[i + 1]!)) i++;
          else if (c === '"' && text[i] === '\\' && text[i + 1] === '\n') { i += 2; continue; }
          value += text[i++];
        }
        i++; // closing quote
      } else if (c === '\\' && text[i + 1] === '\n') {
        i += 2;
      } else if (c === '\\' && i + 1 < n) {
        value += text[i + 1];
        i += 2;
      } else {
        value += c;
        i++;
      }
    }
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) env[key] = value.replace(/[ \t]+$/, '');
  }
  return env;
}

/** Split ExecStart= like systemd and expand `$VAR` / `${VAR}`. */
export function expandExec(exec: string, env: Record<string, string>): string[] {
  const out: string[] = [];
  for (const word of exec.trim().split(/\s+/)) {
    const whole = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(word);
    if (whole) {
      out.push(...(env[whole[1]!] ?? '').split(/\s+/).filter(Boolean));
      continue;
    }
    out.push(word.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, k: string) => env[k] ?? ''));
  }
  return out;
}
