/**
 * The extension sections of the openssl config file kubetls generates (pki/openssl.cnf).
 *
 * SEED.md steps 4, 5 and 12 sign with a copy of the system openssl.cnf plus a `[SAN]` section, and the minion certs
 * with no extensions at all (X.509 v1). Go TLS clients (kubectl, kubelet, client-go) want v3 certificates whose
 * keyUsage / extendedKeyUsage match their job, so every section here states them. The `DNS.n` / `IP.n` lines of the
 * server certificate are generated from cluster.yaml by lib/openssl.ts (see `opensslConfig`).
 *
 * Reference: RFC 5280 §4.2.1.3 (keyUsage), §4.2.1.9 (basicConstraints), §4.2.1.12 (extendedKeyUsage);
 * https://kubernetes.io/docs/setup/best-practices/certificates/ (what each Kubernetes certificate must carry).
 */
/** A plain object, not `as const`: mutation testing (StrykerJS) skips `as const` literals, so these strings would go unchecked. */
export const sections: Record<'v3_ca' | 'SAN' | 'server' | 'client', string[]> = {
  /** The CA (step 2): may sign certificates and CRLs, and nothing else. */
  v3_ca: [
    'basicConstraints = critical, CA:TRUE',
    'keyUsage = critical, keyCertSign, cRLSign',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid:always',
  ],
  /**
   * What the server's CSR asks for (step 4, `-reqexts SAN`): only the names, as in the recipe. The CSR cannot carry
   * authorityKeyIdentifier (there is no issuer yet); the `server` section below is what the CA actually signs with.
   */
  SAN: [],
  /** The apiserver's serving certificate (step 5, `-extensions server`). subjectAltName is appended from cluster.yaml. */
  server: [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = serverAuth',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid, issuer',
  ],
  /** A minion's client certificate (step 12): what the kubelet and kube-proxy present to the apiserver. */
  client: [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = clientAuth',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid, issuer',
  ],
};

export type Section = keyof typeof sections;

/** The name of the section that holds the server's DNS.n / IP.n lines. */
export const SERVER_ALT_NAMES = 'server_alt_names';

/** Every certificate is signed with SHA-256 (the recipe relied on the openssl default). */
export const DIGEST = '-sha256';
