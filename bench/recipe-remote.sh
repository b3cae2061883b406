#!/bin/bash
# The recipe's remote half (docs/recipe.md steps 7-11 and 13-18), as an operator runs it today: one `ssh`/`scp` per command,
# one host after the other, against a lab (legacy profile) whose PKI folder already holds the files (same files as
# kubetls's). Used by bench/run.ts as the baseline; loopback lab hosts only.
#   bash bench/recipe-remote.sh LABDIR PKIDIR kubemaster kubeminion1 kubeminion2 …
set -euo pipefail
lab=$1 pki=$2 master=$3
shift 3
S=(ssh -F "$lab/ssh_config")
C=(scp -q -F "$lab/ssh_config")
R=/srv/kubernetes
url=https://kubemaster:6443

# steps 7-11: the master's files, its two env files, the restarts, and "is 6443 up?"
"${S[@]}" "$master" mkdir -p $R
"${C[@]}" "$pki/ca.crt" "$pki/ca.key" "$pki/server.crt" "$pki/server.key" "$pki/tokens.csv" "$master:$R/"
"${S[@]}" "$master" chown -R kube:nogroup $R
"${S[@]}" "$master" "chmod 600 $R/*"
"${S[@]}" "$master" "sed -i 's|^KUBE_API_ARGS=.*|KUBE_API_ARGS=\"--kubelet-https=true --client-ca-file=$R/ca.crt --tls-cert-file=$R/server.crt --tls-private-key-file=$R/server.key --token-auth-file=$R/tokens.csv --secure-port=6443\"|' /etc/kubernetes/apiserver"
"${S[@]}" "$master" "sed -i 's|^KUBE_CONTROLLER_MANAGER_ARGS=.*|KUBE_CONTROLLER_MANAGER_ARGS=\"--root-ca-file=$R/ca.crt --service-account-private-key-file=$R/server.key --node-monitor-grace-period=20s --pod-eviction-timeout=20s\"|' /etc/kubernetes/controller-manager"
"${S[@]}" "$master" systemctl restart kube-apiserver kube-controller-manager
for _ in $(seq 1 50); do "${S[@]}" "$master" "ss -ntl | grep -q :6443" && break; sleep 0.2; done

token=$(cut -d, -f1 "$pki/tokens.csv")
for m in "$@"; do
  # step 13
  "${S[@]}" "$m" rm -fr $R
  "${S[@]}" "$m" mkdir $R
  "${C[@]}" "$pki/ca.crt" "$pki/$m.crt" "$pki/$m.key" "$m:"
  "${S[@]}" "$m" mv ca.crt "$m.crt" "$m.key" $R/
  "${S[@]}" "$m" chown -R root:root $R
  "${S[@]}" "$m" "chmod 600 $R/*"
  # step 14: the four kubectl config commands, on the minion
  k=(kubectl config --kubeconfig=/var/lib/kubelet/kubeconfig)
  "${S[@]}" "$m" "${k[@]}" set-cluster debian-cluster --server=$url --certificate-authority=$R/ca.crt --embed-certs=true >/dev/null
  "${S[@]}" "$m" "${k[@]}" set-credentials kubelet --client-certificate=$R/$m.crt --client-key=$R/$m.key --embed-certs=true --token="$token" >/dev/null
  "${S[@]}" "$m" "${k[@]}" set-context kubelet-context --cluster=debian-cluster --user=kubelet >/dev/null
  "${S[@]}" "$m" "${k[@]}" use-context kubelet-context >/dev/null
  # steps 15-17: the three env files
  "${S[@]}" "$m" "sed -i 's|^KUBE_MASTER=.*|KUBE_MASTER=\"--master=$url\"|' /etc/kubernetes/config"
  "${S[@]}" "$m" "sed -i -e 's|^KUBELET_API_SERVER=.*|KUBELET_API_SERVER=\"--api-servers=$url\"|' -e 's|^KUBELET_ARGS=.*|KUBELET_ARGS=\"--cluster-dns=10.24.0.10 --cluster-domain=kubic.local --enable_server=true --register-node=true --kubeconfig=/var/lib/kubelet/kubeconfig --node-status-update-frequency=5s\"|' /etc/kubernetes/kubelet"
  "${S[@]}" "$m" "sed -i 's|^KUBE_PROXY_ARGS=.*|KUBE_PROXY_ARGS=\"--kubeconfig=/var/lib/kubelet/kubeconfig\"|' /etc/kubernetes/proxy"
  # step 18
  "${S[@]}" "$m" systemctl restart kubelet kube-proxy
done
