#!/usr/bin/env bash
# The root file system every systemd lab host boots (systemd-nspawn -b): a minimal Debian 12 made by debootstrap once,
# cached outside the checkout under a key of its package list and this script:
#   $KUBETLS_ROOTFS_CACHE (default /var/cache/kubetls/rootfs)/<key>/
# Each host gets its own overlay on top (lab/nspawn.ts); this tree is never written by a host.
# The mirror is the one this machine's apt uses (its sources), so the tree matches what `apt-get install` gets here.
# Made under a temp name and renamed when complete: a killed debootstrap never leaves a tree that looks finished.
# Usage: rootfs.sh [--print]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
# systemd as PID 1 and what kubetls drives on a host (ssh, sudo, the remote scripts' stat/sha256sum/mv), Debian's etcd
# (its unit, its user, its /etc/default/etcd), and what the real kubelet and kube-proxy need around them: a container
# runtime (containerd + runc), iptables/nftables and conntrack for the proxy's rules, mount/util tools; and haproxy,
# the load balancer in front of the masters of an HA lab (its own host; the lab writes its configuration).
packages=(systemd systemd-sysv dbus openssh-server sudo iproute2 procps openssl curl ca-certificates
  etcd-server etcd-client containerd runc iptables nftables conntrack kmod util-linux mount ethtool socat haproxy)
cache=${KUBETLS_ROOTFS_CACHE:-/var/cache/kubetls/rootfs}
# the key: the suite, the packages and this script without its comment lines (a comment edit rebuilds nothing)
key=$( { printf '%s\n' "$suite" "${packages[@]}"; grep -v '^[[:space:]]*#' "$here/rootfs.sh"; } | sha256sum | cut -c1-16)
dir="$cache/debian-$suite-$key"
if [ "${1:-}" = "--print" ]; then echo "$dir"; exit 0; fi
if [ -f "$dir/.kubetls-rootfs" ]; then echo "$dir"; exit 0; fi

mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "rootfs.sh: no Debian mirror in this machine's apt sources" >&2; exit 1; }

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
include=$(IFS=,; echo "${packages[*]}")
echo "debootstrap --variant=minbase --include=$include $suite $tmp" >&2
debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
  tail -5 "$cache/debootstrap.log" >&2; exit 1; }
# Units a lab host does not need, or that cannot work in a container sharing the machine's network: off in the tree,
# so every host boots the same quiet system. (Debian's etcd unit is enabled by the package: kubetls starts it; haproxy's
# is enabled by the lab on the balancer host only.)
chroot "$tmp" systemctl disable etcd.service containerd.service haproxy.service >/dev/null 2>&1 || true
chroot "$tmp" systemctl mask systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
  getty@tty1.service console-getty.service systemd-networkd-wait-online.service >/dev/null 2>&1 || true
# ssh.service generates host keys on first boot when none exist; each host brings its own (lab/nspawn.ts)
rm -f "$tmp"/etc/ssh/ssh_host_*
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
echo "made in $(( $(date +%s) - start )) s from ${packages[*]}" > "$tmp/.kubetls-rootfs"
chmod 0755 "$tmp"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
