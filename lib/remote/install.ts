/**
 * The far side of an install: one staged file checked (size and sha256), given its owner and mode, the old one backed
 * up, then renamed over the target. lib/remote/ssh.ts runs one such script per file of a batch, in one command.
 */
import path from 'node:path';
import { BACKUPS_KEPT, type FileMode } from '../../config/files.ts';
import { quote } from '../sh.ts';
import { modeStr } from './remote.ts';

/** Exit code of our install script when the staged file is not what was sent (full disk, a failed write). */
export const SHORT_WRITE = 97;

/**
 * Install a staged file: check it is exactly what was sent (size and sha256: a full disk or a failed write leaves a
 * short file, and ssh2's put can resolve anyway), give it its owner and mode (`chown -h`: never through a link), back
 * up the current file (a hard link: same inode, owner and mode; since every upload is verified first, a failed run
 * installs nothing and so rotates no good backup away), keep the newest BACKUPS_KEPT but never the one just made,
 * and rename it over the target (atomic: the file is old or new).
 * `tmp` lives in the target's own folder, which dirProblem has proven only root can write to.
 * With sudo the upload went to the user's staging folder first (`from`); `install` copies it to `tmp` as root, and the
 * staged copy is removed whatever happens (a key must not linger in a home folder).
 */
export function installScript(tmp: string, file: string, backup: string | undefined, m: FileMode, size: number, hash: string, from?: string): string {
  const q = quote;
  const dir = path.posix.dirname(file);
  return [
    'set -e',
    ...(from ? [`staged=${q(from)}`, `trap 'rm -f -- "$staged"' EXIT`, `rm -f -- ${q(tmp)}`, `install -o ${q(m.owner)} -g ${q(m.group)} -m ${modeStr(m.mode)} -- ${q(from)} ${q(tmp)}`] : []),
    `if [ -L ${q(tmp)} ] || [ ! -f ${q(tmp)} ]; then echo 'staged file is not a regular file' >&2; exit ${SHORT_WRITE}; fi`,
    `got=$(stat -c %s -- ${q(tmp)})`,
    `if [ "$got" != ${size} ] || [ "$(sha256sum < ${q(tmp)} | cut -d' ' -f1)" != ${hash} ]; then rm -f -- ${q(tmp)}; echo "landed $got of ${size} bytes; free: $(df -Pk -- ${q(dir)} | awk 'NR==2 {print $4}') KiB" >&2; exit ${SHORT_WRITE}; fi`,
    ...(from ? [] : [`chown -h ${q(`${m.owner}:${m.group}`)} -- ${q(tmp)}`, `chmod ${modeStr(m.mode)} -- ${q(tmp)}`]),
    ...(backup ? [`if [ -f ${q(file)} ] && [ ! -L ${q(file)} ]; then ln -fPT -- ${q(file)} ${q(backup)}; fi`] : []),
    // keep the newest BACKUPS_KEPT backups of kubetls's own stamp shape, and never the one just made
    `set -- ${q(file)}.bak-[0-9]*T[0-9]*Z; [ -e "$1" ] || set --; while [ $# -gt ${BACKUPS_KEPT} ]; do [ "$1" = ${q(backup ?? '')} ] || rm -f -- "$1"; shift; done`,
    // on disk before the rename: a power cut right after it must not leave an empty file (XFS, ext4 noauto_da_alloc)
    `sync -- ${q(tmp)}`,
    `mv -fT -- ${q(tmp)} ${q(file)}`,
    `sync -- ${q(dir)} 2>/dev/null || true`,
  ].join('\n');
}
