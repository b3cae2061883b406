/**
 * The one way kubetls writes a local file (pki.dir, its records, the Prometheus textfile): a `.new` file created with
 * its final mode (O_EXCL, so never through an old file or a link), then renamed over the target, so that a run killed
 * at any instant leaves the old file or the new one, never half of either.
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

/**
 * Write a file atomically: a `.new` file created with its final mode (O_EXCL, so never through an old file or a link),
 * then rename. With `rename = false` the `.new` file is left for the caller to rename.
 */
export function writeAtomic(file: string, content: string | Buffer, mode: number, rename = true): void {
  const tmp = `${file}.new`;
  rmSync(tmp, { force: true }); // a leftover of an interrupted run of ours
  const fd = openSync(tmp, 'wx', mode);
  try {
    try { writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content); } finally { closeSync(fd); }
    if (rename) renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true }); // no stray .new beside a file that could not be replaced (a folder there, a full disk)
    throw e;
  }
}
