#!/bin/bash
# A = b33f42c (worktree), B = the working tree (schema registered once per ConfigStore)
export PATH=/tmp/ci6/repo/.venv/bin:$PATH
cd /tmp/ab
[ -d data/tiny-imagenet ] || PYTHONPATH=/work/main/tests python /work/main/tests/tiny_dataset.py data/tiny-imagenet
date -u; lscpu | grep -E '^CPU\(s\)|Model name'
for code in A B A B; do
  dir=$([ $code = A ] && echo /tmp/ab/A || echo /work/main)
  echo "== $code load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd /tmp && PYTHONPATH=$dir python /tmp/ab/compose_time.py  # (an earlier form of benchmarks/compose_time.py: medians of 9 of two configs))
  (cd /tmp && PYTHONPATH=$dir python $dir/benchmarks/preflight_time.py)
done
i=0
for code in A B A B; do
  i=$((i+1)); dir=$([ $code = A ] && echo /tmp/ab/A || echo /work/main)
  /tmp/ab/protocol_ab.sh $dir /tmp/ab/run$code$i /tmp/ab/data/tiny-imagenet
done
date -u
