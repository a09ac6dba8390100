"""The hyper-parameters runs are compared by: one row each, the one home of their override keys, column, short name
and format. Run names (config/naming.py), the HParams table and metrics.json `hparams` (config/hparams.py), the
sweep summary's own columns (artifacts/summary_row.py) and TensorBoard's swept columns (artifacts/tensorboard.py)
read it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def format_blocks(blocks) -> str:
    """[2, 2, 2] -> '222' (run names, HParams and summary tables)."""
    return "".join(str(b) for b in blocks)


def _g3(value) -> str:
    return f"{value:.3g}"


@dataclass(frozen=True)
class Compared:
    """One compared hyper-parameter. `value(cfg)` is its value in a composed config as the columns hold it;
    `short` its part of a run name (None: run names leave it out), written with `label`."""

    column: str
    keys: tuple[str, ...]  # the override keys that set it: a config group and/or a key
    value: Callable[[Any], Any]
    short: str | None = None
    label: Callable[[Any], str] = str
    number: bool = False  # a grid's values of it compare as numbers


COMPARED: tuple[Compared, ...] = (
    Compared("lr", ("optim.lr",), lambda c: float(c.optim.lr), "lr", _g3, number=True),
    Compared("weight_decay", ("optim.weight_decay",), lambda c: float(c.optim.weight_decay), "wd", _g3, number=True),
    Compared("blocks", ("model/blocks", "model.blocks"), lambda c: format_blocks(c.model.blocks), "blocks"),
    Compared("dropout", ("model/dropout", "model.dropout"), lambda c: float(c.model.dropout), "dropout", _g3, True),
    Compared("optim", ("optim", "optim.name"), lambda c: c.optim.name, "optim"),
    Compared("scheduler", ("scheduler",), lambda c: c.scheduler.name),
    Compared("batch_size", ("data.batch_size",), lambda c: int(c.data.batch_size), number=True),
    Compared("epochs", ("trainer.epochs",), lambda c: int(c.trainer.epochs), number=True),
    Compared("activation", ("model.activation",), lambda c: c.model.activation, "act"),
    Compared("batch_norm", ("model.batch_norm",), lambda c: bool(c.model.batch_norm), "bn", lambda v: str(v).lower()),
    Compared("seed", ("seed",), lambda c: int(c.seed), number=True),
)
BY_COLUMN = {c.column: c for c in COMPARED}
COLUMN_OF_KEY = {key: c.column for c in COMPARED for key in c.keys}
# A run name's parts, in this order (run lengths and batch sizes are left out: usually the same across the runs
# being compared).
NAME_ORDER = ("optim", "lr", "weight_decay", "blocks", "dropout", "activation", "batch_norm")
# What the course's two grids (LR x WD, blocks x dropout) compare: the sweep summary's own columns, and the columns
# TensorBoard marks as swept for a run outside a sweep.
GRID_COLUMNS = ("lr", "weight_decay", "blocks", "dropout")


def keys_of(*columns: str) -> frozenset[str]:
    """The override keys that set these columns: keys_of("lr") == {"optim.lr"}."""
    return frozenset(key for column in columns for key in BY_COLUMN[column].keys)


GRID_KEYS = keys_of(*GRID_COLUMNS)
