"""The `trainer` group: the device, precision, length, budget, validation and progress of a training run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Union

from ..checks import (
    INT_GE1,
    at_least,
    device_name,
    fractions_ok,
    in_range,
    listed,
    one_of,
    optional,
    positive,
    sizes_ok,
    spec,
)
from ..choices import Precision


@dataclass
class TrainerConfig:
    epochs: int = spec(*INT_GE1)
    device: str = spec("auto|cpu|cuda|cuda:N|mps", device_name)
    precision: Precision = spec(listed(Precision))
    channels_last: bool = spec("true|false")
    compile: Union[bool, str] = spec("auto|true|false", one_of("auto", True, False))
    loss_scale: float = spec("a number > 0", positive)
    progress_every_s: float = spec("a number > 0 (seconds)", positive)
    deterministic: bool = spec("true|false")
    label_smoothing: float = spec("a number in [0, 1)", in_range(0, 1))
    progress_bar: Union[bool, str] = spec("auto|true|false", one_of("auto", True, False))
    log_every_n_steps: int = spec(*INT_GE1)
    val_every_n_epochs: int = spec(*INT_GE1)
    limit_train_batches: int | None = spec("null or an integer >= 1", optional(at_least(1)))
    jobs_per_gpu: int = spec(*INT_GE1)
    budget_minutes: float | None = spec("null (no budget) or a number of minutes > 0", optional(positive))
    budget_evals: int = spec("an integer >= 1 (validations of a budgeted run, the last at its end)", at_least(1))
    interim_val_images: int | None = spec(
        "null (every validation on the whole val split) or an integer >= 1", optional(at_least(1))
    )
    train_sizes: List[int] = spec("train resolutions in [16, 128], e.g. [32, 48, 64]", sizes_ok)
    train_size_fractions: List[float] = spec(
        "one share of the steps per train size, each > 0, summing to 1, e.g. [0.5, 0.3, 0.2]", fractions_ok
    )
    ema_decay: float | None = spec("null (no weight average) or a number in (0, 1)", optional(in_range(0, 1, True)))
    tta_flip: bool = spec("true|false")
