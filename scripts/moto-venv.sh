#!/usr/bin/env bash
# Creates .venv-moto with moto[server] (a real S3 API server for the recorder's tests), idempotently.
# moto pulls botocore, whose python-dateutil pin conflicts with the kubernetes client in .venv, so it
# lives in its own virtualenv. Prints the path of the moto_server executable.
# Usage: scripts/moto-venv.sh [VENV_DIR]   (default: .venv-moto next to this repository's .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-moto}
PY=${PYTHON3:-python3}
if [ ! -x "$VENV/bin/moto_server" ]; then
  echo "creating $VENV with moto[server]" >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check 'moto[server]>=5.0' >&2
fi
"$VENV/bin/python" -c 'import moto, flask' >/dev/null
echo "$(pwd)/$VENV/bin/moto_server"
