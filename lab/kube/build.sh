#!/usr/bin/env bash
# Builds the real Kubernetes programs the modern lab runs, from the Go module proxy, into a cache outside the checkout:
#   $KUBETLS_KUBE_CACHE (default /var/cache/kubetls/kube)/<key>/{kube-apiserver,…,kubeadm}
# <key> is the version, the Go version and a hash of go.mod, go.sum and this script (comments left out): a second run with nothing changed
# builds nothing (it prints the folder and exits 0). The folder is written under a temp name and renamed when every
# binary is built and answers --version with the version asked for, so a killed build never leaves a half folder.
# Usage: build.sh [--print]   (--print: only print the folder the binaries live in, built or not)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Go's own install place, when it is not on PATH already (the official tarball's /usr/local/go)
command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
version=v1.37.2
programs=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm)
cache=${KUBETLS_KUBE_CACHE:-/var/cache/kubetls/kube}
# comment lines left out of the key: editing a comment never costs a rebuild
key=$( { grep -v '^[[:space:]]*//' "$here/go.mod"; cat "$here/go.sum"; grep -v '^[[:space:]]*#' "$here/build.sh"; } | sha256sum | cut -c1-16)
dir="$cache/$version-$(go env GOVERSION)-$key"

if [ "${1:-}" = "--print" ]; then echo "$dir"; exit 0; fi
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The version stamp the Kubernetes release build writes (hack/lib/version.sh), for both version packages.
major=${version#v}; major=${major%%.*}
minor=${version#v*.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

cd "$here"
start=$(date +%s)
# Static binaries (no cgo), as the release builds them; -trimpath so the cache path is not in them.
# GOFLAGS=-mod=mod: go.sum is complete, nothing else is fetched than what it names.
for p in "${programs[@]}"; do
  echo "go build -o $tmp/$p k8s.io/kubernetes/cmd/$p" >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$tmp/$p" "k8s.io/kubernetes/cmd/$p"
done
for p in "${programs[@]}"; do
  out=$("$tmp/$p" --version 2>&1 || true)
  [ "$p" = kubeadm ] && out=$("$tmp/$p" version -o short 2>&1 || true)
  case "$out" in *"$version"*) ;; *) echo "$p --version said: $out (want $version)" >&2; exit 1 ;; esac
done
echo "built in $(( $(date +%s) - start )) s" > "$tmp/.complete"
chmod 0755 "$tmp"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
