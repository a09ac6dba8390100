"""The nodes of the root that one task reads: `lr_find`, `protocol`, `report`, `evaluate`, `inspect`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from ..checks import INT_GE1, at_least, in_range, list_of, listed, non_negative, optional, positive, spec
from ..choices import Scale

LANGUAGES = ("en", "fr")


@dataclass
class LRFindConfig:
    min_lr: float = spec("a number > 0", positive)
    max_lr: float = spec("a number > 0 (and > lr_find.min_lr)", positive)
    num_iters: int = spec("an integer >= 2", at_least(2))
    beta: float = spec("a number in [0, 1)", in_range(0, 1))
    diverge_factor: float = spec("a number > 1", lambda v: v > 1)
    min_drop: float = spec("a number in [0, 1)", in_range(0, 1))


@dataclass
class ProtocolConfig:
    """`task=protocol`: every step of the course protocol in order, its state and runs in `<dir>/<name>/`."""

    name: str = spec(
        "a folder name (letters, digits, '.', '_', '-'; not only dots)",
        lambda v: bool(v) and all(c.isalnum() or c in "._-" for c in v) and set(v) != {"."},
    )
    dir: str = spec("a folder")
    scale: Scale = spec(listed(Scale))
    lang: List[str] = spec(f"a list of {listed(LANGUAGES)}", list_of(LANGUAGES))
    warm_start: bool = spec("true|false")


@dataclass
class ReportConfig:
    """Section 0 of the report written by `task=protocol` (null: a ✏️ prompt to fill in)."""

    author: str | None = spec("null or a string")
    repo: str | None = spec("null or a string (the project's repository URL)")


@dataclass
class EvaluateConfig:
    top_confusions: int = spec("an integer >= 0", non_negative)


@dataclass
class InspectConfig:
    stats_images: int | None = spec("null (all) or an integer >= 1", optional(at_least(1)))
    grid_images: int = spec(*INT_GE1)
