#!/usr/bin/env bash
# Fails when the committed generated modules differ from what scripts/gen_proto.sh produces now.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/gen_proto.sh "$tmp"
for f in "$tmp"/rtvoice/v1/*; do
  name=$(basename "$f")
  if ! cmp -s "$f" "services/rtvoice/v1/$name"; then
    echo "generated protobuf module services/rtvoice/v1/$name is stale: run 'make proto' and commit" >&2
    exit 1
  fi
done
echo "protobuf modules are current"
