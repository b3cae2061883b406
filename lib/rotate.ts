/**
 * CA rotation (`renew.ts --rotate-ca cluster|etcd|front-proxy|service-account|all`): a new CA, and the
 * service-account key pair, put in place without a refused request, in five phases recorded in pki.dir
 * (`.rotate-ca.json`, lib/state.ts) so that a run killed anywhere resumes where it stopped:
 *
 *   1 new     the new CA beside the old one (<ca>.next.*); nothing leaves this machine
 *   2 bundle  every trust point holds old + new (ca.crt, etcd-ca.crt, front-proxy-ca.crt, sa.pub, every kubeconfig's
 *             certificate-authority-data, admin.kubeconfig); each reader restarted once, the control plane one host
 *             at a time (lib/rollout/roll.ts rollControl), then the minions. A host that cannot be reached blocks phase 3.
 *   3 swap    the new CA becomes <ca>.crt (the old kept as <ca>.prev.*) and every leaf of it is reissued;
 *     leaves  then rolled out like a renewal (trust points now new + old). Every client already trusts both, so no
 *             order of servers and clients can refuse a request.
 *   4 verify  every deployed copy is the local one, every leaf chains to the new CA alone (openssl verify), and every
 *             server and identity is checked by clients that trust the new CA only
 *   5 drop    the old CA leaves every trust point (restarts again); its key is deleted here and on the masters
 *             (with the backups of ca.key / sa.key the installs made)
 *
 * It is part of renew.ts rather than a script of its own: it takes the same lock as every renewal (cron cannot renew
 * between two phases), reuses renew's rollout, and it is what an operator reaches for when `status` says a CA is due.
 */
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { type CaName, caSpecs, leafSpecs } from '../config/certs.ts';
import { local as localModes } from '../config/files.ts';
import { opensslConfig } from '../config/openssl.ts';
import { writeAtomic } from './atomic.ts';
import { ExitError } from './cli.ts';
import { faultIs, faultPoint } from './fault.ts';
import { allHosts, etcdHosts, type Inventory } from './inventory.ts';
import { log, shown } from './log.ts';
import { applyPki, writeAdminKubeconfig } from './pki/apply.ts';
import { requestNext } from './pki/intermediate.ts';
import * as openssl from './pki/openssl.ts';
import { planPki } from './pki/plan.ts';
import { readKey } from './pki/read.ts';
import { retiringToken } from './pki/token.ts';
import { holdsOnlyKnownCas, publicFile, rootBytes, rootFile, sideFile } from './pki/trust.ts';
import { forHosts, type HostOutcome, type RolloutOptions, summarize } from './remote/hosts.ts';
import type { RenewResult } from './renew.ts';
import { withRollback } from './rollout/converge.ts';
import { pkiFilesFor } from './rollout/desired.ts';
import { rollControl } from './rollout/roll.ts';
import { etcdSteps, masterSteps, minionSteps, pkiToMinion } from './rollout/steps.ts';
import { EXPIRED, pendingFile, PHASE_TEXT, PHASES, readPending, readRotation, ROTATE_NAMES, writeRotation, type Phase, type Rotation, type RotTarget } from './state.ts';
import { apiChecks, deployedChecks, modernChecks, type Result } from './verify.ts';

export interface RotateSelection { what: string; force?: boolean; dropNow?: boolean }

/**
 * How long phase 5 keeps the old service-account public key after phase 3 made every apiserver sign with the new one:
 * the kubelet renews a pod's projected token at 80 % of its life (1 h by default), so after an hour no pod holds a
 * token of the old key any more. A CA needs no such wait: a pod's kube-root-ca.crt is the bundle from phase 2 on.
 */
export const SA_GRACE_MS = 60 * 60_000;

/** The private key of a target in pki.dir. */
const keyFile = (t: RotTarget) => `${t}.key`;
/** A target's identity: a CA's certificate fingerprint, or the SHA-256 of the service-account public key (SPKI DER). */
function identity(inv: Inventory, t: RotTarget, side?: 'next' | 'prev'): string {
  const file = path.join(inv.pki.dir, side ? sideFile(publicFile(t), side) : publicFile(t));
  if (t !== 'sa') return new X509Certificate(readFileSync(file)).fingerprint256;
  return createHash('sha256').update(createPublicKey(readFileSync(file)).export({ type: 'spki', format: 'der' })).digest('hex');
}

/** `renew.ts --rotate-ca NAME`: start a rotation or resume the one recorded, and carry it to the end. */
export async function rotateCa(inv: Inventory, o: RolloutOptions, sel: RotateSelection): Promise<RenewResult> {
  const targets = ROTATE_NAMES[sel.what];
  if (!targets) throw new ExitError(`--rotate-ca expects one of ${Object.keys(ROTATE_NAMES).join(', ')}, found '${sel.what}'`, 2);
  if (inv.profile !== 'modern') {
    throw new ExitError('--rotate-ca needs the modern profile: the legacy profile\'s 1.4 programs sign service-account tokens with server.key and read no trust bundle', 2);
  }
  let rot = readRotation(inv);
  log.phase(`rotate ${sel.what} (${targets.join(', ')})`);
  if (rot && rot.phase !== 'done') {
    if (rot.what !== sel.what) {
      throw new ExitError(`a CA rotation of ${rot.what} is running (${PHASE_TEXT[rot.phase]}): a second one is refused until it ends. Finish it: npx zx scripts/renew.ts --rotate-ca ${rot.what}`, 2);
    }
    log.info(`resuming the rotation of ${rot.what} started ${rot.started}: ${PHASE_TEXT[rot.phase]}`);
  } else {
    // every rotation that finished is remembered (the last one, and the others under `history`): the same one asked
    // again, while its CAs are still the current ones, is nothing to do
    const before = rot?.what === sel.what ? rot : rot?.history?.[sel.what];
    if (before?.finished && !sel.force && targets.every((t) => before.next[t] === identity(inv, t))) {
      log.info(`nothing to do: the rotation of ${sel.what} finished ${before.finished} and its CAs are the current ones (--force rotates again)`);
      return { code: 0, happened: false, outcomes: [], renewed: [] };
    }
    await preflight(inv, o, targets);
    if (o.dryRun) {
      for (const p of PHASES.slice(0, -1)) log.info(`would run ${PHASE_TEXT[p]}`);
      log.print('dry run: nothing was written, no host was changed');
      return { code: 0, happened: false, outcomes: [], renewed: [] };
    }
    const history = { ...rot?.history, ...(rot?.finished ? { [rot.what]: { finished: rot.finished, next: rot.next } } : {}) };
    rot = { what: sel.what, targets, phase: 'new', started: new Date().toISOString(), old: {}, next: {}, ...(Object.keys(history).length ? { history } : {}) };
    for (const t of targets) rot.old[t] = identity(inv, t);
    writeRotation(inv, rot);
    faultPoint('rotate-new');
  }
  if (o.dryRun) {
    for (const p of PHASES.slice(PHASES.indexOf(rot.phase), -1)) log.info(`would run ${PHASE_TEXT[p]}`);
    return { code: 0, happened: false, outcomes: [], renewed: [] };
  }
  const outcomes: HostOutcome[] = [];
  const advance = (phase: Phase) => {
    rot!.phase = phase;
    if (phase === 'done') rot!.finished = new Date().toISOString();
    writeRotation(inv, rot!);
    faultPoint(`rotate-${phase}`);
  };
  const stopped = (phase: Phase, why: string): RenewResult => {
    const { text } = summarize(outcomes);
    log.print(text);
    log.error(`${PHASE_TEXT[phase]} is not complete: ${why}. Run again to resume: npx zx scripts/renew.ts --rotate-ca ${rot!.what}`);
    return { code: 1, happened: true, outcomes, renewed: [] };
  };

  // phases 2, 3 and 5 on the hosts: admin.kubeconfig and every host get the phase's files; the hosts that failed,
  // as "H1, H2 do" / "H1 does" for the message, or undefined when every host is done
  const rollOut = async (phase: Phase): Promise<string | undefined> => {
    writeAdminKubeconfig(inv);
    // the comparison the tests make (KUBETLS_FAULT=rotate-skip-bundle): what happens without phase 2
    const res = phase === 'bundle' && faultIs('rotate-skip-bundle') ? [] : await deployAll(inv, o, phase);
    outcomes.push(...res);
    const failed = res.filter((x) => x.failed).map((x) => x.host);
    return failed.length ? `${failed.join(', ')} do${failed.length === 1 ? 'es' : ''}` : undefined;
  };

  while (rot.phase !== 'done') {
    log.phase(PHASE_TEXT[rot.phase]);
    switch (rot.phase) {
      case 'new': {
        const waiting = await makeNext(inv, rot);
        if (waiting.length) {
          writeRotation(inv, rot);
          const csrs = waiting.map((t) => shown(path.join(inv.pki.dir, `${t}.next.csr`)));
          log.warn(`phase 1 waits for your root: sign ${csrs.join(', ')} with the root above ${waiting.length === 1 ? 'it' : 'them'}, import ${waiting.length === 1 ? 'it' : 'each'} with `
            + `${waiting.map((t) => `npx zx scripts/ca.ts import ${t} --cert SIGNED.crt --root ROOT.crt`).join(' and ')}, then run npx zx scripts/renew.ts --rotate-ca ${rot.what} again`);
          return { code: 75, happened: true, outcomes, renewed: [] };
        }
        advance('bundle');
        break;
      }
      case 'bundle': {
        const away = await rollOut('bundle');
        if (away) return stopped('bundle', `${away} not trust the new CA yet, so it signs nothing until every host does`);
        advance('swap');
        break;
      }
      case 'swap':
        swap(inv, rot);
        await applyPki(inv, planPki(inv)); // every leaf of a rotated CA is now "not signed by the current CA": reissued
        advance('leaves');
        break;
      case 'leaves': {
        const away = await rollOut('leaves');
        if (away) return stopped('leaves', `${away} not hold the new certificates yet; the old CA stays trusted everywhere until they do`);
        rot.leavesDone = new Date().toISOString(); // every apiserver signs tokens with the new sa.key from here on
        advance('verify');
        break;
      }
      case 'verify': {
        const bad = (await verifyNewChain(inv, o, rot)).filter((x) => !x.ok);
        if (bad.length) return stopped('verify', bad.map((b) => `${b.check} ${b.target}: ${b.detail}`).join('; '));
        advance('drop');
        break;
      }
      case 'drop': {
        if (rot.targets.includes('sa') && !rot.dropFrom) {
          const until = Date.parse(rot.leavesDone ?? rot.started) + SA_GRACE_MS;
          if (Date.now() < until && !sel.dropNow) {
            log.warn(`phase 5 waits until ${new Date(until).toISOString().slice(0, 16)}Z: by then every pod's service-account token signed by the old sa.key has been renewed (the kubelet renews one at 80 % of its 1 h life). Run the same command again then; --drop-now drops the old key at once (tokens not yet renewed then get 401)`);
            return { code: 75, happened: true, outcomes, renewed: [] };
          }
          rot.dropFrom = new Date().toISOString(); // a run killed from here on does not wait again
          writeRotation(inv, rot);
        }
        const away = await rollOut('drop');
        if (away) return stopped('drop', `${away} not hold the new CA alone yet`);
        const forgot = await forgetOldKeys(inv, o, rot);
        outcomes.push(...forgot);
        if (forgot.some((x) => x.failed)) return stopped('drop', 'the backups of the old keys could not be deleted on every master');
        for (const t of rot.targets) for (const f of [keyFile(t), publicFile(t)]) rmLogged(path.join(inv.pki.dir, sideFile(f, 'prev')));
        advance('done');
        break;
      }
    }
  }
  const { text } = summarize(outcomes);
  log.print(text);
  log.print(`rotation of ${rot.what} finished: every host trusts the new ${rot.targets.join(', ')} only`);
  return { code: 0, happened: true, outcomes, renewed: rot.targets.map(publicFile) };
}

/**
 * Before anything is made: the local PKI must be the one the cluster trusts (a host that holds another CA in one of
 * the files a rotation replaces is refused, naming it), no renewal or token rotation may be half done, and every CA
 * must be there. A host that cannot be reached is reported, and phase 2 will wait for it.
 */
async function preflight(inv: Inventory, o: RolloutOptions, targets: RotTarget[]): Promise<void> {
  const plan = planPki(inv); // an unreadable PKI file throws here, naming it
  for (const c of caSpecs(inv)) {
    if (plan.cas[c.name]?.status === 'missing') throw new ExitError(`no ${c.name}.crt in ${shown(inv.pki.dir)}: run scripts/master.ts first (a rotation replaces a CA, it never makes the first one)`, 2);
    // a rotation keeps a working cluster working: its gates check every server against old + new, and nothing of an
    // expired CA verifies any more
    if (targets.includes(c.name) && plan.cas[c.name]?.status === 'expired') throw new ExitError(`${EXPIRED(c.name)}`, 2);
  }
  if (targets.includes('sa') && !existsSync(path.join(inv.pki.dir, 'sa.key'))) throw new ExitError(`no sa.key in ${shown(inv.pki.dir)}: run scripts/master.ts first`, 2);
  const owed = readPending(inv, o.dryRun);
  if (owed.length) throw new ExitError(`${owed.join(', ')} still owe an earlier renewal (${shown(pendingFile(inv))}): run renew.ts first, then rotate`, 2);
  if (retiringToken(inv) !== undefined) throw new ExitError('a token rotation is still running: run renew.ts to finish it, then rotate', 2);
  for (const f of targets.flatMap((t) => [sideFile(keyFile(t), 'next'), sideFile(publicFile(t), 'next'), `${t}.next.csr`, sideFile(keyFile(t), 'prev'), sideFile(publicFile(t), 'prev')])) {
    if (existsSync(path.join(inv.pki.dir, f))) throw new ExitError(`${shown(path.join(inv.pki.dir, f))} is there but no rotation is recorded: move it away (it is not kubetls's to reuse or delete)`, 2);
  }
  log.info('checking that every host holds the local CAs (a PKI folder the cluster does not trust is refused)');
  const caFiles = new Set(caSpecs(inv).map((c) => `${c.name}.crt`));
  const foreign: string[] = [];
  const outcomes = await forHosts(inv, allHosts(inv), { ...o, report: false, quiet: true }, async (r) => {
    for (const [local, remote] of pkiFilesFor(inv, r.host)) {
      const base = path.basename(local);
      if (!caFiles.has(base)) continue;
      const held = await r.read(remote);
      if (!held) continue; // not installed yet: phase 2 installs it
      if (!holdsOnlyKnownCas(inv, base, held)) foreign.push(`${r.host.name}:${remote}`);
    }
  });
  if (foreign.length) {
    throw new ExitError(`${foreign.join(', ')} hold${foreign.length === 1 ? 's' : ''} a CA that is not in ${shown(inv.pki.dir)}: this PKI folder is not the one the cluster trusts, so rotating it would cut the cluster off. Nothing was changed. Point pki.dir at the cluster's PKI.`, 2);
  }
  const away = outcomes.filter((x) => x.failed).map((x) => `${x.host} (${x.error})`);
  if (away.length) log.warn(`cannot check ${away.join(', ')}: phase 2 will not end until ${away.length === 1 ? 'it is' : 'they are'} reachable`);
}

/**
 * Phase 1: `<ca>.next.key` + `<ca>.next.crt` (a self-signed CA like the first one) and `sa.next.key` + `sa.next.pub`.
 * A CA that is an intermediate under the operator's root (docs/own-root.md) gets `<ca>.next.key` and the request
 * `<ca>.next.csr` instead, and the phase waits until `ca.ts import` brought its certificate: the CAs still waiting are
 * returned (none: the phase is done). The others are made only once nothing waits, so a run that waits writes nothing
 * a second time.
 */
async function makeNext(inv: Inventory, rot: Rotation): Promise<RotTarget[]> {
  const p = (f: string) => path.join(inv.pki.dir, f);
  const cnf = p('openssl.cnf');
  if (!existsSync(cnf)) writeAtomic(cnf, opensslConfig(inv), localModes.public);
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const cnOf = (t: CaName, at: string) => { const cn = caSpecs(inv).find((c) => c.name === t)!.cn; return `${cn.slice(0, 64 - at.length - 1)}@${at}`; };
  const under = rot.targets.filter((t): t is CaName => t !== 'sa' && rootBytes(inv, t) !== undefined);
  const waiting: RotTarget[] = [];
  for (const t of under) {
    // named after the rotation's start, not the clock: a run that waits asks for the same request again
    if (await requestNext(inv, t, cnOf(t, rot.started.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')))) rot.next[t] = identity(inv, t, 'next');
    else waiting.push(t);
  }
  if (waiting.length) return waiting;
  for (const t of rot.targets.filter((x) => !(under as RotTarget[]).includes(x))) {
    const key = p(sideFile(keyFile(t), 'next'));
    const pub = p(sideFile(publicFile(t), 'next'));
    // a killed phase 1 may have left half a pair: nothing has used it yet, so it is made again
    for (const f of [key, pub, `${key}.new`, `${pub}.new`]) rmSync(f, { force: true });
    await openssl.genkey(`${key}.new`, inv.pki.key, t === 'sa' ? inv.pki.bits : inv.pki.caBits);
    if (t === 'sa') await openssl.pubout({ key: `${key}.new`, out: `${pub}.new` });
    else {
      // the old CA's name with the time appended (as k3s names a rotated CA): in a bundle the two are told apart by name
      // (cut to fit: a CN is at most 64 characters, and a master's name may be 63)
      await openssl.selfSignCa({ key: `${key}.new`, subj: openssl.subj(cnOf(t, stamp)), days: inv.pki.caDays, out: `${pub}.new`, config: cnf });
    }
    for (const f of [key, pub]) { log.cmd(['mv', `${f}.new`, f]); renameSync(`${f}.new`, f); }
    rot.next[t] = identity(inv, t, 'next');
  }
  return [];
}

/**
 * Phase 3a, local: the old pair copied to `<ca>.prev.*` (0600 for the key, from the first byte), then the new one
 * renamed over the current names. Each step is skipped when already done, so a run killed between two renames
 * finishes the others.
 */
function swap(inv: Inventory, rot: Rotation): void {
  const p = (f: string) => path.join(inv.pki.dir, f);
  for (const t of rot.targets) {
    const files = [keyFile(t), publicFile(t)];
    const prevPub = p(sideFile(publicFile(t), 'prev'));
    if (!existsSync(prevPub) || !existsSync(p(sideFile(keyFile(t), 'prev')))) {
      if (identity(inv, t) !== rot.old[t]) throw new Error(`${shown(p(publicFile(t)))} is neither the CA this rotation started from nor its copy: restore pki.dir from a backup`);
      for (const f of files) {
        log.cmd(['cp', '-p', p(f), p(sideFile(f, 'prev'))]);
        writeAtomic(p(sideFile(f, 'prev')), readFileSync(p(f)), f.endsWith('.key') ? localModes.secret : localModes.public);
      }
    } else if (identity(inv, t, 'prev') !== rot.old[t]) {
      throw new Error(`${shown(prevPub)} is not the CA this rotation started from: restore pki.dir from a backup`);
    }
    for (const f of files) {
      const next = p(sideFile(f, 'next'));
      if (!existsSync(next)) continue;
      log.cmd(['mv', next, p(f)]);
      renameSync(next, p(f));
      faultPoint('rotate-swap-1'); // the tests: killed between the two renames of a pair
    }
    if (identity(inv, t) !== rot.next[t]) throw new Error(`${shown(p(publicFile(t)))} is not the new CA this rotation made: restore pki.dir from a backup`);
  }
  // the key and the certificate are one pair again (checkCa refuses a mismatch anywhere else)
  for (const t of rot.targets.filter((x): x is CaName => x !== 'sa')) {
    if (!new X509Certificate(readFileSync(p(publicFile(t)))).checkPrivateKey(readKey(p(keyFile(t))))) throw new Error(`${t}.key does not match ${t}.crt after the swap`);
  }
}

/**
 * Phases 2, 3 and 5 on the cluster: what master.ts and minions.ts would install given the phase's bundles
 * (lib/pki/trust.ts deployedBytes), the control plane one host at a time, then the minions. A failed control-plane host
 * keeps the minions as they are.
 */
async function deployAll(inv: Inventory, o: RolloutOptions, phase: Phase): Promise<HostOutcome[]> {
  const control = [...inv.masters, ...etcdHosts(inv)];
  const outcomes = await rollControl(inv, control, o, (r, step, out) => withRollback(inv, r, out, o, async () => {
    if (r.host.role === 'etcd') return etcdSteps(inv, r, step, out, o);
    await masterSteps(inv, r, step, out, o);
  }), (h) => faultPoint(`rotate-${phase}-${h}`));
  if (outcomes.some((x) => x.failed)) {
    log.warn(`not touching ${inv.minions.map((m) => m.name).join(', ')}: a control-plane host is not done`);
    return outcomes;
  }
  outcomes.push(...await forHosts(inv, inv.minions, o, (r, step, out) => withRollback(inv, r, out, o, async () => {
    await pkiToMinion(inv, r, step, out, o);
    await minionSteps(inv, r, step, out, o);
  })));
  return outcomes;
}

/**
 * Phase 4: the local leaves of every rotated CA verify against the new CA alone (the real openssl); every host holds
 * exactly the local files; every server (each apiserver, each etcd member, each kubelet) and every identity is checked
 * by clients that trust the new CA only (lib/pki/trust.ts clientTrust in this phase).
 */
async function verifyNewChain(inv: Inventory, o: RolloutOptions, rot: Rotation): Promise<Result[]> {
  const out: Result[] = [];
  const p = (f: string) => path.join(inv.pki.dir, f);
  for (const spec of leafSpecs(inv).filter((s) => rot.targets.includes(s.ca))) {
    // under the operator's root: the root the only anchor, the new intermediate the only certificate between
    const root = p(rootFile(spec.ca));
    const v = rootBytes(inv, spec.ca) ? await openssl.verify(root, p(`${spec.name}.crt`), undefined, p(`${spec.ca}.crt`)) : await openssl.verify(p(`${spec.ca}.crt`), p(`${spec.name}.crt`));
    out.push({ check: 'openssl verify', target: `${spec.name}.crt`, ok: v.ok, detail: v.ok ? `chains to the new ${spec.ca}` : v.output });
  }
  const outcomes = await forHosts(inv, allHosts(inv), { ...o, report: false }, async (r) => { out.push(...await deployedChecks(inv, r)); });
  for (const x of outcomes.filter((y) => y.failed)) out.push({ check: 'deployed', target: x.host, ok: false, detail: x.error ?? 'failed' });
  for (const m of inv.masters) out.push(...await apiChecks(inv, inv.minions, m));
  out.push(...await modernChecks(inv, inv.minions));
  for (const r of out) if (!r.ok) log.error(`${r.check} ${r.target}: ${r.detail}`);
  log.info(`${out.filter((r) => r.ok).length} of ${out.length} checks passed with the new CA only`);
  return out;
}

/**
 * Phase 5, remote: the masters received the old ca.key / sa.key once, and every install kept the file it replaced
 * as `<file>.bak-<time>` (lib/remote/install.ts). Those backups hold the old keys: deleted, on every master.
 */
async function forgetOldKeys(inv: Inventory, o: RolloutOptions, rot: Rotation): Promise<HostOutcome[]> {
  const names = rot.targets.filter((t) => t === 'ca' || t === 'sa').map((t) => `${keyFile(t)}.bak-*`);
  if (!names.length) return [];
  return forHosts(inv, inv.masters, { ...o, report: false }, async (r, step) => {
    await step('delete old key backups', () => r.run(['find', inv.pki.remoteDir, '-maxdepth', '1', '-type', 'f', '(',
      ...names.flatMap((n, i) => [...(i ? ['-o'] : []), '-name', n]), ')', '-print', '-delete']));
  });
}

function rmLogged(file: string): void {
  if (!existsSync(file)) return;
  log.cmd(['rm', '-f', file]);
  rmSync(file, { force: true });
}

