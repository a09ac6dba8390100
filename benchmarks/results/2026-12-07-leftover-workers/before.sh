#!/bin/bash
export PATH=/tmp/ci8/repo/.venv/bin:$PATH
cd /tmp/lo && rm -rf out && mkdir out && cd out
python /tmp/lo/parent.py /tmp/ab/data/tiny-imagenet > parent.log 2>&1 &
ppid=$!
sleep 45
pgid=$(awk '/pgid/{print $2}' parent.log)
echo "parent $ppid step group $pgid"; ps -eo pid,pgid,ppid,etimes,args --sort=pid | awk -v g=$pgid '$2==g' | cut -c1-150
kill -9 $ppid; echo "SIGKILL parent"
for t in 5 30 90; do sleep $t; echo "after +$t s:"; ps -eo pid,pgid,ppid,stat,args | awk -v g=$pgid '$2==g' | cut -c1-150; done
ps -eo pid,pgid,args | awk -v g=$pgid '$2==g {print $1}' | xargs -r kill -9
