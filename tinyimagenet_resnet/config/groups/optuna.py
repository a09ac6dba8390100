"""The job side of `sweep=optuna`: the trial number, the pruner and what a trial returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from ..checks import INT_GE1, list_of, listed, non_negative, optional, positive, spec
from ..choices import OBJECTIVES, Pruner


@dataclass
class OptunaConfig:
    """The job side of `sweep=optuna` (present only in Optuna sweeps)."""

    trial_number: int | None = spec("null (set by the sweeper) or an integer >= 0", optional(non_negative))
    pruner: Pruner = spec(listed(Pruner))
    n_startup_trials: int = spec("an integer >= 0", non_negative)
    n_warmup_steps: int = spec("an integer >= 0", non_negative)
    threshold: float = spec("a number")
    patience: int = spec("an integer >= 0", non_negative)
    heartbeat_s: int = spec(*INT_GE1)
    grace_s: int = spec(*INT_GE1)
    poll_s: float = spec("a number > 0", positive)
    objectives: List[str] = spec(f"a list of {listed(OBJECTIVES)}, one per direction", list_of(OBJECTIVES))
