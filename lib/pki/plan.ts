/**
 * The plan (the recipe's steps 1–8 and 12, decided before anything is done): for every CA, leaf certificate, the token
 * and the service-account pair, create, keep or reissue, and why. Looking first is what makes a rerun write nothing.
 *
 *   plan = planPki(inv)                         // reads pki.dir, writes nothing
 *   result = await applyPki(inv, plan, { dryRun })   // lib/pki/apply.ts
 *   summary(inv, plan)                          // the table master.ts prints
 */
import { createPublicKey } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { caSpecs, leafSpecs, type CaName, type LeafSpec } from '../../config/certs.ts';
import { opensslConfig } from '../../config/openssl.ts';
import type { Inventory } from '../inventory.ts';
import { shown } from '../log.ts';
import { checkCa, checkLeaf, type Check } from './check.ts';
import { PkiError, readCert, readKey, readPublicKey } from './read.ts';
import { readToken } from './token.ts';

export type Action = 'create' | 'keep' | 'reissue';
export interface PlanItem {
  kind: 'ca' | 'server' | 'minion' | 'leaf' | 'token' | 'sa';
  name: string; // ca, server, kubeminion1, tokens, sa
  files: string[]; // base names in pki.dir, in the order they are renamed into place
  action: Action;
  reason: string;
  spec?: LeafSpec;
}
export interface Plan {
  items: PlanItem[];
  ca: Check; // the cluster CA
  cas: Partial<Record<CaName, Check>>; // every CA of the profile, the cluster CA included
  orphans: string[]; // <name>.crt files of minions no longer in the inventory: reported, never deleted
  config: { file: string; text: string; changed: boolean };
}

export function planPki(inv: Inventory, now = new Date()): Plan {
  const dir = inv.pki.dir;
  const cas: Partial<Record<CaName, Check>> = {};
  const items: PlanItem[] = [];
  for (const c of caSpecs(inv)) {
    const check = cas[c.name] = checkCa(inv, now, c.name);
    const isNew = check.status === 'missing';
    items.push({ kind: 'ca', name: c.name, files: [`${c.name}.key`, `${c.name}.crt`], action: isNew ? 'create' : 'keep', reason: isNew ? 'no CA yet' : check.reasons.join('; ') });
  }
  const ca = cas.ca!;
  for (const spec of leafSpecs(inv)) {
    const files = [`${spec.name}.key`, `${spec.name}.csr`, `${spec.name}.crt`];
    const kind = spec.kind;
    if (cas[spec.ca]!.status === 'missing') {
      const exists = existsSync(path.join(dir, `${spec.name}.crt`));
      items.push({ kind, name: spec.name, files, spec, action: exists ? 'reissue' : 'create', reason: exists ? 'new CA' : '' });
      continue;
    }
    const c = checkLeaf(inv, spec, ca.info, now);
    const action: Action = c.status === 'ok' ? 'keep' : c.status === 'missing' ? 'create' : 'reissue';
    items.push({ kind, name: spec.name, files, spec, action, reason: action === 'reissue' ? c.reasons.join('; ') : '' });
  }
  // a tokens.csv that is there but unreadable throws (readTokenFile): it is never replaced by a plan
  items.push({ kind: 'token', name: 'tokens', files: ['tokens.csv'], action: readToken(inv) ? 'keep' : 'create', reason: '' });
  if (inv.profile === 'modern') {
    const sa = saState(inv);
    items.push({ kind: 'sa', name: 'sa', files: ['sa.key', 'sa.pub'], action: sa === 'ok' ? 'keep' : sa === 'missing' ? 'create' : 'reissue',
      reason: sa === 'ok' || sa === 'missing' ? '' : sa });
  }
  // By construction, not only by validation: no two parts of a plan may write one file (a minion named `ca` would
  // replace the CA, `sa` the service-account key). Every item's files and their `.new` names are checked against each
  // other and against the files kubetls keeps beside them.
  const rotation = [...caSpecs(inv).map((c) => c.name as string), 'sa'].flatMap((n) => ['next', 'prev'].flatMap((side) => [`${n}.${side}.key`, `${n}.${side}.${n === 'sa' ? 'pub' : 'crt'}`]));
  const owners = new Map<string, string>(['openssl.cnf', ...caSpecs(inv).map((c) => `${c.name}.srl`), 'admin.kubeconfig', '.renew-pending.json', '.last-renew', '.kubetls.lock', '.rotate-ca.json', ...rotation,
    ...caSpecs(inv).flatMap((c) => [`${c.name}.csr`, `${c.name}.root.crt`])].map((f) => [f, 'kubetls']));
  for (const item of items) {
    for (const f of item.files.flatMap((x) => [x, `${x}.new`])) {
      const first = owners.get(f.toLowerCase());
      if (first) throw new PkiError(`${item.kind} ${item.name} would write ${f}, which belongs to ${first}: refusing a plan whose files collide`);
      owners.set(f.toLowerCase(), `${item.kind} ${item.name}`);
    }
  }
  // kubetls's own files beside a CA (the operator's root, a rotation's next and previous CA) are no host's
  const known = new Set([...caSpecs(inv).flatMap((c) => [c.name, `${c.name}.root`, `${c.name}.next`, `${c.name}.prev`]), ...leafSpecs(inv).map((l) => l.name)]);
  const orphans = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.crt') && !known.has(f.slice(0, -4))).sort() : [];
  const configFile = path.join(dir, 'openssl.cnf');
  const text = opensslConfig(inv);
  const changed = !existsSync(configFile) || readFileSync(configFile, 'utf8') !== text;
  return { items, ca, cas, orphans, config: { file: configFile, text, changed } };
}

function saState(inv: Inventory): 'ok' | 'missing' | string {
  const key = path.join(inv.pki.dir, 'sa.key');
  const pub = path.join(inv.pki.dir, 'sa.pub');
  if (!existsSync(key) && !existsSync(pub)) return 'missing';
  if (!existsSync(key) || !existsSync(pub)) return 'sa.key and sa.pub incomplete';
  const derived = createPublicKey(readKey(key)).export({ type: 'spki', format: 'pem' }); // unreadable: a PkiError naming the file
  return derived === readPublicKey(pub).export({ type: 'spki', format: 'pem' }) ? 'ok' : 'sa.pub does not match sa.key';
}

// ---- the summary table -----------------------------------------------------------------------------------------------

export interface SummaryRow { file: string; subject: string; sans: string; notAfter: string; action: string }

/** One row per item of the plan, read from disk after applyPki (so what is shown is what is there). */
export function summary(inv: Inventory, plan: Plan, dryRun = false): SummaryRow[] {
  const done = { create: dryRun ? 'would create' : 'created', reissue: dryRun ? 'would reissue' : 'reissued', keep: 'kept' };
  return plan.items.map((item) => {
    const main = item.kind === 'token' ? 'tokens.csv' : item.kind === 'sa' ? 'sa.pub' : `${item.name}.crt`;
    const info = main.endsWith('.crt') && !(dryRun && item.action !== 'keep') ? readCert(path.join(inv.pki.dir, main)) : undefined;
    const dn = info ? `${info.subject.o ? `O=${info.subject.o}, ` : ''}CN=${info.subject.cn}` : '-';
    return {
      file: shown(path.join(inv.pki.dir, main)),
      subject: dn,
      sans: info?.sans.join(',') || '-',
      notAfter: info ? info.notAfter.toISOString().slice(0, 10) : '-',
      action: `${done[item.action]}${item.reason && item.action !== 'create' ? `: ${item.reason}` : ''}`,
    };
  });
}
