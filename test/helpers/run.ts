/** Run one of our scripts the way a user does (`npx zx scripts/X.ts …`), from the repo root, without a TTY. */
import { execa } from 'execa';
import path from 'node:path';
import { repoRoot } from './inventory.ts';

export async function runScript(script: string, args: string[], env: Record<string, string> = {}) {
  const zx = path.join(repoRoot, 'node_modules/.bin/zx');
  const r = await execa(zx, [path.join(repoRoot, 'scripts', script), ...args], {
    cwd: repoRoot, reject: false, stdin: 'ignore', all: true,
    env: { NODE_OPTIONS: '--import=tsx', ...env },
  });
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr, all: r.all ?? '' };
}
