#!/usr/bin/env bash
# Every GPU measurement of issue 12, in the calls a lent GPU machine allows (see ../shared/gpu/README.md):
#
#   ../shared/gpu/prepare-carry       # here, once: carry/whl (+ joblib, fsspec below) and carry/data-1..4
#   call 1, carry [carry/whl, carry/data-1]:  benchmarks/gpu_suite.sh setup     (installs; starts the gpu tests)
#   calls 2-4, carry [carry/data-K]:           benchmarks/gpu_suite.sh data K
#   call 5:                                    benchmarks/gpu_suite.sh measure fast   (tests' log, bench, experiment=fast)
#   call 6:                                    benchmarks/gpu_suite.sh measure course (course default + test, sweeps)
#
# What comes back is under $OUT (at most 8 files): logs, bench JSON, and a tar of each run's small files
# (metrics.json, main.log, .hydra/, TensorBoard events; no checkpoints), to unpack under
# benchmarks/results/<date>-<gpu>/.
#
# GPU_TESTS_K=EXPR runs only the gpu tests matching EXPR (pytest -k) in `setup`.
# Measured on an H200 on 2026-11-30 (BENCHMARKS.md): setup 48 s of lease, data 3 x 6 s, gpu tests 2.5 min (in the
# background), `measure fast` 7.5 min (of which 2 min waiting for the tests), `measure course` 5.5 min for the course
# default alone: the 15 device-minutes of a session do not hold every stage; plan which ones a session runs.
#
# Rehearsal on a CPU with tiny settings (the same steps and files):
#   GPU_SUITE_QUICK=1 GPU_SUITE_ROOT=/tmp/gpu-rehearsal OUT=/tmp/gpu-out DATA=../shared/tiny-imagenet \
#     benchmarks/gpu_suite.sh measure fast
set -uo pipefail

ROOT=${GPU_SUITE_ROOT:-/tmp/gpu-suite}    # survives between the calls of one lease
DATA=${DATA:-/tmp/tin}
SITE=${SITE:-/tmp/site}
OUT=${OUT:-$ROOT/out}
QUICK=${GPU_SUITE_QUICK:-}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$ROOT" "$OUT"
export PYTHONPATH=$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH} HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export HF_HOME=$ROOT/hf XDG_CACHE_HOME=$ROOT/xdg MPLBACKEND=Agg
PY=${PYTHON:-python3}

# tiny settings for a CPU rehearsal: the same commands on 512 images, 1 epoch, narrow widths
if [ -n "$QUICK" ]; then
  SMALL=(data.train_subset=512 data.val_subset=256 model.widths=[16,32,64] trainer.epochs=1)
  BENCH_SMALL=(--train-files 'data/train-00000-*' --batch-size 32 --steps 2 --warmup 1 --pipeline-images 256)
  SWEEP_SMALL=(--trials 2 --steps 2 --parallel 1 2 --extra data.batch_size=32 model.widths=[16,32,64] data.val_subset=256)
else
  SMALL=()
  BENCH_SMALL=(--train-files 'data/train-*')
  SWEEP_SMALL=(--trials 4 --steps 100 --parallel 1 2 4 --extra data.batch_size=256)
fi

log() { echo "[gpu_suite $(date +%T)] $*" | tee -a "$OUT/steps.txt"; }

# step NAME LIMIT_S DIR CMD...: runs CMD in DIR under a time limit, its output in $OUT/NAME.log
step() {
  local name=$1 limit=$2 dir=$3 start rc
  shift 3
  mkdir -p "$dir"
  log "$name: $* (limit ${limit}s)"
  start=$(date +%s%N)
  (cd "$dir" && timeout -k 15 "$limit" "$@") >"$OUT/$name.log" 2>&1
  rc=$?
  log "$name: exit $rc, wall $((($(date +%s%N) - start) / 1000000)) ms"
  return $rc
}

# keep the small files of the run folders under DIR (no checkpoints, no images) in $OUT/NAME.tar.gz
keep() {
  local name=$1 dir=$2
  (cd "$dir" && find . \( -name '*.ckpt' -o -name '*.npy' -o -name '*.arrow' -o -name 'cache-*' \) -prune -o \
    -type f -size -4M -print | tar czf "$OUT/$name.tar.gz" -T -) && log "kept $name.tar.gz ($(du -h "$OUT/$name.tar.gz" | cut -f1))"
}

machine() {
  nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null
  lscpu | grep -E 'Model name|^CPU\(s\)' || true
  $PY - <<'EOF'
import importlib, sys, torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
for name in ("hydra", "omegaconf", "optuna", "datasets", "pyarrow", "fsspec", "huggingface_hub", "joblib", "triton"):
    try:
        print(f"  {name} {importlib.import_module(name).__version__}")
    except Exception as exc:  # noqa: BLE001 - a report of what is there, whatever fails
        print(f"  {name}: {type(exc).__name__}: {exc}")
EOF
}

case "${1:-}" in
setup)
  mkdir -p "$DATA" && cp -r carry/data-1/. "$DATA"/
  $PY -m pip install -q --no-index --no-deps --no-compile --target "$SITE" carry/whl/*.whl 2>&1 | tail -3
  machine | tee "$OUT/machine.txt"
  # the gpu tests run while the next calls copy the data (setsid: they outlive this call); `measure` waits for them
  log "gpu tests started"
  setsid bash -c "cd '$REPO' && $PY -m pytest -m gpu tests/test_gpu.py ${GPU_TESTS_K:+-k '$GPU_TESTS_K'} -p no:cacheprovider -v --junitxml='$ROOT/gpu-tests.xml' \
    >'$ROOT/gpu-tests.log' 2>&1; echo \$? >'$ROOT/gpu-tests.rc'" </dev/null >/dev/null 2>&1 &
  sleep 10
  tail -5 "$ROOT/gpu-tests.log"
  ;;
data)
  cp -r "carry/data-$2/." "$DATA"/ && log "data part $2: $(ls "$DATA"/data | wc -l) shards"
  tail -3 "$ROOT/gpu-tests.log" 2>/dev/null
  ;;
measure)
  if [ "${2:-}" = fast ] && [ -f "$ROOT/gpu-tests.log" ]; then
    for _ in $(seq 300); do [ -f "$ROOT/gpu-tests.rc" ] && break; sleep 1; done
    log "gpu tests: exit $(cat "$ROOT/gpu-tests.rc" 2>/dev/null || echo 'still running')"
    cp "$ROOT/gpu-tests.log" "$OUT/" 2>/dev/null
    cp "$ROOT/gpu-tests.xml" "$OUT/" 2>/dev/null
  fi
  case "${2:-}" in
  fast)
    step bench 200 "$ROOT/bench" $PY -m tinyimagenet_resnet.bench --data-path "$DATA" "${BENCH_SMALL[@]}" --compile \
      --out "$OUT/bench.json"
    # the whole command from nothing: its own empty caches (datasets' arrow files and the decoded images)
    HF_HOME=$ROOT/hf-fast XDG_CACHE_HOME=$ROOT/xdg-fast step fast 330 "$ROOT/fast" \
      $PY -m tinyimagenet_resnet.main experiment=fast data.path="$DATA" trainer.progress_bar=false "${SMALL[@]}"
    keep fast "$ROOT/fast"
    ;;
  course)
    step course 330 "$ROOT/course" $PY -m tinyimagenet_resnet.main data.path="$DATA" trainer.progress_bar=false \
      run_name=course "${SMALL[@]}"
    best=$(ls "$ROOT"/course/outputs/*/*/checkpoints/best.ckpt 2>/dev/null | head -1)
    [ -n "$best" ] && step evaluate 120 "$ROOT/course" $PY -m tinyimagenet_resnet.main task=evaluate \
      ckpt_path="$best" data.path="$DATA" trainer.progress_bar=false
    keep course "$ROOT/course"
    step sweep 240 "$ROOT/sweep" $PY -m tinyimagenet_resnet.bench sweep --data-path "$DATA" "${SWEEP_SMALL[@]}" \
      --out "$OUT/bench_sweep.json"
    ;;
  *) echo "usage: $0 measure fast|course" >&2; exit 2 ;;
  esac
  nvidia-smi --query-gpu=name,temperature.gpu,clocks.sm,power.draw --format=csv 2>/dev/null >>"$OUT/steps.txt"
  ;;
*)
  echo "usage: $0 setup | data K | measure fast|course  (see the top of this file)" >&2
  exit 2
  ;;
esac
