"""Where things are: `conf/` and the options of its groups, and the folder that `data.cache_dir=null` means."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> str:
    """`conf/` of a clone (editable install, or running from the source tree), else the copy shipped in the wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise RuntimeError(f"tinyimagenet_resnet: config folder not found next to {here}")


def group_options(group: str) -> str:
    """The options of a config group as the files of conf/ name them: "b111|b222|b333" for model/blocks."""
    return "|".join(sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml")))


def default_cache_dir() -> Path:
    """The decoded-image cache of `data.cache_dir=null`: $XDG_CACHE_HOME (or ~/.cache)/tinyimagenet_resnet."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinyimagenet_resnet"
