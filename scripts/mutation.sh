#!/usr/bin/env bash
# Mutation testing (mutmut 3): mutate one target at a time, run its fast tests, print the score.
#
#   bash scripts/mutation.sh                 # every target, one after the other
#   bash scripts/mutation.sh fit elicit      # some of them
#   MUTATION_CHILDREN=2 bash scripts/mutation.sh design
#
# Targets: fit (src/valuescope/fit/ but metrics.py), metrics (fit/metrics.py),
# elicit (the aggregation, elicit/elicit.py), design (src/valuescope/design/).
# Each target runs in a copy of the working tree under $MUTATION_DIR (default a temporary
# folder), so the checkout is never touched. Per target it prints killed/total and the
# surviving mutants; `mutmut show NAME` in that copy shows one. Needs `pip install -e .[dev]`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CHILDREN=${MUTATION_CHILDREN:-1}
BASE=${MUTATION_DIR:-$(mktemp -d -t valuescope-mutation.XXXXXX)}
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(fit metrics elicit design)

python3 -c "import mutmut" 2>/dev/null || {
  echo "mutation.sh: mutmut is missing; pip install -e '.[dev]'" >&2
  exit 2
}

target_config() {
  # only_mutate and tests for one target (paths relative to the repository root)
  case "$1" in
    fit)
      MUTATE="src/valuescope/fit/thurstonian.py src/valuescope/fit/bradley_terry.py"
      MUTATE+=" src/valuescope/fit/bootstrap.py src/valuescope/fit/_validation.py"
      TESTS="tests/test_fit.py tests/test_fit_mutation.py"
      # the bootstrap's unit tests (the rest of that module runs whole pipelines)
      TESTS+=" tests/test_intervals_fast.py::test_the_bootstrap_resamples"
      TESTS+=" tests/test_intervals_fast.py::test_bootstrap_interval_and_statistics_percentiles" ;;
    metrics)
      MUTATE="src/valuescope/fit/metrics.py"
      TESTS="tests/test_metrics.py tests/test_fit_mutation.py" ;;
    elicit)
      MUTATE="src/valuescope/elicit/elicit.py"
      TESTS="tests/test_aggregation.py tests/test_cache_key.py" ;;
    design)
      MUTATE="src/valuescope/design/pairs.py src/valuescope/design/active.py"
      MUTATE+=" src/valuescope/design/information.py"
      TESTS="tests/test_design.py tests/test_design_information.py tests/test_design_golden.py"
      TESTS+=" tests/test_design_selection.py" ;;
    *)
      echo "mutation.sh: unknown target '$1' (fit, metrics, elicit, design)" >&2
      exit 2 ;;
  esac
}

list() {  # "a b" -> indented lines for setup.cfg
  for x in $1; do
    if [ -e "$ROOT/${x%%::*}" ]; then printf '    %s\n' "$x"; fi
  done
}

total_killed=0
total_all=0
for target in "${TARGETS[@]}"; do
  target_config "$target"
  work="$BASE/$target"
  rm -rf "$work" && mkdir -p "$work"
  # the working tree as it is (tracked and untracked files, nothing git ignores)
  # (files deleted in the working tree but still in the index are left out)
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      [ -f "$f" ] && [ "${f#mutants/}" = "$f" ] && printf '%s\0' "$f"
    done | tar --null -T - -cf - | tar -xf - -C "$work"
  {
    echo "[mutmut]"
    echo "source_paths = src"
    echo "only_mutate ="
    list "$MUTATE"
    echo "pytest_add_cli_args_test_selection ="
    list "$TESTS"
    echo "pytest_add_cli_args ="
    # a fixed hypothesis seed: every mutant meets the same examples as the clean run;
    # -n 0: one process (mutmut runs its own children; pyproject's addopts ask for xdist)
    printf '    %s\n' -p no:cacheprovider -m "not slow" -q -W ignore::DeprecationWarning \
      --hypothesis-seed=0 -n 0
    echo "use_git_change_detection = false"
  } >"$work/setup.cfg"
  start=$(date +%s)
  echo "== mutation: $target (mutating: $MUTATE)"
  (cd "$work" && nice -n 10 python3 -m mutmut run --max-children "$CHILDREN" >mutmut.log 2>&1) || {
    echo "mutation.sh: mutmut failed for $target; see $work/mutmut.log" >&2
    tail -20 "$work/mutmut.log" >&2
    exit 1
  }
  (cd "$work" && python3 -m mutmut export-cicd-stats >/dev/null 2>&1)
  read -r killed all survived <<<"$(python3 - "$work/mutants/mutmut-cicd-stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
# a mutant that times out or crashes the tests is detected, like a killed one
detected = s["killed"] + s.get("timeout", 0) + s.get("segfault", 0) + s.get("suspicious", 0)
judged = detected + s["survived"] + s.get("no_tests", 0)
print(detected, judged, s["survived"] + s.get("no_tests", 0))
PY
)"
  total_killed=$((total_killed + killed))
  total_all=$((total_all + all))
  echo "   $target: $killed of $all mutants killed, $survived survived ($(($(date +%s) - start)) s)"
  (cd "$work" && python3 -m mutmut results 2>/dev/null | grep -v ': killed' | sed 's/^/   /') || true
done
if [ "$total_all" -gt 0 ]; then
  python3 -c "print(f'mutation score: {$total_killed}/{$total_all} = {100 * $total_killed / $total_all:.1f}% killed')"
fi
echo "(work folders under $BASE)"
