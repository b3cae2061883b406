// The modern (1.30) components that talk to the apiserver with their own kubeconfig: kube-controller-manager,
// kube-scheduler, kube-proxy (and the kubelet's registration). Each loads its kubeconfig like client-go, asks the
// apiserver who it is (SelfSubjectReview), then makes one request its role needs (list nodes, list endpointslices),
// and repeats every KUBETLS_LAB_PERIOD_MS (2 s), logging only when the outcome changes.
//
// How a failure shows (decided to match the real binaries, see lib/lab/README.md):
//  - no --kubeconfig and no --master: exit 1 with client-go's "invalid configuration: no configuration has been
//    provided" (the real ones fall back to the in-cluster config, which a host does not have);
//  - controller-manager, scheduler: 401 Unauthorized from the apiserver ⇒ exit 1 (the real ones wait for a healthy
//    apiserver with their credentials, then give up and exit); apiserver unreachable for 8 s ⇒ exit 1 too;
//  - kube-proxy: keeps running on 401 (the real one logs "Failed to retrieve node info" and carries on);
//  - 403 Forbidden on the role's request (any of them): keeps running, `systemctl is-active` says active, and the log
//    says `Failed to watch *v1.EndpointSlice: failed to list *v1.EndpointSlice: endpointslices.discovery.k8s.io is
//    forbidden: User "…" cannot list resource …` every period, as the real informers do. Not ready = that log line.
import { call, GoError, statusMessage, type Response } from './client.ts';
import { makeLog, onSignals, stayUp } from './common.ts';
import { loadKubeconfig, type ClientConfig } from './kubeconfig.ts';
import type { ParsedFlags } from './flags.ts';

type Log = ReturnType<typeof makeLog>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const PERIOD_MS = Number(process.env.KUBETLS_LAB_PERIOD_MS ?? 2000);

/** An authenticated request to the apiserver with a kubeconfig's credentials (server verified against its CA). */
export function apiCall(cfg: ClientConfig, server: string, method: string, path: string, body?: unknown): Promise<Response> {
  // The insecure http port is never served in the lab (it would be 127.0.0.1:8080, shared by every lab and the
  // machine): fail like a refused connection without connecting anywhere.
  if (!server.startsWith('https://')) {
    const u = new URL(server);
    const reason = `dial tcp ${u.hostname}:${u.port || 80}: connect: connection refused (lab: plain http is not served)`;
    return Promise.reject(new GoError(`${method[0]}${method.slice(1).toLowerCase()} "${server}${path}": ${reason}`, 'dial', reason));
  }
  return call(`${server.replace(/\/$/, '')}${path}`, {
    method, tls: { ca: cfg.ca, cert: cfg.cert, key: cfg.key }, token: cfg.token, timeoutMs: 5000,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/**
 * client-go's BuildConfigFromFlags(--master, --kubeconfig): the kubeconfig, its server overridden by --master. No
 * kubeconfig and no master: exit 1 as the real binaries do on a host (no in-cluster service account).
 */
export function clientConfig(log: Log, flags: ParsedFlags): { cfg: ClientConfig; server: string } {
  const kc = flags.get('kubeconfig');
  const master = flags.get('master');
  if (!kc && !master) {
    log.warn('Neither --kubeconfig nor --master was specified.  Using the inClusterConfig.  This might not work.');
    log.warn('error creating inClusterConfig, falling back to default config: unable to load in-cluster configuration, ' +
      'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined');
    console.log('Error: invalid configuration: no configuration has been provided, try setting KUBERNETES_MASTER environment variable');
    process.exit(1);
  }
  let cfg: ClientConfig = { file: '', server: master! };
  if (kc) {
    try {
      cfg = loadKubeconfig(kc);
    } catch (e) {
      log.fatal(`failed to load kubeconfig: ${(e as Error).message}`);
    }
  }
  return { cfg, server: master || cfg.server };
}

/** Other kubeconfigs the binary takes (--authentication-kubeconfig, --authorization-kubeconfig): must load. */
export function loadExtraKubeconfigs(log: Log, flags: ParsedFlags): void {
  for (const [flag, what] of [['authentication-kubeconfig', 'authentication'], ['authorization-kubeconfig', 'authorization']] as const) {
    const f = flags.get(flag);
    if (!f) continue;
    try {
      loadKubeconfig(f);
    } catch (e) {
      console.log(`Error: failed to get delegated ${what} kubeconfig: ${(e as Error).message}`);
      process.exit(1);
    }
  }
}

export interface RoleCheck {
  /** e.g. /apis/discovery.k8s.io/v1/endpointslices */
  path: string;
  /** client-go's type name in the informer error: *v1.EndpointSlice */
  type: string;
}

function failureText(e: unknown, r?: Response): string {
  if (r) return r.status === 401 ? 'Unauthorized' : statusMessage(r);
  return e instanceof GoError ? e.message : (e as Error).message;
}

/**
 * Run a component: who am I, then the role's request, repeated. `exitOn401` for the control-plane components.
 * Prints the ready line after the first round (or exits), so `systemctl start` returns once the outcome is logged.
 */
export async function runComponent(binary: string, log: Log, version: string, cfg: ClientConfig, server: string,
  check: RoleCheck, opts: { exitOn401: boolean; waitMs?: number; before?: () => Promise<void> }): Promise<void> {
  log.info(`Started ${binary} (emulating ${version}), apiserver ${server}`);
  let stopped = false;
  onSignals(() => {
    stopped = true;
  });
  // wait (bounded) for the apiserver to answer at all, as the real ones wait for /healthz
  const deadline = Date.now() + (opts.waitMs ?? 8000);
  for (;;) {
    try {
      const h = await apiCall(cfg, server, 'GET', '/healthz');
      if (h.status === 401 && opts.exitOn401) {
        log.error(`"Failed to get apiserver /healthz status" err="Unauthorized"`);
        log.fatal(`unable to start ${binary}: failed to wait for apiserver being healthy: Unauthorized`);
      }
      break;
    } catch (e) {
      // plain http is never served in the lab: nothing to wait for
      const never = /plain http is not served/.test((e as Error).message);
      if (!opts.exitOn401 || never || Date.now() > deadline) {
        if (opts.exitOn401) {
          log.error(`"Failed to get apiserver /healthz status" err=${JSON.stringify(failureText(e))}`);
          log.fatal(`unable to start ${binary}: failed to wait for apiserver being healthy: timed out waiting for the condition`);
        }
        break;
      }
      await sleep(500);
    }
  }
  await opts.before?.();
  let last = '';
  const round = async (first: boolean) => {
    const out: ['info' | 'error', string][] = [];
    try {
      const who = await apiCall(cfg, server, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews',
        { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
      if (who.status === 401 && opts.exitOn401 && first) log.fatal(`unable to start ${binary}: Unauthorized`);
      if (who.status !== 201 && who.status !== 200) throw Object.assign(new Error('review'), { response: who });
      const info = who.json().status.userInfo;
      out.push(['info', `authenticated as ${info.username} groups=[${(info.groups ?? []).join(',')}]`]);
      const listed = await apiCall(cfg, server, 'GET', check.path);
      out.push(listed.status === 200
        ? ['info', `listed ${listed.json().items?.length ?? 0} ${check.path.split('/').pop()}`]
        : ['error', `k8s.io/client-go/informers/factory.go:160: Failed to watch ${check.type}: failed to list ${check.type}: ${failureText(undefined, listed)}`]);
    } catch (e) {
      out.push(['error', `authentication failed: ${failureText(e, (e as { response?: Response }).response)}`]);
    }
    // an error repeats every period (as the informers retry); a success is logged once per change
    const key = out.map((x) => x.join(' ')).join('\n');
    if (key !== last || out.some(([level]) => level === 'error')) for (const [level, msg] of out) log[level](msg);
    last = key;
  };
  await round(true);
  log.ready();
  const again = async () => {
    if (stopped) return;
    await round(false);
    setTimeout(again, PERIOD_MS);
  };
  setTimeout(again, PERIOD_MS);
  stayUp();
}

/**
 * How the controller-manager and the scheduler stand-ins run once their files loaded: legacy (1.4) stays up (it
 * reached the apiserver on the insecure port, nothing to authenticate); modern authenticates with its own
 * --kubeconfig and keeps calling `watch` (runComponent: no kubeconfig or 401 ⇒ exit 1, 403 ⇒ runs and logs it).
 */
export async function runControlPlane(binary: string, log: Log, version: string, legacy: boolean, flags: ParsedFlags, watch: RoleCheck): Promise<void> {
  if (legacy) {
    log.info(`Started ${binary} (emulating ${version})`);
    onSignals(() => {});
    log.ready();
    stayUp();
    return;
  }
  const { cfg, server } = clientConfig(log, flags);
  loadExtraKubeconfigs(log, flags);
  await runComponent(binary, log, version, cfg, server, watch, { exitOn401: true });
}
