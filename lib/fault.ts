/**
 * Fault injection for the tests, and only for them: `KUBETLS_FAULT=<point>` kills this process with SIGKILL the
 * first time the run reaches that point, exactly as a power cut or `kill -9` would (no cleanup, no exit handlers).
 * The points are the step boundaries of a host's rollout and of renew.ts:
 *   marked         the restarts a host will owe are recorded on it, no file replaced yet
 *   wrote-1        the first file on a host was replaced
 *   wrote-all      every file on a host was replaced, nothing restarted
 *   restarted      `systemctl restart` returned, before the health gate
 *   gated          the gate passed, before the owed restart is cleared
 *   renewed        renew.ts reissued the local certificates (the hosts owed them are recorded first)
 *   rolled-N       a rolling restart of the control plane finished its Nth host, before the next one starts
 *   rotate-PHASE   a CA rotation (lib/rotate.ts) recorded that it enters PHASE (new, bundle, swap, leaves, verify, drop, done)
 *   rotate-PHASE-HOST  in phases bundle, leaves and drop: HOST finished, before the next one starts
 *   rotate-swap-1  the first rename of a CA's new pair over the current one, before the second
 *   decided-N      approve.ts approved or denied its Nth CSR, before the next one
 * and three that are not kills: `approve-hold` makes approve.ts wait, after it read the pending CSRs and before it
 * decides any, until the file $KUBETLS_FAULT_RELEASE exists (at most 60 s), so that a test can decide them meanwhile;
 * `disconnect` drops the SSH connection right after the first upload, before it is installed, as an sshd killed
 * mid-transfer or a cut network does; `rotate-skip-bundle` makes a CA rotation skip its phase 2 (trust bundles), the
 * comparison test/rotate.test.ts shows failing requests with. The approver's points are run by test/approve.test.ts.
 * The fault-injection suite (test/faults.test.ts) runs the rollout's and checks that no file is empty or half-written and
 * that the next run converges. Unset (as always outside tests), this is one string comparison.
 */
export function faultPoint(name: string): void {
  if (process.env.KUBETLS_FAULT === name) process.kill(process.pid, 'SIGKILL');
}

/** True when the tests asked for the non-fatal fault `name` (see above). */
export const faultIs = (name: string): boolean => process.env.KUBETLS_FAULT === name;

/** The `approve-hold` fault (see above): wait, bounded, until the test releases this run. */
export async function faultHold(name: string): Promise<void> {
  if (!faultIs(name)) return;
  const { existsSync } = await import('node:fs');
  const file = process.env.KUBETLS_FAULT_RELEASE ?? '';
  for (let i = 0; i < 600 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 100));
}
