"""Where a config key left at null points: the folder that `data.cache_dir=null` means."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """The decoded-image cache of `data.cache_dir=null`: $XDG_CACHE_HOME (or ~/.cache)/tinyimagenet_resnet."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinyimagenet_resnet"
