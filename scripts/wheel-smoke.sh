#!/usr/bin/env bash
# Build valuescope's wheel and use it from a fresh virtual environment outside the source tree:
# list the outcomes, a sim run, an experiment and a report. Only the core dependencies are
# installed, so this also checks that nothing in these commands needs an extra.
#
#   bash scripts/wheel-smoke.sh          # CI runs this (.ci/run, phase wheel-smoke)
#
# PYTHON picks the interpreter that builds the wheel and the venv (default: python3);
# KEEP=1 leaves the temporary folder in place and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
work=$(mktemp -d)
if [ "${KEEP:-0}" = 1 ]; then
  echo "wheel-smoke: keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi

step() { # step MESSAGE: say what comes next, with the seconds since the start
  echo "wheel-smoke [$SECONDS s]: $*"
}

step "building the wheel"
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" . >/dev/null
wheel=$(ls "$work"/dist/valuescope-*.whl)
"$PY" - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
wanted = ("LICENSE", "outcomes/data/demo.yaml")
missing = [p for p in wanted if not any(n.endswith(p) for n in names)]
sys.exit(f"wheel-smoke: the wheel lacks {missing}" if missing else 0)
EOF

step "fresh venv, installing $(basename "$wheel") with its core dependencies"
"$PY" -m venv "$work/venv"
# --no-compile: no .pyc files for the dependencies; this venv lives for one test
if ! "$work/venv/bin/python" -m pip install -q --no-compile "$wheel" 2>"$work/pip.err"; then
  grep -v "^WARNING: Location" "$work/pip.err" >&2
  echo "wheel-smoke: installing the wheel failed" >&2
  exit 1
fi
vs="$work/venv/bin/valuescope"
[ -x "$vs" ] || { echo "wheel-smoke: the wheel installed no valuescope command" >&2; exit 1; }

cd "$work" # outside the source tree: only the installed wheel can be imported
where=$("$work/venv/bin/python" -c 'import valuescope; print(valuescope.__file__)')
case "$where" in
  "$work/venv/"*) ;;
  *)
    echo "wheel-smoke: valuescope came from $where, not from the venv" >&2
    exit 1
    ;;
esac

step "valuescope outcomes list"
"$vs" outcomes list >"$work/outcomes.txt"
grep -q demo "$work/outcomes.txt" || { echo "wheel-smoke: no demo outcome set listed" >&2; exit 1; }

step "valuescope run sim/thurstone"
"$vs" run sim/thurstone --outcomes demo --out "$work/run" --quiet
test -s "$work/run/utilities.csv"

step "valuescope experiment time-discounting (quick)"
"$vs" experiment time-discounting "sim/hyperbolic?k=0.05" --quick --out "$work/exp" --quiet

step "valuescope report"
"$vs" report "$work/run" --out "$work/report" --quiet
test -s "$work/report/report.html"

step "passed"
