/**
 * What a host holds when kubetls deployed it, for fake hosts in tests that judge deployed copies without a lab: the
 * owner and mode kubetls gives each remote path (config/layout.ts), so that a fake host reports them as a real one would.
 */
import type { FileMode } from '../../config/files.ts';
import type { Host, Inventory } from '../../lib/inventory.ts';
import { kubeconfigsFor, pkiFilesFor } from '../../lib/rollout/desired.ts';

export function deployedMode(inv: Inventory, host: Host, remote: string): FileMode {
  const file = pkiFilesFor(inv, host).find(([, r]) => r === remote)?.[3];
  const kc = kubeconfigsFor(inv, host).find((k) => k.path.replace('{remote}', inv.pki.remoteDir) === remote)?.mode;
  return file ?? kc ?? { owner: 'root', group: 'root', mode: 0o600 };
}
