#!/bin/bash
export PATH=/tmp/ci8/repo/.venv/bin:$PATH PYTHONPATH=/work/main
cd /tmp/lo && rm -rf out && mkdir out && cd out
python /tmp/lo/parent.py /tmp/ab/data/tiny-imagenet > parent.log 2>&1 &
ppid=$!
sleep 40
read _ pgid token < <(grep pgid parent.log)
echo "parent $ppid step group $pgid token $token"; ps -eo pid,pgid,ppid,args | awk -v g=$pgid '$2==g' | cut -c1-120
kill -9 $ppid; echo "SIGKILL parent"; sleep 5
echo "after 5 s:"; ps -eo pid,pgid,ppid,stat,args | awk -v g=$pgid '$2==g' | cut -c1-120
python -c "from tinyimagenet_resnet.tasks.protocol_supervise import end_group; print('end_group(no token)', end_group($pgid)); print('end_group(token)', end_group($pgid, '$token'))"
sleep 1; echo "left in the group:"; ps -eo pid,pgid,ppid,stat,args | awk -v g=$pgid '$2==g' | cut -c1-120; echo "(end)"
