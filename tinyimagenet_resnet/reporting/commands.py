"""The command line that made a run or a sweep, rebuilt from the overrides Hydra saved with it."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from ..artifacts.runs import Run
from ..config.kinds import COMMAND


def _hydra_overrides(hydra_node) -> list[str]:
    """The command line's `hydra.*` overrides (hydra.sweeper.n_trials=3, hydra/launcher=joblib, ...); the mode is
    the `-m` flag, not an override the user typed."""
    return [o for o in (hydra_node.get("overrides", {}).get("hydra") or []) if not o.startswith("hydra.mode=")]


def _hydra_node(f: Path) -> dict:
    """The `hydra` node of a saved hydra.yaml or multirun.yaml, as plain data (read with PyYAML, as artifacts/runs.py
    reads them: OmegaConf's loader took ~0.1 s a file, most of a report's reading time)."""
    return ((yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("hydra") or {}) if f.is_file() else {}


def command_of(run: Run) -> str:
    hydra = _hydra_node(run.path / ".hydra" / "hydra.yaml")
    return " ".join([COMMAND, *_quote(run.overrides), *_quote(_hydra_overrides(hydra))])


def sweep_command(sweep: Path) -> str:
    hydra = _hydra_node(sweep / "multirun.yaml")
    over = hydra.get("overrides", {}).get("task") or [] if hydra else []
    return " ".join([COMMAND, "-m", *_quote(over), *_quote(_hydra_overrides(hydra))])


def _quote(overrides) -> list[str]:
    """Shell-quoted where the shell would split or expand them (lists, spaces)."""
    return [shlex.quote(o) for o in overrides]
