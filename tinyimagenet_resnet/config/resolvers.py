"""OmegaConf resolvers used by the Hydra config: the run directory of a resumed run."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from .overrides import without

_STARTED = datetime.now()


def resume_target(task, ckpt_path, resume, overrides, default_dir: str) -> Path | None:
    """The existing run directory a `task=train` invocation continues, or None for a fresh run."""
    if task != "train":
        return None
    if ckpt_path:
        p = Path(str(ckpt_path)).expanduser()
        if p.parent.name == "checkpoints" and (p.parent.parent / ".hydra").is_dir():
            return p.parent.parent
        return None
    if resume in (None, False, "false"):
        return None
    if resume is not True:  # a run directory given explicitly
        return Path(str(resume)).expanduser()
    wanted = sorted(without(overrides or [], "resume"))
    root = Path(default_dir).parent.parent  # outputs/<date>/<time> -> outputs
    runs = sorted(root.glob("*/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for ckpt in runs:
        run = ckpt.parent.parent
        try:
            previous = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) or []
        except OSError:
            continue
        if sorted(without(previous, "resume")) == wanted:
            return run
    return None


RESOLVED: dict[str, str] = {}  # the run directory this command resolved (the start-up's ctrl-C cleans it up)


def run_dir(task, ckpt_path, resume, overrides, default_dir):
    target = resume_target(task, ckpt_path, resume, overrides, default_dir)
    RESOLVED["run_dir"] = str(target) if target is not None else default_dir
    return RESOLVED["run_dir"]


def hydra_subdir(task, ckpt_path, resume, overrides, default_dir):
    """Keep the original `.hydra/` of a resumed run; the resuming invocation's files go beside it."""
    if resume_target(task, ckpt_path, resume, overrides, default_dir) is None:
        return ".hydra"
    return f".hydra/resume-{_STARTED:%Y-%m-%d_%H-%M-%S-%f}"


def now(pattern: str) -> str:
    """The start time of this command, the same however many times and wherever it is resolved (Hydra's `now`
    reads the clock at each resolution, which gave submitit's folder and the jobs two different sweep dirs)."""
    return _STARTED.strftime(pattern)


def sweep_dir(name) -> str:
    """A grid's folder: multirun/<sweep_name> (the same command again continues it), else multirun/<date>/<time>."""
    return f"multirun/{name}" if name else now("multirun/%Y-%m-%d/%H-%M-%S-%f")


def register() -> None:
    OmegaConf.register_resolver("tir.run_dir", run_dir, replace=True)
    OmegaConf.register_resolver("tir.hydra_subdir", hydra_subdir, replace=True)
    OmegaConf.register_resolver("tir.now", now, replace=True, use_cache=True)
    OmegaConf.register_resolver("tir.sweep_dir", sweep_dir, replace=True, use_cache=True)  # see now()
