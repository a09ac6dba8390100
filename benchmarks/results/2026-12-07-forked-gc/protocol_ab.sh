#!/bin/bash
# usage: protocol_ab.sh CODE_DIR OUT_DIR DATA_DIR : the smoke protocol at the tests' fixture settings (DATA_DIR: the
# tests' tiny dataset, tests/tiny_dataset.py) with the package's code from CODE_DIR (a checkout or a git worktree);
# prints the wall seconds and the machine's CPU seconds over the run (cpudelta.sh)
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH=$1 OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
export HF_DATASETS_CACHE=$2.hf/datasets HF_HOME=$2.hf/home XDG_CACHE_HOME=$2.hf/xdg
rm -rf "$2"; mkdir -p "$2"; cd "$2" || exit 1
s=$(date +%s.%N)
"$here"/cpudelta.sh python -m tinyimagenet_resnet.main task=protocol protocol.scale=smoke data.path="$3" \
  data.train_subset=null data.val_subset=null data.test_subset=null trainer.epochs=4 lr_find.num_iters=40 \
  "model.widths=[16,16,16]" data.batch_size=16 > console.txt 2>&1
echo "$(basename "$2") rc=$? wall $(python -c "import time;print(round(time.time()-$s,1))") s | $(tail -1 console.txt) | load $(cut -d' ' -f1 /proc/loadavg)"
