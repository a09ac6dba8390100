"""The kinds of runs and sweeps the course protocol makes, and the command that makes them: one home for the names
the report, the protocol and the sweeps share."""

from __future__ import annotations

import sys

# One run each, in protocol order (the report's `--run KIND=DIR`).
RUN_KINDS = ("inspect", "baselines", "overfit", "lr_find", "train", "evaluate")
# The course's two grids (conf/sweep/<name>.yaml), and every sweep kind the report knows.
GRIDS = ("lr_wd", "blocks_dropout")
SWEEP_KINDS = (*GRIDS, "optuna", "optuna_pareto")

# The entry point, as a user types it (reports, logs, replay lines) and as a child process runs it.
ENTRY_MODULE = "tinyimagenet_resnet.main"
COMMAND = f"python -m {ENTRY_MODULE}"


def command_argv() -> list[str]:
    """The entry point for a child process: this interpreter, so that a venv's child runs in the same venv."""
    return [sys.executable, "-m", ENTRY_MODULE]
