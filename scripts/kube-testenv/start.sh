#!/bin/bash
# Starts an envtest-style control plane on loopback: Debian's etcd + a kube-apiserver binary.
# No controller-manager and no kubelet: objects are stored and validated, pods never run, and
# ownerReference garbage collection does not happen.
# Usage: start.sh KUBE_APISERVER_BINARY STATE_DIR [PORT]   -> writes STATE_DIR/kubeconfig, prints its path.
# Stop with stop.sh STATE_DIR. Needs: etcd-server, openssl, curl (Debian).
set -euo pipefail
BIN=$1 D=$2 PORT=${3:-6443}
ETCD_PORT=$((PORT + 10000)) PEER_PORT=$((PORT + 10001))
mkdir -p "$D/certs"
rm -rf "$D/etcd-data"
[[ -f $D/sa.key ]] || openssl genrsa -out "$D/sa.key" 2048 2>/dev/null
openssl rsa -in "$D/sa.key" -pubout -out "$D/sa.pub" 2>/dev/null
TOKEN=$(openssl rand -hex 16)
echo "$TOKEN,admin,admin,system:masters" >"$D/tokens.csv"
cat >"$D/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster: {server: "https://127.0.0.1:$PORT", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: $TOKEN}
contexts:
- name: testenv
  context: {cluster: testenv, user: admin, namespace: default}
current-context: testenv
KC
etcd --data-dir "$D/etcd-data" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --log-level warn >"$D/etcd.log" 2>&1 &
echo $! >"$D/etcd.pid"
"$BIN" --etcd-servers="http://127.0.0.1:$ETCD_PORT" --bind-address=127.0.0.1 --secure-port="$PORT" \
  --cert-dir="$D/certs" --token-auth-file="$D/tokens.csv" --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$D/sa.pub" \
  --service-account-signing-key-file="$D/sa.key" --service-cluster-ip-range=10.0.0.0/24 \
  --allow-privileged=true --disable-admission-plugins=ServiceAccount >"$D/apiserver.log" 2>&1 &
echo $! >"$D/apiserver.pid"
for _ in $(seq 1 60); do
  if curl -skf -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
    echo "$D/kubeconfig"; exit 0
  fi
  sleep 1
done
echo "kube-apiserver not ready; last log lines:" >&2; tail -20 "$D/apiserver.log" >&2; exit 1
