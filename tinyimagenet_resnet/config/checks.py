"""The range checks of the schema: `spec(...)` declares a field with its check and the words of its one-line error
(`config.validate` runs them), and the small predicates the fields combine."""

from __future__ import annotations

from dataclasses import field
from enum import Enum
from typing import Any, Callable

from omegaconf import MISSING


def spec(
    allowed: str | Callable[[], str], check: Callable[[Any], bool] | None = None, default=MISSING, finite: bool = True
):
    """A schema field: `allowed` is what the one-line error says; `check` the range test (None: the type says it);
    `finite`: whether an infinite or NaN number is refused (every key so far: none has a use for one)."""
    metadata = {"allowed": allowed, "check": check, "finite": finite}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def listed(values) -> str:
    """An enum or a sequence of names as the error lists them: `a|b|c`."""
    return "|".join(v.value if isinstance(v, Enum) else str(v) for v in values)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def positive(v) -> bool:
    return v > 0


def non_negative(v) -> bool:
    return v >= 0


def at_least(n: float) -> Callable[[Any], bool]:
    return lambda v: v >= n


def in_range(lo: float, hi: float, lo_open: bool = False, hi_open: bool = True) -> Callable[[Any], bool]:
    return lambda v: (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def n_items(n: int, item: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: len(v) == n and all(_num(x) and item(x) for x in v)


def one_of(*values) -> Callable[[Any], bool]:
    return lambda v: any(v is x or (type(v) is type(x) and v == x) for x in values)


def list_of(values) -> Callable[[Any], bool]:
    """A non-empty list whose items are all among `values`."""
    return lambda v: len(v) >= 1 and all(x in values for x in v)


def device_name(v) -> bool:
    return v in ("auto", "cpu", "mps", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())


def min_max_pair(lo: float, hi: float | None) -> Callable[[Any], bool]:
    """[min, max] with lo < min <= max (<= hi)."""
    return lambda v: len(v) == 2 and v[0] > lo and v[0] <= v[1] and (hi is None or v[1] <= hi)


def sizes_ok(v) -> bool:
    return len(v) >= 1 and all(isinstance(s, int) and 16 <= s <= 128 for s in v)


def fractions_ok(v) -> bool:
    return len(v) >= 1 and all(_num(f) and f > 0 for f in v) and abs(sum(v) - 1) < 1e-6


def folder_name(v) -> bool:
    return v is None or (isinstance(v, str) and v.strip() not in ("", ".", "..") and "/" not in v and "\\" not in v)


def batch_size(v) -> bool:
    return v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)


INT_GE1 = ("an integer >= 1", at_least(1))
OPT_INT_GE1 = ("null or an integer >= 1", optional(at_least(1)))
