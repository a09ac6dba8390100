"""How long each step of the protocol will take on this machine: its planned work counted in train steps of its own
model and batch, one model's step timed here at the start (a few real steps, a few seconds) and the others scaled
from it by their relative cost, plus the start-up of the step's process; revised as steps finish (the
measured/estimated ratio of the finished ones scales the rest).

The console then says where the protocol is: `protocol: step 4/9 lr_find (est. 1 min 10 s; protocol est. 6 min 30 s
left)`.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from .. import STARTED_AT
from ..config.loader import compose_config
from ..config.overrides import override_key
from ..config.paths import config_dir
from ..data.source import split_files, split_patterns
from ..data.splits import carved_test_count
from ..model import ResNet
from ..sweeps.grid import grid_jobs
from ..training.memory import train_trial
from ..training.runtime import resolve_precision, select_device
from .protocol_scales import SWEEPS

FULL = {"train": 90_000, "val": 10_000, "test": 10_000}  # Tiny ImageNet-200's splits (train after the test carve)
EVAL_COST = 1 / 3  # an image's forward pass, as a share of its train step (forward + backward + update)
FIXED_S = {"inspect": 30.0, "baselines": 2.0, "report": 8.0}  # work besides train steps: decoding, figures
JOB_START_S = 1.5  # a grid job in the sweep's process (no new interpreter)
COST_FREE = ("optim.lr", "optim.weight_decay", "model/dropout", "model.dropout", "seed")  # same cost whatever value
# what a single step adds to its scale's settings, as composed for its cost (the checkpoint to evaluate is not known)
STEP_TASKS = {"inspect": ["task=inspect"], "baselines": ["task=baselines"], "lr_find": ["task=lr_find"],
              "overfit": ["experiment=overfit_small"], "evaluate": []}  # fmt: skip


@dataclass
class StepWork:
    """A step's planned work: train steps of `model` (blocks, widths) at `batch`, plus fixed seconds and processes."""

    steps: float = 0.0
    model: tuple = ((2, 2, 2), (64, 128, 256))
    batch: int = 128
    fixed_s: float = 0.0
    processes: int = 1
    jobs: int = 0


@dataclass
class ProtocolClock:
    """The estimates of every step, revised as they finish: each step's train-step seconds scale by the
    measured/estimated ratio of the steps finished so far (their fixed seconds taken out); fixed seconds (start-up,
    decoding, figures) are not scaled, so a slow first decode does not inflate every training ahead."""

    train_s: dict[str, float]  # step -> seconds of its train steps, as timed at the start
    fixed_s: dict[str, float]  # step -> its other seconds
    actual: dict[str, float] = field(default_factory=dict)

    @property
    def estimates(self) -> dict[str, float]:
        return {s: self.train_s[s] + self.fixed_s[s] for s in self.train_s}

    def ratio(self) -> float:
        """Measured / estimated train seconds over the finished steps that train (1 until one has finished),
        within [1/3, 3]."""
        done = [s for s in self.actual if self.train_s.get(s, 0.0) > 0]
        est = sum(self.train_s[s] for s in done)
        if est <= 0:
            return 1.0
        spent = sum(max(0.0, self.actual[s] - self.fixed_s[s]) for s in done)
        return min(3.0, max(1 / 3, spent / est))

    def of(self, step: str) -> float:
        return self.ratio() * self.train_s.get(step, 0.0) + self.fixed_s.get(step, 0.0)

    def left(self, steps: list[str]) -> float:
        return sum(self.of(s) for s in steps)


@functools.cache
def _local_sizes(root: str, train_files: str | None, val_files: str | None, test_fraction: float) -> dict[str, int]:
    import pyarrow.parquet as pq  # lazy: loaded with datasets, only for a local copy

    files = split_files(Path(root), split_patterns(train_files, val_files))
    rows = {split: sum(pq.read_metadata(f).num_rows for f in found) for split, found in files.items()}
    if not rows["train"] or not rows["valid"]:
        raise ValueError(f"no parquet rows under {root}")
    test = carved_test_count(rows["train"], test_fraction)
    return {"train": rows["train"] - test, "val": rows["valid"], "test": test}


def split_sizes(data) -> dict[str, int]:
    """The train/val/test sizes before any subset: a local copy's, counted from its parquet footers (a one-shard copy
    or a dataset of a few hundred images is estimated as it is); Tiny ImageNet-200's for the hub, or where the footers
    cannot be read (the step itself then says what is wrong)."""
    if data.get("path") is None:
        return FULL
    root = str(Path(str(data.path)).expanduser().resolve())  # as the step reads it, from the same working folder
    try:
        return _local_sizes(root, data.get("train_files"), data.get("val_files"), float(data.test_fraction))
    except (OSError, ValueError):  # no such folder, no rows, a file pyarrow cannot read (ArrowInvalid)
        return FULL


def subset(cfg, key: str, split: str) -> int:
    value, size = cfg.data.get(key), split_sizes(cfg.data)[split]
    return min(int(value), size) if value else size


def batch_of(cfg) -> int:
    """data.batch_size, or what data.batch_size=auto starts its search from (its value is known only then)."""
    batch = cfg.data.batch_size
    return int(batch) if batch != "auto" else int(cfg.data.auto_batch.max)


def epoch_steps(cfg) -> float:
    steps = math.ceil(subset(cfg, "train_subset", "train") / batch_of(cfg))
    limit = cfg.trainer.get("limit_train_batches")
    return min(steps, int(limit)) if limit else steps


def train_work(cfg) -> tuple[float, float]:
    """(train steps, eval images converted to train steps) of a training run."""
    epochs = int(cfg.trainer.epochs)
    batch = batch_of(cfg)
    every = int(cfg.trainer.val_every_n_epochs)
    vals = sum(1 for e in range(epochs) if e + 1 == epochs or (e + 1) % every == 0)
    val_images = subset(cfg, "val_subset", "val")
    return epochs * epoch_steps(cfg), vals * val_images * EVAL_COST / batch


def model_of(cfg) -> tuple:
    return tuple(int(b) for b in cfg.model.blocks), tuple(int(w) for w in cfg.model.widths)


def work_of(name: str, cfgs: list) -> StepWork:
    """The planned work of a step, from the configs of its jobs (one for a single run, one per job of a grid)."""
    cfg = cfgs[0]
    batch = batch_of(cfg)
    if name in ("lr_wd", "blocks_dropout"):
        steps, fixed = 0.0, len(cfgs) * JOB_START_S
        for job in cfgs:  # a grid's jobs differ in their model: count each at its own cost, in units of the first's
            if job.trainer.get("budget_minutes"):  # a job of a time budget takes its budget
                fixed += 60.0 * float(job.trainer.budget_minutes)
                continue
            train, val = train_work(job)
            steps += (train + val) * model_cost(model_of(job)) / model_cost(model_of(cfg))
        return StepWork(steps, model_of(cfg), batch, fixed, 1, len(cfgs))
    if name == "lr_find":
        return StepWork(float(cfg.lr_find.num_iters), model_of(cfg), batch)
    if name in ("overfit", "train"):
        if cfg.trainer.get("budget_minutes"):
            return StepWork(0.0, model_of(cfg), batch, 60.0 * float(cfg.trainer.budget_minutes))
        train, val = train_work(cfg)
        return StepWork(train + val, model_of(cfg), batch)
    if name == "evaluate":
        images = subset(cfg, "val_subset", "val") + subset(cfg, "test_subset", "test")
        return StepWork(images * EVAL_COST / batch, model_of(cfg), batch)
    return StepWork(0.0, model_of(cfg), batch, FIXED_S.get(name, 5.0), 0 if name == "report" else 1)


def model_cost(model: tuple) -> float:
    """A model's relative cost per image: residual blocks weighted by their stage's width squared over its area
    (each stage halves the resolution, doubles the width in the course's model)."""
    blocks, widths = model
    return sum(b * w * w / 4**i for i, (b, w) in enumerate(zip(blocks, widths, strict=True))) + widths[0] * 3 / 9


def time_step(model: tuple, batch: int, device, amp_dtype, channels_last: bool, repeats: int = 1) -> float:
    """Seconds of one real train step of `model` at `batch` on this machine (random images; 2 warm-up steps, then
    2 x `repeats` timed)."""
    net = ResNet(model[0], model[1], dropout=0.1, num_classes=200).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    trial = train_trial(net, lambda p: torch.optim.AdamW(p, lr=1e-3), device, amp_dtype, channels_last, 200)
    trial(batch)  # warm-up (2 steps)
    t0 = time.perf_counter()
    for _ in range(repeats):
        trial(batch)
    seconds = (time.perf_counter() - t0) / (repeats * 2)  # train_trial runs 2 steps
    del net, trial
    if device.type == "cuda":  # the steps' children need the device's memory, not this process's cache
        torch.cuda.empty_cache()
    return seconds


def estimate(works: dict[str, StepWork], startup_s: float, timer) -> ProtocolClock:
    """The clock of the steps in `works`. `timer(model, batch)` times one train step of one model, once: the model
    and batch of the step with the most train work (the training, in a protocol); another step's train step is that
    time scaled by its model's relative cost (`model_cost`) and its batch size."""
    trained = [w for w in works.values() if w.steps]
    train, fixed = {}, {}
    if trained:
        ref = max(trained, key=lambda w: w.steps * model_cost(w.model) * w.batch)
        per_image = timer(ref.model, ref.batch) / (model_cost(ref.model) * ref.batch)
    for name, w in works.items():
        train[name] = w.steps * per_image * model_cost(w.model) * w.batch if w.steps else 0.0
        fixed[name] = w.fixed_s + w.processes * startup_s
    return ProtocolClock(train, fixed)


def grid_configs(jobs: list[list[str]], compose) -> list:
    """The config of each job of a grid for its cost: jobs that differ only in COST_FREE keys cost the same, so
    one of them is composed (~0.8 s a job) and stands for the others."""
    composed: dict[tuple, object] = {}
    out = []
    for job in jobs:
        key = tuple(o for o in job if override_key(o) not in COST_FREE)
        if key not in composed:
            composed[key] = compose(job)
        out.append(composed[key])
    return out


def sweep_params(name: str) -> dict:
    """The values a grid's YAML sweeps over (`hydra.sweeper.params` of conf/sweep/<name>.yaml)."""
    data = yaml.safe_load((Path(config_dir()) / "sweep" / f"{name}.yaml").read_text()) or {}
    return {k: str(v) for k, v in (((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}).items()}


def step_configs(name: str, args: list[str]) -> list:
    """The configs of a step's jobs, composed from the step's arguments: one for a single run, one per job of a
    grid (`grid_configs`)."""
    if name in SWEEPS:
        return grid_configs(grid_jobs(sweep_params(name), [f"sweep={name}", *args]), compose_config)
    return [compose_config([*STEP_TASKS.get(name, []), *args])]


def plan_clock(
    steps: list[str],
    args_of: Callable[[str], list[str]],
    device_name,
    precision,
    warm_imports_s: Callable[[], float | None] = lambda: None,
) -> ProtocolClock:
    """The clock of `steps` (each composed from `args_of(step)`), with one train step timed on `device_name` at
    `precision` (trainer.device and trainer.precision). A step's start-up is this process's (imports, composing),
    less `warm_imports_s()`: the imports a step forked from the warm server does not repeat (protocol_warm.py; None
    where the steps are new interpreters)."""
    startup = time.time() - STARTED_AT
    works = {name: work_of(name, step_configs(name, args_of(name))) for name in steps}
    warm = warm_imports_s()  # called once composing is done: the server's imports ran meanwhile
    startup = max(1.0, startup - warm) if warm is not None else max(2.0, startup)
    device = select_device(device_name)
    amp = resolve_precision(precision, device)

    def timer(model, batch):
        return time_step(model, batch, device, amp, device.type != "cpu" or min(model[1]) > 8)

    return estimate(works, startup, timer)
