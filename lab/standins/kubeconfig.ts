// A kubeconfig as kubectl writes it (docs/recipe.md step 14), loaded like client-go: current-context → cluster + user,
// embedded *-data or file paths (relative to the kubeconfig's folder), and a TLS client that asks who we are.
import { request } from 'node:https';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { readOrThrow } from './common.ts';
import { loadKeyPairPem, parseCerts } from './tlsfiles.ts';

export interface ClientConfig {
  file: string;
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
}

type Named<T> = { name: string } & T;

export function loadKubeconfig(file: string): ClientConfig {
  const text = readOrThrow(file).toString('utf8');
  let doc: any;
  try {
    doc = parse(text);
  } catch (e) {
    throw new Error(`invalid kubeconfig ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  const bad = (why: string): never => {
    throw new Error(`invalid kubeconfig ${file}: ${why}`);
  };
  if (!doc || typeof doc !== 'object') bad('not a YAML mapping');
  const ctxName: string | undefined = doc['current-context'];
  if (!ctxName) bad('current-context is not set');
  const ctx = (doc.contexts as Named<{ context: any }>[] | undefined)?.find((c) => c.name === ctxName)?.context;
  if (!ctx) bad(`context "${ctxName}" does not exist`);
  const cluster = (doc.clusters as Named<{ cluster: any }>[] | undefined)?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster) bad(`cluster "${ctx.cluster}" of context "${ctxName}" does not exist`);
  const user = (doc.users as Named<{ user: any }>[] | undefined)?.find((u) => u.name === ctx.user)?.user ?? {};
  const base = dirname(resolve(file));
  const data = (obj: any, key: string): string | undefined => {
    if (obj?.[`${key}-data`]) return Buffer.from(String(obj[`${key}-data`]), 'base64').toString('utf8');
    if (obj?.[key]) return readOrThrow(resolve(base, String(obj[key]))).toString('utf8');
    return undefined;
  };
  const server: string | undefined = cluster.server;
  if (!server) bad('no server found for cluster');
  if (!/^https?:\/\//.test(server!)) bad(`server "${server}" is not a URL`);
  const cfg: ClientConfig = { file, server: server! };
  try {
    cfg.ca = data(cluster, 'certificate-authority');
    if (cfg.ca) parseCerts(cfg.ca, 'certificate-authority');
    cfg.cert = data(user, 'client-certificate');
    cfg.key = data(user, 'client-key');
    if (!!cfg.cert !== !!cfg.key) bad('client-certificate and client-key must be given together');
    if (cfg.cert && cfg.key) loadKeyPairPem(cfg.cert, cfg.key, 'client-certificate', 'client-key');
  } catch (e) {
    bad((e as Error).message);
  }
  if (user.token) cfg.token = String(user.token);
  else if (user.tokenFile) cfg.token = readOrThrow(resolve(base, String(user.tokenFile))).toString('utf8').trim();
  return cfg;
}

export interface ReviewResult { username: string; groups: string[] }

/** POST a SelfSubjectReview (what `kubectl auth whoami` does), verifying the server against the kubeconfig CA and
 * its hostname, presenting the client certificate and the bearer token. */
export function whoAmI(cfg: ClientConfig, server = cfg.server, timeoutMs = 5000): Promise<ReviewResult> {
  const url = new URL('/apis/authentication.k8s.io/v1/selfsubjectreviews', server);
  const body = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
  return new Promise((resolvePromise, reject) => {
    const req = request(url, {
      method: 'POST',
      ...(cfg.ca ? { ca: cfg.ca } : {}),
      ...(cfg.cert ? { cert: cfg.cert, key: cfg.key } : {}),
      headers: {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(body),
        ...(cfg.token ? { Authorization: `Bearer ${cfg.token}` } : {}),
      },
      timeout: timeoutMs,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        if (res.statusCode !== 201 && res.statusCode !== 200) {
          let msg = text.trim();
          try {
            msg = JSON.parse(text).message ?? msg;
          } catch { /* keep text */ }
          return reject(new Error(`${url.href}: ${res.statusCode} ${msg}`));
        }
        try {
          const info = JSON.parse(text).status.userInfo;
          resolvePromise({ username: info.username, groups: info.groups ?? [] });
        } catch (e) {
          reject(new Error(`${url.href}: bad response: ${(e as Error).message}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${url.href}: timeout after ${timeoutMs} ms`)));
    req.on('error', (e) => reject(new Error(`Post "${url.href}": ${e.message}`)));
    req.end(body);
  });
}
