#!/bin/bash
# The recipe's PKI (docs/recipe.md steps 2-5 and 12) verbatim, for 1 master + N minions, in the current folder.
# Used by bench/run.ts as the baseline:  bash bench/recipe-pki.sh N
set -euo pipefail
n=$1
openssl genrsa -out ca.key 4096 2>/dev/null
openssl req -x509 -new -nodes -key ca.key -subj "/CN=kubemaster" -days 10000 -out ca.crt
openssl genrsa -out server.key 2048 2>/dev/null
cp /etc/ssl/openssl.cnf openssl.cnf
printf '[SAN]\nsubjectAltName=DNS.1:kubernetes.default.svc,DNS.2:kubemaster,IP.1:10.24.0.1\n' >> openssl.cnf
openssl req -new -key server.key -subj "/CN=kubernetes.default.svc" -reqexts SAN -config openssl.cnf -out server.csr
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -extensions SAN -extfile openssl.cnf -days 10000 -out server.crt 2>/dev/null
for i in $(seq 1 "$n"); do
  M=kubeminion$i
  openssl req -newkey rsa:2048 -nodes -keyout "$M.key" -subj "/CN=$M" -out "$M.csr" 2>/dev/null
  openssl x509 -req -days 10000 -in "$M.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$M.crt" 2>/dev/null
done
