/**
 * POSIX `sh` quoting. Remote commands are strings run by the login shell (`sh -c` on the far side), so every value
 * that came from the inventory is single-quoted here. zx's `$'…'` quoting is bash-only and is not used.
 */

/** Quote one word for POSIX sh: safe words stay bare, anything else goes in single quotes. */
export function quote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** An argv as one sh command line. */
export function command(argv: readonly string[]): string {
  return argv.map(quote).join(' ');
}
