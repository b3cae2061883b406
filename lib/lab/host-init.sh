#!/bin/bash
# PID 1 of one kubetls lab host, run by lib/lab/host.ts as
#   unshare --mount --uts --pid --fork --mount-proc --propagation private bash host-init.sh LABDIR HOST
# Every mount below happens inside this host's private mount namespace: nothing is mounted on the real machine.
# Bash as PID 1 reaps the orphans reparented to it (the services the systemctl stand-in daemonizes).
set -eu
lab=$1 host=$2
# Keep a handle on the lab folder: the mounts below may hide its path (a lab under /tmp or /root, say), and
# /proc/self/fd/N still reaches the real folder (fds are inherited by every command here). The stand-ins are bundled
# into DIR/bin at lab up (lib/lab/files.ts): the checkout itself is not needed inside a host.
exec 3<"$lab"
L=/proc/self/fd/3
hd=$L/hosts/$host
hostname "$host"
mount -t tmpfs -o mode=0755 lab-run /run
mkdir -m 0755 /run/sshd /run/kubetls-lab
mount -t overlay lab-etc -o "lowerdir=$L/base/etc:/etc,upperdir=$hd/etc,workdir=$hd/work/etc" /etc
mount -t overlay lab-var-lib -o "lowerdir=/var/lib,upperdir=$hd/var-lib,workdir=$hd/work/var-lib" /var/lib
mount --bind "$hd/srv" /srv
mount --bind "$hd/home" /home
mount --bind "$hd/root" /root
mount --bind "$hd/log" /var/log
mount -t tmpfs -o mode=1777 lab-tmp /tmp
install -d -o kube -g nogroup -m 0755 /run/kubernetes
mount --bind "$L/bin" /usr/local/sbin
# a user whose PATH lacks /usr/local/sbin (jijisa) must reach the stand-in too, as /usr/bin/systemctl
if [ -f /usr/bin/systemctl ]; then mount --bind "$L/bin/systemctl" /usr/bin/systemctl; fi
# hide the lab folder (client key, other hosts, the local PKI) from this host, unless a mount above already did
if [ -d "$lab" ]; then mount -t tmpfs -o mode=0700,size=64k lab-hidden "$lab"; fi
exec 3<&-
/usr/sbin/sshd -D -f /etc/ssh/sshd_config -E /var/log/sshd.log &
while :; do
  wait || :
  sleep 3600 &
done
