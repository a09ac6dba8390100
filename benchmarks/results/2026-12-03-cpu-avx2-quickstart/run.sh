#!/bin/bash
cd /tmp/quick
export HF_DATASETS_CACHE=/tmp/quick/hf HF_HUB_OFFLINE=1 XDG_CACHE_HOME=/tmp/quick/xdg
{ date -u; uptime; } > machine.txt
start=$(date +%s)
/work/main/.venv/bin/python -m tinyimagenet_resnet.main data.path=/work/shared/tiny-imagenet data.train_subset=2000 data.val_subset=1000 trainer.epochs=2 > run.log 2>&1
echo "exit $? wall $(( $(date +%s) - start )) s" >> machine.txt
uptime >> machine.txt
