# Aggregates py-spy's raw output (python3 spyimp.py spy.txt), read by spyraw.py.
import collections
import re

from spyraw import samples

by_proc = collections.Counter()
by_importer = collections.Counter()
proc_total = collections.Counter()
for procs, frames, n in samples():
    last = procs[-1] if procs else ""
    cmd = re.sub(r'^process \d+:"', "", last)[:90]
    kind = (
        "forkserver child"
        if "multiprocessing.forkserver" in cmd
        else ("warm server" if "protocol_warm" in cmd else cmd)
    )
    # forked children of forkserver show the forkserver cmdline; distinguish by frames
    if kind == "forkserver child" and any("_forked_entry_point" in f for f in frames):
        kind = "forked run (tests)"
    if kind == "forkserver child" and any("serve (" in f for f in frames):
        kind = "forkserver preload/serve"
    if kind == "warm server" and any("run_step" in f for f in frames):
        kind = "protocol forked step"
    proc_total[kind] += n
    idx = [i for i, f in enumerate(frames) if f.startswith("_find_and_load (")]
    if idx:
        by_proc[kind] += n
        imp = frames[idx[0] - 1] if idx[0] > 0 else "?"
        imp = re.sub(r"\(.*?(site-packages|python3.11|repo)/", "(", imp)
        by_importer[(kind[:40], imp[:110])] += n
print("--- all samples by process kind (s)")
for k, v in proc_total.most_common(25):
    print(f"{v / 50:8.1f} {by_proc[k] / 50:8.1f} imports  {k}")
print("--- import samples by (process, outermost importer)")
for k, v in by_importer.most_common(40):
    print(f"{v / 50:7.1f}  {k[0]:40} {k[1]}")
