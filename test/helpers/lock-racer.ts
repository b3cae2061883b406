/**
 * A process that races for the kubetls lock when told (test/lock.test.ts). Commands on stdin, one per line:
 *   go <epoch ms>  busy-wait until that instant, call acquireLock once, print `won` or `lost <exit code>`
 *   release        release the lock if held, print `released`
 * argv[2]: an inventory path; the lock sits in its folder, the racers' pki.dir. KUBETLS_LOCK_MODULE may name another lock.ts (to show that the
 * test catches the old implementation).
 */
import { createInterface } from 'node:readline';
import path from 'node:path';
import { configureLog } from '../../lib/log.ts';

configureLog({ sink: () => undefined, tty: false });
const mod = process.env.KUBETLS_LOCK_MODULE ?? path.join(import.meta.dirname, '../../lib/lock.ts');
const { acquireLock } = await import(mod) as typeof import('../../lib/lock.ts');
const inv = { file: process.argv[2]!, pki: { dir: path.dirname(process.argv[2]!) } };
let release: (() => void) | undefined;
const say = (s: string) => process.stdout.write(`${s}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.split(' ');
  if (cmd === 'go') {
    while (Date.now() < Number(arg)); // everyone calls acquireLock in the same millisecond
    try {
      release = acquireLock(inv as never, `racer ${process.pid}`);
      say('won');
    } catch (e) {
      say(`lost ${(e as { code?: number }).code ?? (e as Error).message}`);
    }
  } else if (cmd === 'release') {
    release?.();
    release = undefined;
    say('released');
  }
});
say('ready');
