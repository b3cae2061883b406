// A lab per test file: `const lab = await useLab(test, { minions: 2, profile: 'modern' })` at the top of the file.
// Brings the lab up (after removing a stale one of the same name), tears it down in test.after.always, and kills its
// hosts if the worker exits without teardown. The name defaults to the test file's name.
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestFn } from 'ava';
import { labDown, labUnavailable, labUp, openLab, pidAlive, type Lab, type LabOptions } from '../../lab/index.ts';

const live = new Set<Lab>();
process.on('exit', () => {
  for (const lab of live) {
    for (const h of lab.hosts) {
      try {
        if (h.pid) process.kill(h.pid, 'SIGKILL');
      } catch { /* gone */ }
    }
  }
});

export function labNameFor(file: string, suffix = ''): string {
  const base = basename(file.startsWith('file:') ? fileURLToPath(file) : file).replace(/\.test\.[cm]?[jt]s$/, '').replace(/\.[^.]+$/, '');
  return `t-${base}${suffix ? `-${suffix}` : ''}`.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40);
}

/**
 * Start a lab for this test file. Call it synchronously at the top of the file (ava wants every hook declared before
 * the first await); it returns at once with a promise of the lab and registers:
 *   test.before        waits for the lab (a lab that cannot start fails the hook, with the reason)
 *   test.after.always  brings it down
 *     const labP = useLab(test, { minions: 2, profile: 'modern' });
 *     test('…', async (t) => { const lab = await labP; … });
 */
export function useLab(test: TestFn<any>, opts: LabOptions = {}): Promise<Lab> {
  let name = opts.name ?? labNameFor(test.meta.file, opts.profile);
  // a lab of that name still owned by a live process is another run's: leave it alone, use our own name
  const owner = openLab(opts.out ?? name)?.state.ownerPid;
  if (owner && owner !== process.pid && pidAlive(owner)) name = `${name.slice(0, 32)}-${process.pid}`;
  let lab: Lab | undefined;
  const promise = (async () => {
    const why = labUnavailable();
    if (why) throw new Error(why);
    await labDown(opts.out ?? name).catch(() => {}); // a stale lab of an earlier run that died
    lab = await labUp({ ...opts, name });
    live.add(lab);
    return lab;
  })();
  promise.catch(() => {}); // reported by the before hook
  test.before(`start lab ${name}`, async () => {
    await promise;
  });
  test.after.always(`tear down lab ${name}`, async () => {
    await promise.catch(() => {});
    if (lab) {
      await lab.down();
      live.delete(lab);
    }
  });
  return promise;
}

/** A small PKI made with the real openssl CLI (EC P-256: fast): ca, server (SANs for the master), one client. */
export interface TestPki { dir: string; ca: string; caKey: string; server: string; serverKey: string; client: string; clientKey: string; sa: string; saPub: string; other: string; otherKey: string }

export async function makeTestPki(dir: string, master: { name: string; address: string }, clientCN: string, clientO?: string): Promise<TestPki> {
  const { execa } = await import('execa');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = (f: string) => `${dir}/${f}`;
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const o = (args: string[]) => execa('openssl', args, { cwd: dir });
  await o(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-subj', '/CN=kubemaster', '-days', '30']);
  writeFileSync(p('server.ext'), `subjectAltName=DNS:kubernetes.default.svc,DNS:${master.name},IP:10.24.0.1,IP:${master.address}\n` +
    'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  writeFileSync(p('client.ext'), 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  const leaf = async (name: string, subj: string, ext: string) => {
    await o(['req', '-new', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', subj]);
    await o(['x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial',
      '-days', '30', '-extfile', p(ext), '-out', p(`${name}.crt`)]);
  };
  await leaf('server', '/CN=kubernetes.default.svc', 'server.ext');
  await leaf('client', `/CN=${clientCN}${clientO ? `/O=${clientO}` : ''}`, 'client.ext');
  await leaf('other', '/CN=other', 'client.ext'); // a second key pair: for "key does not match cert"
  await o(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', p('sa.key')]);
  await o(['pkey', '-in', p('sa.key'), '-pubout', '-out', p('sa.pub')]);
  return {
    dir, ca: p('ca.crt'), caKey: p('ca.key'), server: p('server.crt'), serverKey: p('server.key'), client: p('client.crt'),
    clientKey: p('client.key'), sa: p('sa.key'), saPub: p('sa.pub'), other: p('other.crt'), otherKey: p('other.key'),
  };
}
