#!/usr/bin/env bash
# Creates .venv-moto with moto[server] (a real S3 API server for the recorder's tests), idempotently.
# moto pulls botocore, whose python-dateutil pin conflicts with the kubernetes client in .venv, so it
# lives in its own virtualenv. Prints the path of the moto_server executable.
# Cached by version: rebuilt only when the requirement below or the Python version changes.
# Run before the tests (`make test-tools`); RTVOICE_TOOLS_CHECK_ONLY=1 = exit 3 instead of building.
# Usage: scripts/moto-venv.sh [VENV_DIR]   (default: .venv-moto next to this repository's .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-moto}
PY=${PYTHON3:-python3}
REQUIREMENT='moto[server]>=5.0,<6'
KEY="$REQUIREMENT $("$PY" -c 'import sys; print(sys.version.split()[0])')"
if [[ ! -x $VENV/bin/moto_server || "$(cat "$VENV/.rtvoice-key" 2>/dev/null)" != "$KEY" ]]; then
  if [[ ${RTVOICE_TOOLS_CHECK_ONLY:-} == 1 ]]; then
    echo "$VENV is missing or stale: build it with \`make test-tools\` (scripts/test-tools.sh)" >&2
    exit 3
  fi
  echo "creating $VENV with $REQUIREMENT" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$REQUIREMENT" >&2
  echo "$KEY" >"$VENV/.rtvoice-key"
fi
"$VENV/bin/python" -c 'import moto, flask' >/dev/null
echo "$(pwd)/$VENV/bin/moto_server"
