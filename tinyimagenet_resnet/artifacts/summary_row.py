"""A sweep's `summary.csv` / `summary.md` row, one per job (also stored with each Optuna trial)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..compared import GRID_COLUMNS, GRID_KEYS


@dataclass
class SummaryRow:
    """One job of a sweep in `summary.csv` / `summary.md` (also stored with each Optuna trial, one user attribute per
    field). `params` are the job's own overrides; `values` its objective values (what the job returned, for this
    package's train task the best val top-1 and the costs of `optuna.objectives`). The columns from `lr` to
    `val_loss_at_best` are None for jobs of another app."""

    job: str
    run_name: str
    lr: float | None = None
    weight_decay: float | None = None
    blocks: str | None = None
    dropout: float | None = None
    best_val_top1: float | None = None
    val_loss_at_best: float | None = None
    epochs_run: int | None = None
    status: str = "failed"  # ok | failed | pruned
    wall_time_s: float | None = None
    seed: int | None = None
    params: dict = field(default_factory=dict)
    values: list | None = None
    rank: int = 0
    error: str | None = None  # a failed grid job: the one-line reason (its failure.json)

    COLUMNS: ClassVar[list[str]] = [
        "rank",
        "job",
        "run_name",
        "lr",
        "weight_decay",
        "blocks",
        "dropout",
        "best_val_top1",
        "val_loss_at_best",
        "epochs_run",
        "status",
        "wall_time_s",
    ]
    # this package's columns, shown where some row has them
    OWN: ClassVar[tuple[str, ...]] = (*GRID_COLUMNS, "best_val_top1", "val_loss_at_best")
    # the overrides behind them (not repeated as parameter columns)
    OWN_KEYS: ClassVar[frozenset[str]] = GRID_KEYS

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: dict) -> SummaryRow:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
