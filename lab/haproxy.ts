// The load balancer of an HA lab: Debian's real haproxy, on a host of its own (kubelb), in front of every master's
// 6443. kubetls does not manage it (docs/ha.md): the lab writes its configuration once, at `lab up`.
//
// TCP mode: the client's TLS goes through to a master untouched, so the client verifies the apiserver's certificate
// (which names the endpoint) and the apiserver sees the client's certificate. Health checks ask each master's /readyz
// over TLS every 2 s; three failures take it out, two successes bring it back (kubeadm's haproxy example: `check fall 3
// rise 2`, `timeout check 10s`). The apiserver answers /readyz with an error from the moment it is told to stop while
// it keeps serving for --shutdown-delay-duration (kubetls sets it with more than one master; the lab's drain_seconds
// is 8, more than inter × fall), so a master being restarted leaves the rotation before it stops accepting
// connections. A connection that fails anyway is tried on another master (retries + redispatch).
//
// A slow answer is not a failed one. haproxy gives a check's connect and TLS handshake min(timeout connect, inter) and
// the answer `timeout check` more. With `inter 1s fall 2` and no `timeout check`, all three apiservers paused 4 s at
// once (as two busy cores can hold them) were all taken out ("Layer6 timeout, check duration: 1000ms", "backend
// masters has no server available!") and 11 of 42 requests failed with `Client network socket disconnected before
// secure TLS connection was established`; with these values none were (test/ha.test.ts).
//
// The checks do not verify the master's certificate (`verify none`): the lab's haproxy starts before kubetls made the
// CA, and a check only decides where connections go; the clients verify the apiserver themselves, end to end. A
// production balancer can verify (ca-file = the cluster CA, verifyhost = the master's name).

export interface Backend { name: string; address: string }

/** Seconds between checks, and how many failed (fall) or passed (rise) checks change a master's state. */
export const CHECK = { interSeconds: 2, fall: 3, rise: 2 };

export function haproxyConfig(bind: { address: string; port: number }, masters: Backend[], apiPort: number): string {
  return `# written by kubetls lab (lab/haproxy.ts): the apiserver endpoint in front of ${masters.length} masters
global
    log /dev/log local0 info
    chroot /var/lib/haproxy
    user haproxy
    group haproxy
    maxconn 4096
    # the tests read each master's state here (show servers state)
    stats socket /run/haproxy/admin.sock mode 660 level admin

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 3s
    # watches live long: the apiserver ends them itself
    timeout client 1h
    timeout server 1h
    retries 3
    option redispatch

frontend kube-apiserver
    bind ${bind.address}:${bind.port}
    default_backend masters

backend masters
    balance roundrobin
    option httpchk GET /readyz
    timeout check 10s
    http-check expect status 200
    default-server check check-ssl verify none inter ${CHECK.interSeconds}s fall ${CHECK.fall} rise ${CHECK.rise}
${masters.map((m) => `    server ${m.name} ${m.address}:${apiPort}`).join('\n')}
`;
}
