"""The config schema: the root dataclass, the optimizer and scheduler nodes, and their registration in Hydra's
ConfigStore (the other groups' nodes are in config/groups/, one module each).

A field declares its type and, in `spec(...)` (config/checks.py), the range a type cannot express (`check`) with the
words of the one-line error (`allowed`). Values live in the YAML files of `conf/` only: each YAML extends its schema
through its defaults list (`- /schema/<group>/<name>@_here_`), so a wrong type or an unknown key fails at composition
and `config.validate` checks the ranges before any work. Adding an optimizer or a scheduler is one dataclass here
plus one YAML file, and its entry in training/optim.py or training/schedules.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, List, Union

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from .checks import INT_GE1, folder_name, in_range, listed, n_items, non_negative, positive, spec
from .choices import Task
from .groups.data import DataConfig
from .groups.logger import LoggerConfig
from .groups.model import ModelConfig
from .groups.optuna import OptunaConfig
from .groups.tasks import EvaluateConfig, InspectConfig, LRFindConfig, ProtocolConfig, ReportConfig
from .groups.trainer import TrainerConfig


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


# ------------------------------------------------------------------------------------------------ root
@dataclass
class Config:
    """The root: `python -m tinyimagenet_resnet.main` composes conf/config.yaml onto this."""

    task: Task = spec(listed(Task))
    seed: int = spec("an integer >= 0", non_negative)
    seeds: int = spec(*INT_GE1)
    ckpt_path: str | None = spec("null or a path to a .ckpt file")
    resume: Union[bool, str] = spec("false, true (latest matching run) or a run directory")
    run_name: str | None = spec("null or a string")
    sweep_name: str | None = spec("null (multirun/<date>/<time>) or a folder name: multirun/<name>", folder_name)
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


# The ConfigStore that register() last filled. Each store converts a dataclass to a DictConfig (the 11 of them ~40 ms,
# and a compose after them 0.20-0.26 s against 0.16-0.18 s, one core of an AVX2 EPYC): the entry point's pre-flight
# and the protocol's estimate compose several times in one process. Hydra's singletons restored from a copy
# (Singleton.set_state, as in a launcher's worker) are another instance, filled again: a copy saved before the first
# register() lacks the schemas.
_registered_in: list[ConfigStore] = []


def register() -> None:
    """Store the schemas in Hydra's ConfigStore, once per ConfigStore instance (idempotent)."""
    cs = ConfigStore.instance()
    if _registered_in and _registered_in[0] is cs:
        return
    cs.store(name="config_schema", node=Config, provider="tinyimagenet_resnet", replace=True)
    for group, options in GROUP_SCHEMAS.items():
        for name, schema in options.items():
            cs.store(group=f"schema/{group}", name=name, node=schema, provider="tinyimagenet_resnet", replace=True)
    _registered_in[:] = [cs]
