/**
 * POSIX `sh` quoting. Remote commands are strings run by the login shell (`sh -c` on the far side), so every value
 * that came from the inventory is single-quoted here. zx's `$'…'` quoting is bash-only and is not used.
 */

/**
 * Quote one word for POSIX sh: safe words stay bare, anything else goes in single quotes (inside which only `'` is
 * special: it is written as `'\''`). A word that looks like an assignment (`NAME=value`) is quoted too: bare, it would
 * set a variable instead of running a program when it comes first in a command.
 */
export function quote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** An argv as one sh command line. */
export function command(argv: readonly string[]): string {
  return argv.map(quote).join(' ');
}
