"""The closed sets of names a config key takes: string enums, and the activations and objectives lists, which the
schema checks against and the packages that consume the config build from."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A string enum whose str() and format() are its value, so `f"{cfg.task}"` reads `train`."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Task(Choice):
    train = "train"
    evaluate = "evaluate"
    inspect = "inspect"
    baselines = "baselines"
    lr_find = "lr_find"
    protocol = "protocol"


class Precision(Choice):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Pipeline(Choice):
    fast = "fast"
    reference = "reference"


class Scale(Choice):
    """How much of the course `task=protocol` runs: smoke (minutes on a CPU), cpu (a few hours on a CPU), full (the
    course on full data, a GPU)."""

    smoke = "smoke"
    cpu = "cpu"
    full = "full"


class Pruner(Choice):
    """optuna.pruner: Optuna's MedianPruner, ThresholdPruner, or none."""

    median = "median"
    threshold = "threshold"
    none = "none"


class LRRule(Choice):
    """data.auto_batch.lr_rule: how optim.lr scales from data.auto_batch.lr_reference to the batch found."""

    sqrt = "sqrt"
    linear = "linear"
    none = "none"


# model.activation: the names model.ACTIVATIONS builds (tests/test_model.py checks that both agree)
ACTIVATIONS = ("relu", "gelu", "selu", "leaky_relu", "elu")

# optuna.objectives: what a trial returns, one per hydra.sweeper.direction: val_top1 (best val top-1), params_m
# (parameters in millions), epoch_s (mean seconds per training epoch)
OBJECTIVES = ("val_top1", "params_m", "epoch_s")
