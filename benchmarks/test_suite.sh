#!/usr/bin/env bash
# The test suite's own benchmark: wall time, every test's duration and the branch coverage of the package,
# subprocesses included (the entry point runs in subprocesses in most tests).
#
#   benchmarks/test_suite.sh OUT_DIR [pytest arguments...]
#
# OUT_DIR receives pytest.log (with --durations=0 and the coverage table), junit.xml (each test's time),
# coverage.txt and machine.txt. Extra arguments go to pytest (e.g. `-n 0` for one process). Run it on an idle
# machine: coverage slows the suite down, so compare wall times of runs measured the same way, and time the
# plain `python -m pytest` separately (BENCHMARKS.md, "Test suite").
set -euo pipefail
out=${1:?usage: benchmarks/test_suite.sh OUT_DIR [pytest arguments...]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/.coverage "$out"/.coverage.*
# coverage's own subprocess support (coverage >= 7.10): each child process measures itself into $out, a child
# forked without exec too (the protocol's steps, forked from its warm server: tasks/protocol_warm.py)
cat >"$out/covrc" <<EOF
[run]
branch = True
parallel = True
patch = subprocess, fork
source = tinyimagenet_resnet
data_file = $out/.coverage
EOF
{
  date -u +"%Y-%m-%d %H:%M:%S UTC"
  lscpu | grep -E "Model name|^CPU\(s\)" || true
  python -c "import torch; print('torch', torch.__version__)"
  echo "load before: $(uptime)"
} >"$out/machine.txt"
start=$(date +%s)
set +e
# every run of the entry point as a new interpreter (not forked from the tests' warm server, tests/conftest.py), so
# that coverage's subprocess patch measures each of them as before
export TIR_TEST_FORKSERVER=0
python -m pytest --durations=0 --cov=tinyimagenet_resnet --cov-config="$out/covrc" --cov-report=term \
  --junitxml="$out/junit.xml" "$@" 2>&1 | tee "$out/pytest.log"
rc=${PIPESTATUS[0]}
set -e
{
  echo "wall: $(($(date +%s) - start)) s, pytest exit $rc"
  echo "load after: $(uptime)"
} >>"$out/machine.txt"
grep -E "^TOTAL" "$out/pytest.log" >"$out/coverage.txt" || true
cat "$out/machine.txt" "$out/coverage.txt"
exit "$rc"
