#!/usr/bin/env bash
# Builds every tool the tests start, BEFORE pytest runs (`make test-tools`, called by `make test`):
# helmlite and kube-apiserver into $RTVOICE_KUBE_CACHE (default ~/.cache/kube-testenv), moto's venv into
# .venv-moto. Each build is cached by version or content hash, so a second run takes about a second;
# test fixtures only find and start these (they never build, and fail naming this script when missing).
# With RTVOICE_TOOLS_CHECK_ONLY=1 nothing is built: exit 3 when a tool is missing or stale.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${RTVOICE_KUBE_CACHE:-$HOME/.cache/kube-testenv}
step() {
  local name=$1 t0=$SECONDS
  shift
  echo "test-tools: $name ..."
  "$@" >/dev/null
  echo "test-tools: $name ready ($((SECONDS - t0)) s)"
}
step helmlite bash scripts/helmlite/build.sh "$CACHE"
step kube-apiserver bash scripts/kube-testenv/build-kube-apiserver.sh "$CACHE"
step "moto server venv" bash scripts/moto-venv.sh
