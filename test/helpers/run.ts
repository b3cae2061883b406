import { execa } from 'execa';
import path from 'node:path';
import { repoRoot } from './inventory.ts';

/**
 * Run one of our scripts the way operators and cron do: `kubetls <command> …` (bin/kubetls.mjs, which runs the
 * precompiled bundle of master/minions/verify/status/renew, rebuilt when a source changed), from the repo root,
 * without a TTY. NODE_OPTIONS is cleared: `npm test` sets --import=tsx for ava (.npmrc), which a user's shell does
 * not. The `npx zx scripts/X.ts` way is covered by test/cli.test.ts and bite-lab.
 */
export async function runScript(script: string, args: string[], env: Record<string, string> = {}) {
  const r = await execa(process.execPath, [path.join(repoRoot, 'bin/kubetls.mjs'), script.replace(/\.ts$/, ''), ...args], {
    cwd: repoRoot, reject: false, stdin: 'ignore', all: true,
    env: { NODE_OPTIONS: '', ...env },
  });
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr, all: r.all ?? '' };
}
