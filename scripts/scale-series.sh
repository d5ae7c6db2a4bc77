#!/usr/bin/env bash
# The scale series: every embedded model on the same outcomes, with the same seed and
# budget, then one comparison report (coherence per model, convergence between models,
# the size trend with intervals). Runs that already finished are reused: `valuescope run`
# with the same --out answers from its cache and asks only what is missing.
#
#   bash scripts/scale-series.sh                           # demo outcomes, default budget
#   OUTCOMES=benchmarks/real_model_outcomes.txt BUDGET=100 bash scripts/scale-series.sh
#
# Settings (environment): OUTCOMES (default demo), BUDGET (default: the run's own,
# ~2 N log2 N), SEED (0), OUT (runs/scale; runs go to OUT/<model>, the report to
# OUT/compare), MODELS (default: the three embedded models, smallest first). Each run's
# wall time and the load average before it are appended to OUT/timings.tsv.
set -euo pipefail

OUTCOMES="${OUTCOMES:-demo}"
SEED="${SEED:-0}"
OUT="${OUT:-runs/scale}"
read -r -a models <<<"${MODELS:-smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b}"
budget=()
[ -z "${BUDGET:-}" ] || budget=(--budget "$BUDGET")

mkdir -p "$OUT"
[ -f "$OUT/timings.tsv" ] || printf 'model\twall_s\tload_1m_before\tload_1m_after\n' >"$OUT/timings.tsv"
load() { cut -d' ' -f1 /proc/loadavg; }
dirs=()
for model in "${models[@]}"; do
  dir="$OUT/$model"
  before=$(load) start=$SECONDS
  valuescope run "embedded/$model" --outcomes "$OUTCOMES" "${budget[@]}" --seed "$SEED" \
    --out "$dir"
  printf '%s\t%s\t%s\t%s\n' "$model" $((SECONDS - start)) "$before" "$(load)" >>"$OUT/timings.tsv"
  dirs+=("$dir")
done
valuescope report "${dirs[@]}" --out "$OUT/compare"
column -t "$OUT/timings.tsv"
