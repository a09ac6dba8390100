# Aggregates py-spy's raw output (python3 spyfork.py spy.txt), read by spyraw.py.
import collections
import re

from spyraw import samples

CATS = [
    ("lr range_test", "range_test (tinyimagenet_resnet/training/lr_range.py"),
    ("train_epoch", "train_epoch (tinyimagenet_resnet/training/engine.py"),
    ("validate/evaluate", "evaluate (tinyimagenet_resnet/training/evaluation.py"),
    ("preflight", "preflight (tinyimagenet_resnet/config/loader.py"),
    ("hydra compose (run/sweep)", "_load_configuration (hydra/_internal/config_loader_impl.py"),
    ("report build", "build (tinyimagenet_resnet/reporting/report.py"),
    ("savefig", "savefig ("),
    ("protocol estimate", "protocol_time.py"),
    ("data setup", "setup_data (tinyimagenet_resnet/tasks/common.py"),
    ("imports", "_find_and_load ("),
    ("checkpoint save", "save (tinyimagenet_resnet/training/checkpoint.py"),
    ("tensorboard", "tensorboard/"),
    ("sweep summary/callbacks", "tinyimagenet_resnet/sweeps/"),
    ("run records/callbacks", "tinyimagenet_resnet/training/callbacks.py"),
    ("artifacts", "tinyimagenet_resnet/artifacts/"),
    ("inspect task", "tinyimagenet_resnet/tasks/inspect"),
    ("baselines task", "tinyimagenet_resnet/tasks/baselines"),
    ("optuna", "optuna/"),
    ("memory probe", "tinyimagenet_resnet/training/memory.py"),
    ("bench", "tinyimagenet_resnet/bench/"),
]
tot = collections.Counter()
n_all = 0
first = collections.Counter()
for _, frames, n in samples():
    k = [i for i, f in enumerate(frames) if "_forked_entry_point" in f]
    if not k:
        continue
    frames = frames[k[0] :]
    n_all += n
    for name, pat in CATS:
        if any(pat in f for f in frames):
            first[name] += n
            break
    else:
        # uncategorized: record the deepest tinyimagenet frame
        tf = [f for f in frames if "tinyimagenet_resnet/" in f]
        key = re.sub(r"\(.*?repo/", "(", tf[-1]) if tf else re.sub(r"\(.*?(site-packages|python3.11)/", "(", frames[-1])
        tot[re.sub(r":\d+\)", ")", key)[:120]] += n
print("forked runs total %.0f s" % (n_all / 50))
for k, v in first.most_common():
    print(f"{v / 50:7.1f}  {k}")
print("--- uncategorized, by deepest package frame")
for k, v in tot.most_common(30):
    print(f"{v / 50:7.1f}  {k}")
