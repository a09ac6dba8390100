"""The JSON files a run writes, one dataclass each, with their round-trip: every writer builds the record and calls
`write`, every reader (`Run.read`, the report, the sweep summary) gets the record back with `read`. Reading tolerates
files from older versions (missing keys take their defaults, unknown keys are ignored; artifacts/legacy.py reads
what 0.1.0 runs wrote otherwise), so old run directories still load.

| file | record | written by |
|---|---|---|
| `metrics.json` | `TrainMetrics` | task=train (every epoch, and at the end) |
| `metrics.json` | `EvalMetrics` | task=evaluate |
| `split.json` | `SplitSummary` | every task that loads data |
| `inspect.json` | `InspectRecord` | task=inspect |
| `baselines.json` | `BaselinesRecord` | task=baselines |
| `lr_find.json` | `LRFindRecord` | task=lr_find |

A sweep's `summary.csv` rows are `artifacts.summary_row.SummaryRow`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

from . import legacy, names
from .files import read_json, write_json

R = TypeVar("R", bound="Record")


class Record:
    """Base of the JSON records: `FILE` is the file name inside a run directory."""

    FILE: ClassVar[str] = ""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls: type[R], data: dict) -> R:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def write(self, run_dir: Path | str) -> Path:
        return write_json(Path(run_dir) / self.FILE, self.to_json())

    @classmethod
    def read(cls: type[R], run_dir: Path | str) -> R | None:
        data = read_json(Path(run_dir) / cls.FILE)
        return None if data is None else cls.from_json(data)


# ------------------------------------------------------------------------------------------------ metrics
@dataclass
class SplitMetrics:
    """One pass over a split: mean loss, top-1, top-5, macro-F1 (and the number of images, where known)."""

    loss: float
    accuracy: float
    top5: float
    f1_macro: float
    n: int | None = None

    def tags(self, split: str) -> dict[str, float]:
        return {names.split_tag(split, k): getattr(self, k) for k in ("loss", "accuracy", "top5", "f1_macro")}


# field of EpochRow / Best -> its tag (and JSON key)
_ROW_TAGS = {
    "train_loss": names.TRAIN_LOSS,
    "train_accuracy": names.TRAIN_ACC,
    "val_loss": names.VAL_LOSS,
    "val_accuracy": names.VAL_ACC,
    "val_top5": names.VAL_TOP5,
    "val_f1_macro": names.VAL_F1,
    "train_size": names.TRAIN_SIZE,
}
_TAG_FIELDS = {tag: f for f, tag in _ROW_TAGS.items()}


def _to_tags(obj) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is not None or f.name == "epoch":
            out[_ROW_TAGS.get(f.name, f.name)] = value
    return out


def _from_tags(cls, data: dict):
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {_TAG_FIELDS.get(k, k): v for k, v in data.items()}
    return cls(**{k: v for k, v in kwargs.items() if k in known})


@dataclass
class EpochRow:
    """One epoch of training; `val_*` are None on epochs without validation (trainer.val_every_n_epochs)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    lr: float
    epoch_time_s: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_top5: float | None = None
    val_f1_macro: float | None = None
    val_images: int | None = None  # how many val images the val_* metrics saw (a subset between epochs, if asked)
    step: int | None = None  # global optimiser step at the end of the epoch
    wall_s: float | None = None  # seconds since the command (or sweep job) started, at the end of the epoch
    train_size: int | None = None  # the train resolution at the end of the epoch (progressive resizing)

    @property
    def validated(self) -> bool:
        return self.val_accuracy is not None

    def with_val(self, m: SplitMetrics | None) -> EpochRow:
        if m is None:
            return self
        return dataclasses.replace(
            self, val_loss=m.loss, val_accuracy=m.accuracy, val_top5=m.top5, val_f1_macro=m.f1_macro, val_images=m.n
        )

    def scalars(self) -> dict[str, float]:
        """The TensorBoard scalars of the epoch (train/*, val/*, lr)."""
        return {k: v for k, v in _to_tags(self).items() if k in names.EPOCH_TAGS}

    def finite(self) -> bool:
        return all(math.isfinite(v) for v in self.scalars().values())

    def to_json(self) -> dict:
        return _to_tags(self)

    @classmethod
    def from_json(cls, data: dict) -> EpochRow:
        return _from_tags(cls, data)


@dataclass
class Best:
    """The epoch with the best val top-1 so far (epoch None: no validation yet)."""

    epoch: int | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_top5: float | None = None
    val_f1_macro: float | None = None

    @classmethod
    def of(cls, row: EpochRow) -> Best:
        return cls(row.epoch, row.val_loss, row.val_accuracy, row.val_top5, row.val_f1_macro)

    def beaten_by(self, row: EpochRow) -> bool:
        return row.validated and (self.val_accuracy is None or row.val_accuracy > self.val_accuracy)

    def to_json(self) -> dict:
        return _to_tags(self)

    @classmethod
    def from_json(cls, data: dict | None) -> Best:
        return cls() if legacy.no_best(data) else _from_tags(cls, data)


def progress_to_json(obj) -> dict:
    """A dataclass with `best` and `history` (TrainState, TrainMetrics) as JSON: every field, rows by metric name."""
    out = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    out.update(best=obj.best.to_json(), history=[r.to_json() for r in obj.history])
    return out


def progress_from_json(cls, data: dict):
    """The inverse of progress_to_json; keys the class does not know are ignored, missing ones take defaults."""
    known = {f.name for f in dataclasses.fields(cls)} - {"best", "history"}
    return cls(
        **{k: v for k, v in data.items() if k in known},
        best=Best.from_json(data.get("best")),
        history=[EpochRow.from_json(r) for r in data.get("history") or []],
    )


@dataclass
class TrainMetrics(Record):
    """`metrics.json` of a training run; rewritten after every epoch, so it also describes an unfinished run."""

    FILE: ClassVar[str] = "metrics.json"
    KIND: ClassVar[str] = "train"
    status: str = "running"  # running | ok | failed | diverged | interrupted | pruned
    epochs_run: int = 0
    best: Best = field(default_factory=Best)
    history: list[EpochRow] = field(default_factory=list)
    initial_loss: float | None = None
    ln_num_classes: float | None = None
    wall_time_s: float = 0.0
    run_name: str | None = None
    params: int | None = None
    split: str | None = None  # the split fingerprint
    hparams: dict = field(default_factory=dict)
    precision: str | None = None  # what trainer.precision resolved to: fp32, bf16 or fp16 autocast
    device: str | None = None
    plan: dict | None = None  # a time-budgeted run's plan (training/budget.py BudgetPlan)
    actual: dict | None = None  # what the run did: wall seconds since its start, optimiser steps

    @property
    def final(self) -> EpochRow | None:
        return self.history[-1] if self.history else None

    def to_json(self) -> dict:
        out = {"kind": self.KIND, **progress_to_json(self)}
        out.update(final=self.final.to_json() if self.final else {}, wall_time_s=round(self.wall_time_s, 3))
        return out

    @classmethod
    def from_json(cls, data: dict) -> TrainMetrics:
        return progress_from_json(cls, data)


@dataclass
class EvalMetrics(Record):
    """`metrics.json` of task=evaluate: val and test side by side, the most confused class pairs."""

    FILE: ClassVar[str] = "metrics.json"
    KIND: ClassVar[str] = "evaluate"
    checkpoint: str
    epoch: int
    trained_config: dict
    val: SplitMetrics
    test: SplitMetrics
    top_confusions: list[dict] = field(default_factory=list)

    @property
    def gap_val_minus_test(self) -> dict:
        return {k: getattr(self.val, k) - getattr(self.test, k) for k in ("accuracy", "top5", "f1_macro", "loss")}

    def to_json(self) -> dict:
        return {
            "kind": self.KIND,
            "checkpoint": self.checkpoint,
            "epoch": self.epoch,
            "trained_config": self.trained_config,
            "val": dataclasses.asdict(self.val),
            "test": dataclasses.asdict(self.test),
            "top_confusions": self.top_confusions,
            "gap_val_minus_test": self.gap_val_minus_test,
        }

    @classmethod
    def from_json(cls, data: dict) -> EvalMetrics:
        return cls(
            checkpoint=data["checkpoint"],
            epoch=data["epoch"],
            trained_config=data.get("trained_config", {}),
            val=SplitMetrics(**data["val"]),
            test=SplitMetrics(**data["test"]),
            top_confusions=data.get("top_confusions", []),
        )


def read_metrics(run_dir: Path | str) -> TrainMetrics | EvalMetrics | None:
    """A run's metrics.json as the record its task wrote (0.1.0 runs have no `kind`: legacy.metrics_kind)."""
    data = read_json(Path(run_dir) / "metrics.json")
    if data is None:
        return None
    kind = data.get("kind") or legacy.metrics_kind(data)
    return EvalMetrics.from_json(data) if kind == "evaluate" else TrainMetrics.from_json(data)


# ------------------------------------------------------------------------------------------------ other records
@dataclass
class SplitSummary(Record):
    """`split.json`: where the data came from, the split sizes and the fingerprints of their indices."""

    FILE: ClassVar[str] = "split.json"
    source: str
    seed: int
    test_fraction: float
    sizes: dict[str, int]
    fingerprints: dict[str, str]
    fingerprint: str
    stratified: bool = True


@dataclass
class InspectRecord(Record):
    """`inspect.json` of task=inspect."""

    FILE: ClassVar[str] = "inspect.json"
    sizes: dict[str, int]
    split: dict
    class_counts: dict[str, dict]
    image_modes: dict[str, dict]
    image_sizes: dict[str, dict]
    grayscale_share: float
    train_stats: dict
    batch: dict
    parameters: int
    initial_loss: dict
    gradients: dict


@dataclass
class BaselinesRecord(Record):
    """`baselines.json` of task=baselines: per split, the majority / uniform / class-prior scores."""

    FILE: ClassVar[str] = "baselines.json"
    val: dict
    test: dict
    num_classes: int


@dataclass
class LRFindRecord(Record):
    """`lr_find.json` of task=lr_find."""

    FILE: ClassVar[str] = "lr_find.json"
    suggested_lr: float | None
    stable_window: list[float] | None
    iterations: int
    stopped_on_divergence: bool
    min_smoothed_loss: float | None
    lr_at_min_loss: float | None
    min_lr: float
    max_lr: float
    num_iters: int
    optimizer: str
    weight_decay: float
    batch_size: int
