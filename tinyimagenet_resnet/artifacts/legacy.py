"""Readers of 0.1.0 runs: what their files hold where this version writes it otherwise, in one place
(tests/test_old_runs.py reads the runs and checkpoints of tests/fixtures/v0.1.0)."""

from __future__ import annotations

from pathlib import Path

# the `logger` node of a run that has none (0.1.0 runs logged to TensorBoard only)
LOGGER_0_1_0 = {"tensorboard": {}}


def no_best(data: dict | None) -> bool:
    """A `best` entry written before any validation: {} (0.1.0 runs: {"epoch": null, "val/accuracy": -1.0})."""
    return not data or data.get("epoch") is None


def metrics_kind(data: dict) -> str:
    """The task of a metrics.json without `kind` (0.1.0 runs): an evaluation has `test` and no `history`."""
    return "evaluate" if "test" in data and "history" not in data else "train"


def event_dirs(run: Path) -> list[Path]:
    """The TensorBoard event folders of a 0.1.0 run: `<run>/tensorboard/<name>/`."""
    return sorted({p.parent for p in (run / "tensorboard").rglob("events.out.tfevents.*")})
