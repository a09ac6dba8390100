"""Readable run names built from the overrides that shaped a run, e.g. `lr=1e-4_wd=1e-5_blocks=222_dropout=0.1`."""

from __future__ import annotations

from ..compared import BY_COLUMN, NAME_ORDER
from .overrides import overridden_keys


def run_name(cfg, overrides) -> str:
    """`cfg.run_name` if set, else the overridden model/optimiser hyper-parameters in a fixed order, else 'default'.

    Run lengths and batch sizes are left out: they are usually the same across the runs being compared."""
    if cfg.run_name:
        return str(cfg.run_name)
    keys = overridden_keys(overrides)
    shown = (BY_COLUMN[column] for column in NAME_ORDER)
    parts = [f"{c.short}={c.label(c.value(cfg))}" for c in shown if keys & set(c.keys)]
    return "_".join(parts) if parts else "default"
