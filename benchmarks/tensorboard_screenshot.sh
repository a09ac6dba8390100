#!/usr/bin/env bash
# A screenshot of TensorBoard's HParams tab for a small real grid (lr x wd x blocks x dropout, 16 jobs of one
# epoch on 400 real images), taken with headless Chromium (apt-get install chromium). Writes docs/tensorboard-hparams.png.
#   benchmarks/tensorboard_screenshot.sh [DATA]     (DATA: ../shared/tiny-imagenet)
set -euo pipefail
data=${1:-../shared/tiny-imagenet}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
cd "$work"
python -m tinyimagenet_resnet.main -m data.path="$(cd "$repo" && realpath "$data")" data.train_subset=400 data.val_subset=200 \
  model.widths=[16,32,64] trainer.epochs=1 optim.lr=1e-3,3e-3 optim.weight_decay=0,1e-4 model/blocks=b222,b333 \
  model/dropout=p01,p03 > grid.log 2>&1
sweep=$(ls -d multirun/*/* | head -1)
port=$(python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
python -m tensorboard.main --logdir "$sweep" --port "$port" > tb.log 2>&1 &
tb=$!
trap 'kill $tb 2>/dev/null || true' EXIT
sleep 12
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,900 \
  --virtual-time-budget=30000 --screenshot="$repo/docs/tensorboard-hparams.png" "http://127.0.0.1:$port/#hparams" 2>/dev/null
echo "sweep: $work/$sweep"
echo "screenshot: $repo/docs/tensorboard-hparams.png"
