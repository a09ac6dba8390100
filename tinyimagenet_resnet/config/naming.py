"""Readable run names built from the overrides that shaped a run, e.g. `lr=1e-4_wd=1e-5_blocks=222_dropout=0.1`."""

from __future__ import annotations

from .overrides import overridden_keys


def format_blocks(blocks) -> str:
    """[2, 2, 2] -> '222' (run names, HParams and summary tables)."""
    return "".join(str(b) for b in blocks)


# (name in the run name, override keys that select it, how to render the resolved value)
_PARTS = [
    ("optim", ("optim", "optim.name"), lambda c: c.optim.name),
    ("lr", ("optim.lr",), lambda c: f"{c.optim.lr:.3g}"),
    ("wd", ("optim.weight_decay",), lambda c: f"{c.optim.weight_decay:.3g}"),
    ("blocks", ("model/blocks", "model.blocks"), lambda c: format_blocks(c.model.blocks)),
    ("dropout", ("model/dropout", "model.dropout"), lambda c: f"{c.model.dropout:.3g}"),
    ("act", ("model.activation",), lambda c: c.model.activation),
    ("bn", ("model.batch_norm",), lambda c: str(c.model.batch_norm).lower()),
]


def run_name(cfg, overrides) -> str:
    """`cfg.run_name` if set, else the overridden model/optimiser hyper-parameters in a fixed order, else 'default'.

    Run lengths and batch sizes are left out: they are usually the same across the runs being compared."""
    if cfg.run_name:
        return str(cfg.run_name)
    keys = overridden_keys(overrides)
    parts = [f"{name}={render(cfg)}" for name, sources, render in _PARTS if keys & set(sources)]
    return "_".join(parts) if parts else "default"
