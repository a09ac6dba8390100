#!/usr/bin/env bash
# The protocol's steps forked from its warm server (protocol.warm_start=true, tasks/protocol_warm.py) against each
# step a new interpreter (false): the smoke protocol at the test suite's settings on the tests' tiny fixture (what
# differs is each step's start-up, not its training), the two runs one after the other, each with caches of its own.
#
#   benchmarks/protocol_warm_start.sh OUT_DIR [extra overrides...]
#
# OUT_DIR receives machine.txt, <mode>/console.txt and <mode>/protocol/default/ (state.json: each step's seconds)
# and steps.csv (both runs' seconds per step). Run it on an idle machine.
set -euo pipefail
out=${1:?usage: benchmarks/protocol_warm_start.sh OUT_DIR [extra overrides...]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
python -c "import sys; sys.path.insert(0, '$repo/tests'); from pathlib import Path; \
from tiny_dataset import write_tiny_imagenet; write_tiny_imagenet(Path('$out/tiny-imagenet'))" >/dev/null 2>&1
{
  date -u +"%Y-%m-%d %H:%M:%S UTC"
  lscpu | grep -E "Model name|^CPU\(s\)" || true
  python -c "import torch; print('torch', torch.__version__)"
} >"$out/machine.txt"
for warm in true false; do
  mkdir -p "$out/$warm"
  echo "warm_start=$warm load before: $(uptime)" >>"$out/machine.txt"
  start=$(date +%s.%N)
  (cd "$out/$warm" && HF_DATASETS_CACHE="$out/$warm/hf" XDG_CACHE_HOME="$out/$warm/xdg" \
    python -m tinyimagenet_resnet.main task=protocol protocol.scale=smoke protocol.warm_start=$warm \
    data.path="$out/tiny-imagenet" data.train_subset=null data.val_subset=null data.test_subset=null \
    trainer.epochs=4 lr_find.num_iters=40 "$@" >console.txt 2>&1)
  echo "warm_start=$warm wall: $(echo "$(date +%s.%N) - $start" | bc) s; load after: $(uptime)" >>"$out/machine.txt"
done
python - "$out" <<'EOF' | tee "$out/steps.csv"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
runs = {w: json.loads((out / w / "protocol" / "default" / "state.json").read_text())["steps"] for w in ("true", "false")}
print("step,warm_s,new_interpreter_s,saved_s")
for step in runs["true"]:
    a, b = runs["true"][step]["seconds"], runs["false"][step]["seconds"]
    print(f"{step},{a},{b},{b - a:.1f}")
EOF
cat "$out/machine.txt"
