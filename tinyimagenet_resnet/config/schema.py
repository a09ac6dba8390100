"""The config schema: one dataclass per config node, registered in Hydra's ConfigStore.

A field declares its type and, in `spec(...)`, the range a type cannot express (`check`) with the words of the
one-line error (`allowed`). Values live in the YAML files of `conf/` only: each YAML extends its schema through its
defaults list (`- /schema/<group>/<name>@_here_`), so a wrong type or an unknown key fails at composition and
`config.validate` checks the ranges before any work. Adding an optimizer or a scheduler is one dataclass here
plus one YAML file, and its entry in training/optim.py or training/schedules.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, ClassVar, List, Union

from omegaconf import MISSING


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
    smoke = "smoke"
    cpu = "cpu"
    full = "full"


class Pruner(Choice):
    median = "median"
    threshold = "threshold"
    none = "none"


def spec(
    allowed: str | Callable[[], str], check: Callable[[Any], bool] | None = None, default=MISSING, finite: bool = True
):
    """A schema field: `allowed` is what the one-line error says; `check` the range test (None: the type says it);
    `finite`: whether an infinite or NaN number is refused (every key so far: none has a use for one)."""
    metadata = {"allowed": allowed, "check": check, "finite": finite}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# ------------------------------------------------------------------------------------------------ checks
def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def positive(v) -> bool:
    return v > 0


def non_negative(v) -> bool:
    return v >= 0


def at_least(n: float) -> Callable[[Any], bool]:
    return lambda v: v >= n


def in_range(lo: float, hi: float, lo_open: bool = False, hi_open: bool = True) -> Callable[[Any], bool]:
    return lambda v: (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def n_items(n: int, item: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: len(v) == n and all(_num(x) and item(x) for x in v)


def one_of(*values) -> Callable[[Any], bool]:
    return lambda v: any(v is x or (type(v) is type(x) and v == x) for x in values)


def device_name(v) -> bool:
    return v in ("auto", "cpu", "mps", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())


def min_max_pair(lo: float, hi: float | None) -> Callable[[Any], bool]:
    """[min, max] with lo < min <= max (<= hi)."""
    return lambda v: len(v) == 2 and v[0] > lo and v[0] <= v[1] and (hi is None or v[1] <= hi)


def _activations() -> str:
    from ..model import ACTIVATIONS

    return "|".join(ACTIVATIONS)


def activation_name(v) -> bool:
    from ..model import ACTIVATIONS

    return v in ACTIVATIONS


def sizes_ok(v) -> bool:
    return len(v) >= 1 and all(isinstance(s, int) and 16 <= s <= 128 for s in v)


def fractions_ok(v) -> bool:
    return len(v) >= 1 and all(_num(f) and f > 0 for f in v) and abs(sum(v) - 1) < 1e-6


def _folder_name(v) -> bool:
    return v is None or (isinstance(v, str) and v.strip() not in ("", ".", "..") and "/" not in v and "\\" not in v)


INT_GE1 = ("an integer >= 1", at_least(1))
OPT_INT_GE1 = ("null or an integer >= 1", optional(at_least(1)))


# ------------------------------------------------------------------------------------------------ data
@dataclass
class RandomResizedCropConfig:
    enabled: bool = spec("true|false")
    scale: List[float] = spec("[min, max] with 0 < min <= max <= 1", min_max_pair(0, 1))
    ratio: List[float] = spec("[min, max] with 0 < min <= max", min_max_pair(0, None))


@dataclass
class ColorJitterConfig:
    enabled: bool = spec("true|false")
    brightness: float = spec("a number >= 0", non_negative)
    contrast: float = spec("a number >= 0", non_negative)
    saturation: float = spec("a number >= 0", non_negative)
    hue: float = spec("a number in [0, 0.5]", in_range(0, 0.5, hi_open=False))


@dataclass
class AugmentConfig:
    enabled: bool = spec("true|false")
    hflip: float = spec("a probability in [0, 1]", in_range(0, 1, hi_open=False))
    random_resized_crop: RandomResizedCropConfig = field(default_factory=RandomResizedCropConfig)
    color_jitter: ColorJitterConfig = field(default_factory=ColorJitterConfig)


def _batch(v) -> bool:
    return v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)


class LRRule(Choice):
    sqrt = "sqrt"
    linear = "linear"
    none = "none"


@dataclass
class AutoBatchConfig:
    """data.batch_size=auto: the largest batch that fits, halving from `max`; optim.lr is the LR for a batch of
    `lr_reference`, scaled to the batch found by `lr_rule`."""

    max: int = spec(*INT_GE1)
    lr_reference: int = spec(*INT_GE1)
    lr_rule: LRRule = spec("sqrt|linear|none")


@dataclass
class DataConfig:
    name: str = spec("a name")
    hub_name: str = spec("a hub dataset id, e.g. zh-plus/tiny-imagenet")
    path: str | None = spec("null (the hub) or a folder path")
    train_files: str | None = spec("null or a glob relative to data.path")
    val_files: str | None = spec("null or a glob relative to data.path")
    num_classes: int = spec("an integer >= 2", at_least(2))
    test_fraction: float = spec("a number in (0, 1)", in_range(0, 1, lo_open=True))
    train_subset: int | None = spec(*OPT_INT_GE1)
    val_subset: int | None = spec(*OPT_INT_GE1)
    test_subset: int | None = spec(*OPT_INT_GE1)
    stratify_subsets: bool = spec("true|false")
    batch_size: Union[int, str] = spec("an integer >= 1, or auto (the largest that fits: data.auto_batch)", _batch)
    auto_batch: AutoBatchConfig = field(default_factory=AutoBatchConfig)
    eval_batch_size: int | None = spec("null (= data.batch_size) or an integer >= 1", optional(at_least(1)))
    pipeline: Pipeline = spec("fast|reference")
    cache_dir: str | None = spec("null or a folder")
    device_resident: Union[bool, str] = spec("auto|true|false", one_of("auto", True, False))
    num_workers: int = spec("an integer >= 0", non_negative)
    mean: List[float] = spec("three numbers (one per RGB channel)", n_items(3, lambda x: True))
    std: List[float] = spec("three positive numbers (one per RGB channel)", n_items(3, positive))
    augment: AugmentConfig = field(default_factory=AugmentConfig)


# ------------------------------------------------------------------------------------------------ model
@dataclass
class ModelConfig:
    name: str = spec("resnet", one_of("resnet"))
    blocks: List[int] = spec("three positive integers, e.g. [2,2,2] (or model/blocks=b222|b333)", n_items(3, positive))
    widths: List[int] = spec("three positive integers, e.g. [64,128,256]", n_items(3, positive))
    dropout: float = spec("a number in [0, 1) (or model/dropout=p00|p01|p03)", in_range(0, 1))
    activation: str = spec(_activations, activation_name)
    batch_norm: bool = spec("true|false")


# ------------------------------------------------------------------------------------------------ optimizers
@dataclass
class OptimConfig:
    """Base of the `optim` group; each subclass is one optimizer (its NAME is its YAML file's name)."""

    NAME: ClassVar[str] = ""
    name: str = spec(lambda: "|".join(OPTIMIZERS) + " (optim=" + "|".join(OPTIMIZERS) + ")", lambda v: v in OPTIMIZERS)
    lr: float = spec("a number > 0", positive)
    weight_decay: float = spec("a number >= 0", non_negative)


BETAS = ("two numbers in [0, 1), e.g. [0.9, 0.999]", n_items(2, in_range(0, 1)))


@dataclass
class AdamWConfig(OptimConfig):
    """torch.optim.AdamW: decoupled weight decay."""

    NAME: ClassVar[str] = "adamw"
    betas: List[float] = spec(*BETAS)


@dataclass
class AdamConfig(AdamWConfig):
    """torch.optim.Adam: L2 weight decay added to the gradient."""

    NAME: ClassVar[str] = "adam"


@dataclass
class SGDConfig(OptimConfig):
    NAME: ClassVar[str] = "sgd"
    momentum: float = spec("a number in [0, 1)", in_range(0, 1))
    nesterov: bool = spec("true|false")


OPTIMIZERS: dict[str, type[OptimConfig]] = {c.NAME: c for c in (AdamWConfig, AdamConfig, SGDConfig)}


# ------------------------------------------------------------------------------------------------ schedulers
@dataclass
class SchedulerConfig:
    """Base of the `scheduler` group; each subclass is one LR schedule, whose closed form (the LR of optimiser step
    k of `total`) is in training/schedules.py under its NAME. Closed form, so that a run's length may change while
    it runs (a time budget re-planned, a finished run extended) and a resumed run jumps straight to its step."""

    NAME: ClassVar[str] = ""
    name: str = spec(
        lambda: "|".join(SCHEDULERS) + " (scheduler=" + "|".join(SCHEDULERS) + ")", lambda v: v in SCHEDULERS
    )


@dataclass
class NoSchedulerConfig(SchedulerConfig):
    """A constant LR (no per-step scheduler)."""

    NAME: ClassVar[str] = "none"


@dataclass
class CosineConfig(SchedulerConfig):
    """Cosine from lr to eta_min, reached on the last step (the step index total - 1) and kept after it."""

    NAME: ClassVar[str] = "cosine"
    eta_min: float = spec("a number >= 0", non_negative)


@dataclass
class OneCycleConfig(SchedulerConfig):
    """Cosine up from lr/25 to lr over pct_start of the steps, then cosine down to lr/2.5e5 on the last step, as
    torch's OneCycleLR (whose own class divides by zero below ~5 steps and cannot be stepped past its length, so an
    extended run could not continue); momentum is not cycled."""

    NAME: ClassVar[str] = "onecycle"
    pct_start: float = spec("a number in (0, 1)", in_range(0, 1, lo_open=True))


@dataclass
class LinearConfig(SchedulerConfig):
    """Linear warm-up over `warmup_fraction` of the steps, then linear decay to zero on the last step (the schedule
    budgeted-training studies find best when the budget is known in advance)."""

    NAME: ClassVar[str] = "linear"
    warmup_fraction: float = spec("a number in [0, 1)", in_range(0, 1))


SCHEDULERS: dict[str, type[SchedulerConfig]] = {
    c.NAME: c for c in (NoSchedulerConfig, CosineConfig, OneCycleConfig, LinearConfig)
}


# ------------------------------------------------------------------------------------------------ trainer
@dataclass
class TrainerConfig:
    epochs: int = spec(*INT_GE1)
    device: str = spec("auto|cpu|cuda|cuda:N|mps", device_name)
    precision: Precision = spec("auto|fp32|bf16|fp16")
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


# ------------------------------------------------------------------------------------------------ tasks
@dataclass
class LRFindConfig:
    min_lr: float = spec("a number > 0", positive)
    max_lr: float = spec("a number > 0 (and > lr_find.min_lr)", positive)
    num_iters: int = spec("an integer >= 2", at_least(2))
    beta: float = spec("a number in [0, 1)", in_range(0, 1))
    diverge_factor: float = spec("a number > 1", lambda v: v > 1)
    min_drop: float = spec("a number in [0, 1)", in_range(0, 1))


@dataclass
class ProtocolConfig:
    """`task=protocol`: every step of the course protocol in order, its state and runs in `<dir>/<name>/`."""

    name: str = spec(
        "a folder name (letters, digits, '.', '_', '-'; not only dots)",
        lambda v: bool(v) and all(c.isalnum() or c in "._-" for c in v) and set(v) != {"."},
    )
    dir: str = spec("a folder")
    scale: Scale = spec("smoke|cpu|full")
    lang: List[str] = spec("a list of en|fr", lambda v: len(v) >= 1 and all(x in ("en", "fr") for x in v))


@dataclass
class ReportConfig:
    """Section 0 of the report written by `task=protocol` (null: a ✏️ prompt to fill in)."""

    author: str | None = spec("null or a string")
    repo: str | None = spec("null or a string (the project's repository URL)")


@dataclass
class EvaluateConfig:
    top_confusions: int = spec("an integer >= 0", non_negative)


@dataclass
class InspectConfig:
    stats_images: int | None = spec("null (all) or an integer >= 1", optional(at_least(1)))
    grid_images: int = spec(*INT_GE1)


@dataclass
class TensorBoardLoggerConfig:
    """`logger=tensorboard`: events in the run directory (`<task>-<run name>/`)."""


@dataclass
class CsvLoggerConfig:
    """`logger=csv`: `<run>/csv/metrics.csv`, hparams.json and figures/."""


@dataclass
class MlflowLoggerConfig:
    """`logger=mlflow` (pip install -e ".[mlflow]")."""

    tracking_uri: str | None = spec("null (a SQLite store beside the runs) or any MLflow tracking URI")
    experiment: str = spec("an MLflow experiment name")


@dataclass
class LoggerConfig:
    """The `logger` group: one node per chosen tracker (`logger=[tensorboard,mlflow]` chooses two)."""

    tensorboard: TensorBoardLoggerConfig | None = None
    csv: CsvLoggerConfig | None = None
    mlflow: MlflowLoggerConfig | None = None


OBJECTIVES = ("val_top1", "params_m", "epoch_s")


@dataclass
class OptunaConfig:
    """The job side of `sweep=optuna` (present only in Optuna sweeps)."""

    trial_number: int | None = spec("null (set by the sweeper) or an integer >= 0", optional(non_negative))
    pruner: Pruner = spec("median|threshold|none")
    n_startup_trials: int = spec("an integer >= 0", non_negative)
    n_warmup_steps: int = spec("an integer >= 0", non_negative)
    threshold: float = spec("a number")
    patience: int = spec("an integer >= 0", non_negative)
    heartbeat_s: int = spec(*INT_GE1)
    grace_s: int = spec(*INT_GE1)
    poll_s: float = spec("a number > 0", positive)
    # what a trial returns, one per hydra.sweeper.direction: val_top1 (best val top-1), params_m (parameters in
    # millions), epoch_s (mean seconds per training epoch)
    objectives: List[str] = spec(
        "a list of val_top1|params_m|epoch_s, one per direction",
        lambda v: len(v) >= 1 and all(x in OBJECTIVES for x in v),
    )


@dataclass
class Config:
    """The root: `python -m tinyimagenet_resnet.main` composes conf/config.yaml onto this."""

    task: Task = spec("|".join(t.value for t in Task))
    seed: int = spec("an integer >= 0", non_negative)
    seeds: int = spec(*INT_GE1)
    ckpt_path: str | None = spec("null or a path to a .ckpt file")
    resume: Union[bool, str] = spec("false, true (latest matching run) or a run directory")
    run_name: str | None = spec("null or a string")
    sweep_name: str | None = spec("null (multirun/<date>/<time>) or a folder name: multirun/<name>", _folder_name)
    lr_find: LRFindConfig = field(default_factory=LRFindConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    inspect: InspectConfig = field(default_factory=InspectConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: Any = MISSING  # an OptimConfig subclass, chosen by the `optim` group
    scheduler: Any = MISSING  # a SchedulerConfig subclass, chosen by the `scheduler` group
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optuna: OptunaConfig | None = None
    logger: LoggerConfig = field(default_factory=LoggerConfig)


# group -> {option: schema}; the YAML option `conf/<group>/<option>.yaml` extends `/schema/<group>/<option>`
GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "optim": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "data": {"tiny_imagenet": DataConfig},
    "model": {"resnet": ModelConfig},
    "trainer": {"default": TrainerConfig},
}
# nodes of the root whose schema depends on a `name` key (group choice)
BY_NAME: dict[str, dict[str, type]] = {"optim": OPTIMIZERS, "scheduler": SCHEDULERS}


def register() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config, provider="tinyimagenet_resnet", replace=True)
    for group, options in GROUP_SCHEMAS.items():
        for name, schema in options.items():
            cs.store(group=f"schema/{group}", name=name, node=schema, provider="tinyimagenet_resnet", replace=True)
