#!/usr/bin/env bash
# Regenerates the Python modules of proto/rtvoice/v1 into services/rtvoice/v1.
# Usage: scripts/gen_proto.sh [OUT_DIR]   (default services; CI passes a temp dir and diffs)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-services}
PY=${PYTHON:-python}
mkdir -p "$OUT/rtvoice/v1"
"$PY" -m grpc_tools.protoc -Iproto \
  --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
  proto/rtvoice/v1/*.proto
