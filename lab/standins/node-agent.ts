// Shared by the kubelet and kube-proxy stand-ins: load --kubeconfig (exit 1 when missing or invalid), say ready,
// then every few seconds ask the apiserver who we are and log one line per attempt.
// Bounded per attempt (5 s timeout); the loop itself lives as long as the daemon, like the real node agents.
import { makeLog, onSignals, stayUp, type Binary } from './common.ts';
import { loadKubeconfig, whoAmI, type ClientConfig } from './kubeconfig.ts';
import type { ParsedFlags } from './flags.ts';

export function runNodeAgent(binary: Binary, flags: ParsedFlags, version: string, serverOverride?: string): void {
  const log = makeLog(binary);
  const kc = flags.get('kubeconfig');
  if (!kc) log.fatal(`lab: ${binary} needs --kubeconfig to reach the apiserver (none given)`);
  let cfg: ClientConfig;
  try {
    cfg = loadKubeconfig(kc!);
  } catch (e) {
    log.fatal(`failed to load kubeconfig: ${(e as Error).message}`);
  }
  const server = serverOverride ?? cfg!.server;
  log.info(`Started ${binary} (emulating ${version}), apiserver ${server}`);
  let stopped = false;
  onSignals(() => {
    stopped = true;
  });
  log.ready();
  const periodMs = Number(process.env.KUBETLS_LAB_PERIOD_MS ?? 2000);
  const attempt = async () => {
    if (stopped) return;
    try {
      // The insecure http port is never served in the lab (on a real master it listens on 127.0.0.1 of the master,
      // which a minion cannot reach either): fail like a refused connection, without connecting anywhere.
      if (!server.startsWith('https://')) throw new Error(`Post "${server}": dial tcp: connection refused (lab: plain http is not served)`);
      const r = await whoAmI(cfg!, server);
      log.info(`authenticated as ${r.username} groups=[${r.groups.join(',')}]`);
    } catch (e) {
      log.error(`authentication failed: ${(e as Error).message}`);
    }
    setTimeout(attempt, periodMs);
  };
  void attempt();
  stayUp();
}
