"""The command line that made a run or a sweep, rebuilt from the overrides Hydra saved with it."""

from __future__ import annotations

import shlex
from pathlib import Path

from omegaconf import OmegaConf

from ..artifacts.runs import Run
from ..config.kinds import COMMAND


def _hydra_overrides(hydra_node) -> list[str]:
    """The command line's `hydra.*` overrides (hydra.sweeper.n_trials=3, hydra/launcher=joblib, ...); the mode is
    the `-m` flag, not an override the user typed."""
    return [o for o in (hydra_node.get("overrides", {}).get("hydra") or []) if not o.startswith("hydra.mode=")]


def command_of(run: Run) -> str:
    f = run.path / ".hydra" / "hydra.yaml"
    hydra = (OmegaConf.to_container(OmegaConf.load(f)).get("hydra", {}) if f.is_file() else {}) or {}
    return " ".join([COMMAND, *_quote(run.overrides), *_quote(_hydra_overrides(hydra))])


def sweep_command(sweep: Path) -> str:
    f = sweep / "multirun.yaml"
    hydra = OmegaConf.to_container(OmegaConf.load(f).hydra) if f.is_file() else {}
    over = hydra.get("overrides", {}).get("task") or [] if hydra else []
    return " ".join([COMMAND, "-m", *_quote(over), *_quote(_hydra_overrides(hydra))])


def _quote(overrides) -> list[str]:
    """Shell-quoted where the shell would split or expand them (lists, spaces)."""
    return [shlex.quote(o) for o in overrides]
