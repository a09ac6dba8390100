#!/bin/bash
cd /tmp/smoke4
. /work/main/.venv/bin/activate
export HF_DATASETS_CACHE=/tmp/smoke4/hf HF_HUB_OFFLINE=1 XDG_CACHE_HOME=/tmp/smoke4/xdg
{ date -u; uptime; lscpu | grep "Model name"; } > machine.txt
start=$(date +%s)
python -m tinyimagenet_resnet.main task=protocol protocol.scale=smoke data.path=/work/shared/tiny-imagenet > protocol.log 2>&1
echo "exit $? wall $(( $(date +%s) - start )) s" >> machine.txt
uptime >> machine.txt
