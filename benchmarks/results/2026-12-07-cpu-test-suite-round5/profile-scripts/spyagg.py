# Aggregates py-spy's raw output (python3 spyagg.py spy.txt), read by spyraw.py.
import collections
import re

from spyraw import samples

self_lib = collections.Counter()
incl = collections.Counter()
total = 0
leaf_fn = collections.Counter()
frame_re = re.compile(r"^(.*) \((.*?)(?::(\d+))?\)$")
KEYS = {
    "compose (hydra)": ("compose_config (hydra/_internal/hydra.py",),
    "our compose_config": ("compose_config (tinyimagenet_resnet/config/loader.py",),
    "imports (_find_and_load)": ("_find_and_load (<frozen importlib._bootstrap>",),
    "backward": ("backward (torch/_tensor.py",),
    "module forward": ("_call_impl (torch/nn/modules/module.py",),
    "savefig": ("savefig (matplotlib/figure.py",),
    "torch.save": ("save (torch/serialization.py",),
    "torch.load": ("load (torch/serialization.py",),
    "datasets load_dataset": ("load_dataset (datasets/load.py",),
    "SummaryWriter add_*": (
        "add_scalar (torch/utils/tensorboard/writer.py",
        "add_hparams (torch/utils/tensorboard/writer.py",
    ),
    "pytest test call": ("pytest_pyfunc_call (_pytest/python.py",),
    "subprocess wait/communicate": ("communicate (subprocess.py", "wait (subprocess.py"),
    "time.sleep": ("sleep",),
    "hypothesis": ("run_engine (hypothesis/core.py",),
    "train_epoch": ("train_epoch (tinyimagenet_resnet/training/engine.py",),
    "validate": ("validate (tinyimagenet_resnet/training/engine.py",),
    "preflight": ("preflight (tinyimagenet_resnet/config/loader.py",),
    "report build": ("build (tinyimagenet_resnet/reporting/report.py",),
    "range_test": ("range_test (tinyimagenet_resnet/training/lr_range.py",),
    "optuna": ("optimize (optuna/study/study.py", "_run_trial (optuna/study/_optimize.py"),
    "ray": ("init (ray/_private/worker.py",),
}


for _, frames, n in samples():
    total += n
    if not frames:
        continue
    leaf = frames[-1]
    m = re.search(r"\((?:.*?site-packages/|.*?/lib/python3.11/|/tmp/ci3/repo/)?([^/ ]+)", leaf)
    lib = m.group(1) if m else leaf
    self_lib[lib] += n
    leaf_fn[re.sub(r":\d+\)$", ")", re.sub(r"\(.*?(site-packages|python3.11|repo)/", "(", leaf))] += n
    seen = set()
    for k, pats in KEYS.items():
        if any(any(p in f for f in frames) for p in pats):
            incl[k] += n
print("total samples", total, "= %.0f s at 50 Hz" % (total / 50))
print("--- self by library of the leaf frame")
for k, v in self_lib.most_common(25):
    print(f"{v / 50:8.1f} s {100 * v / total:5.1f}%  {k}")
print("--- inclusive")
for k, v in incl.most_common():
    print(f"{v / 50:8.1f} s {100 * v / total:5.1f}%  {k}")
print("--- leaf functions")
for k, v in leaf_fn.most_common(40):
    print(f"{v / 50:8.1f} s {100 * v / total:5.1f}%  {k[:150]}")
