"""OmegaConf resolvers used by the Hydra config: the run directory of a resumed run."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from .choices import Task
from .overrides import without
from .paths import config_dir

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


def _conf() -> Path:
    return Path(config_dir())


def help_tasks() -> str:
    """`--help`: every task, from the schema's enum (so the list cannot drift)."""
    return "|".join(t.value for t in Task)


def help_groups() -> str:
    """`--help`: the user's config groups and their options (Hydra's own list also shows the internal schema/*)."""
    conf, lines = _conf(), []
    for folder in sorted(p for p in conf.rglob("*") if p.is_dir()):
        group = folder.relative_to(conf).as_posix()
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        if options and not group.startswith("hydra"):
            lines.append(f"  {group}: {', '.join(options)}")
    return "\n".join(lines)


def help_experiments() -> str:
    """`--help`: each experiment with the first sentence of its description (its comment lines up to the first
    command line)."""
    lines = []
    for f in sorted((_conf() / "experiment").glob("*.yaml")):
        words = []
        for ln in f.read_text().splitlines():
            if not ln.startswith("#") or ln.startswith("#  ") or (words and not ln[1:].strip()):
                break
            if "@package" not in ln:
                words.append(ln[1:].strip())
        text = " ".join(words)
        end = re.search(r"\.(\s|$)", text)
        lines.append(f"  experiment={f.stem}: {(text[: end.start()] if end else text).rstrip(':,')}")
    return "\n".join(lines)


def register() -> None:
    OmegaConf.register_resolver("tir.run_dir", run_dir, replace=True)
    OmegaConf.register_resolver("tir.hydra_subdir", hydra_subdir, replace=True)
    OmegaConf.register_resolver("tir.now", now, replace=True, use_cache=True)
    OmegaConf.register_resolver("tir.sweep_dir", sweep_dir, replace=True, use_cache=True)  # see now()
    for name, fn in (("tasks", help_tasks), ("groups", help_groups), ("experiments", help_experiments)):
        OmegaConf.register_resolver(f"tir.help_{name}", fn, replace=True)
