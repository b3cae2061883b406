// The apiserver stand-in's etcd client: etcd's v3 JSON gateway (POST /v3/kv/range, /v3/kv/put) over HTTPS with the
// --etcd-certfile/--etcd-keyfile client certificate, verifying each member against --etcd-cafile for the address in
// --etcd-servers. The real apiserver speaks gRPC to the same port with the same files, so a credential etcd refuses, or
// a member certificate that does not verify, fails here as it fails there. Values are JSON (the real one stores
// protobuf); keys are the real ones (/registry/minions/NAME).
import { Agent } from 'node:https';
import { GoError, call, type TlsMaterial } from './client.ts';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

/** The end of a prefix range: the prefix with its last byte + 1 (etcd's range_end). */
function prefixEnd(prefix: string): string {
  const buf = Buffer.from(prefix, 'utf8');
  buf[buf.length - 1]! += 1;
  return buf.toString('base64');
}

export class EtcdError extends Error {}

export class Etcd {
  private agent = new Agent({ keepAlive: true, maxSockets: 4 });
  private preferred = 0;

  constructor(public endpoints: string[], private tls: TlsMaterial, private timeoutMs = 2000) {}

  /** POST to the first member that answers; the failures of every member when none does. */
  private async post(path: string, body: unknown): Promise<any> {
    const failures: { endpoint: string; error: GoError | Error }[] = [];
    for (let k = 0; k < this.endpoints.length; k++) {
      const i = (this.preferred + k) % this.endpoints.length;
      const endpoint = this.endpoints[i]!;
      try {
        // 127.0.0.1 is every lab's and the machine's (where Debian's own etcd may listen, without TLS): never
        // contacted, refused like a port nobody listens on; a lab member listens on its own address
        const host = new URL(endpoint).hostname;
        if (['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host)) {
          const reason = `dial tcp ${new URL(endpoint).host}: connect: connection refused (lab: ${host} is shared by every lab on this machine; etcd listens on its member's own address)`;
          throw new GoError(`Post "${endpoint}${path}": ${reason}`, 'dial', reason);
        }
        const r = await call(`${endpoint.replace(/\/$/, '')}${path}`, {
          method: 'POST', body: JSON.stringify(body), tls: this.tls, agent: endpoint.startsWith('https:') ? this.agent : undefined,
          timeoutMs: this.timeoutMs,
        });
        if (r.status !== 200) {
          let msg = r.body.trim();
          try {
            msg = r.json().error ?? r.json().message ?? msg;
          } catch { /* an HTTP server that is not etcd's gateway (plain http to a TLS port answers 400) */ }
          throw new Error(`etcdserver: ${msg || `HTTP ${r.status}`}`);
        }
        this.preferred = i;
        return r.json();
      } catch (e) {
        failures.push({ endpoint, error: e as Error });
      }
    }
    throw new EtcdFailure(failures);
  }

  /** One read that proves the credentials: a count of the /registry/ keys. */
  async check(): Promise<number> {
    const r = await this.post('/v3/kv/range', { key: b64('/registry/'), range_end: prefixEnd('/registry/'), count_only: true });
    return Number(r.count ?? 0);
  }

  async put(key: string, value: string): Promise<void> {
    await this.post('/v3/kv/put', { key: b64(key), value: b64(value) });
  }

  async get(key: string): Promise<string | undefined> {
    const r = await this.post('/v3/kv/range', { key: b64(key) });
    return r.kvs?.[0] ? unb64(r.kvs[0].value) : undefined;
  }

  async list(prefix: string): Promise<{ key: string; value: string }[]> {
    const r = await this.post('/v3/kv/range', { key: b64(prefix), range_end: prefixEnd(prefix) });
    return (r.kvs ?? []).map((kv: { key: string; value: string }) => ({ key: unb64(kv.key), value: unb64(kv.value) }));
  }

  async delete(key: string): Promise<number> {
    const r = await this.post('/v3/kv/deleterange', { key: b64(key) });
    return Number(r.deleted ?? 0);
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Every member failed; `lines()` are grpc's per-connection warnings of the real apiserver. */
export class EtcdFailure extends EtcdError {
  constructor(public failures: { endpoint: string; error: GoError | Error }[]) {
    super(failures.map((f) => `${f.endpoint}: ${f.error instanceof GoError ? f.error.reason : f.error.message}`).join('; '));
  }

  /** `grpc: addrConn.createTransport failed to connect to {Addr: "…", ServerName: "…", }. Err: connection error: desc = "…"` */
  lines(): string[] {
    return this.failures.map(({ endpoint, error }, i) => {
      const u = new URL(endpoint);
      const desc = !(error instanceof GoError) ? error.message
        : error.kind === 'handshake' ? `transport: authentication handshake failed: ${error.reason}`
        : error.kind === 'remote' ? `error reading server preface: ${error.reason}`
        : `transport: Error while dialing: ${error.reason}`;
      return `[core] [Channel #1 SubChannel #${i + 2}] grpc: addrConn.createTransport failed to connect to {Addr: "${u.host}", ` +
        `ServerName: "${u.hostname}", }. Err: connection error: desc = ${JSON.stringify(desc)}`;
    });
  }
}
