/**
 * An operator's root, made the way an operator makes one, with the real openssl: its key in a folder of its own (never
 * pki.dir), and signing kubetls's CA requests as the operator would (`openssl x509 -req … -copy_extensions copyall`,
 * or with extensions of the test's choosing to make a bad certificate on purpose).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { tempDir } from './inventory.ts';

export interface Root { dir: string; crt: string; key: string }

async function openssl(argv: string[]): Promise<void> {
  const r = await execa('openssl', argv, { reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0) throw new Error(`openssl ${argv.join(' ')}: ${r.stderr}`);
}

/** A self-signed root CA in a fresh folder: `-addext` lines as given (default: a CA that may have CAs below it). */
export async function makeRoot(o: { cn?: string; days?: number; ext?: string[]; dir?: string } = {}): Promise<Root> {
  const dir = o.dir ?? tempDir('kubetls-root-');
  const crt = path.join(dir, `${o.cn ?? 'root'}.crt`);
  const key = path.join(dir, `${o.cn ?? 'root'}.key`);
  const ext = o.ext ?? ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', `/CN=${o.cn ?? 'Example Corp Root'}`,
    '-days', String(o.days ?? 3650), ...ext.flatMap((e) => ['-addext', e]), '-out', crt]);
  return { dir, crt, key };
}

/**
 * The operator signs a request with the root: the request's own extensions (what `ca.ts request` asked for), or the
 * lines of `ext` instead. Returns the signed certificate's path, in the root's folder.
 */
export async function signWithRoot(root: Root, csr: string, o: { days?: number; ext?: string[]; out?: string } = {}): Promise<string> {
  const out = o.out ?? path.join(root.dir, `${path.basename(csr, '.csr')}-signed.crt`);
  const argv = ['x509', '-req', '-in', csr, '-CA', root.crt, '-CAkey', root.key, '-set_serial', `0x${Date.now().toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`,
    '-days', String(o.days ?? 1825), '-sha256', '-out', out];
  if (o.ext) {
    const extfile = path.join(root.dir, 'ext.cnf');
    writeFileSync(extfile, `[x]\n${o.ext.join('\n')}\n`);
    argv.push('-extfile', extfile, '-extensions', 'x');
  } else argv.push('-copy_extensions', 'copyall');
  await openssl(argv);
  return out;
}
