"""The LR schedules in closed form, keyed by the scheduler config's NAME (config/schema.py): the LR of optimiser step
k of a run of `total` steps, from the optimizer's base LR. Closed form, so that a run's length may change while it
runs (a time budget re-planned, a finished run extended) and a resumed run jumps straight to its step; `none` has no
entry (a constant LR, no scheduler)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

ONECYCLE_DIV = 25.0  # onecycle starts at lr / 25 (torch's OneCycleLR default)...
ONECYCLE_FINAL_DIV = 1e4  # ...and ends on the last step at lr / (25 x 1e4)


def _anneal(a: float, b: float, t: float) -> float:
    """Cosine from a (t = 0) to b (t >= 1)."""
    return b + (a - b) * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0))) / 2


def cosine(base: float, k: int, total: int, *, eta_min: float) -> float:
    """Cosine from lr to eta_min, reached on the last step (the step index total - 1) and kept after it."""
    return _anneal(base, eta_min, k / max(1, total - 1))


def onecycle(base: float, k: int, total: int, *, pct_start: float) -> float:
    """Cosine up from lr/25 to lr over pct_start of the steps, then cosine down to lr/2.5e5 on the last step."""
    last = max(total - 1, 1)
    up = max(1, round(pct_start * last))
    start, end = base / ONECYCLE_DIV, base / (ONECYCLE_DIV * ONECYCLE_FINAL_DIV)
    if k <= up:
        return _anneal(start, base, k / up)
    return _anneal(base, end, (k - up) / max(1, last - up))


def linear(base: float, k: int, total: int, *, warmup_fraction: float) -> float:
    """Linear warm-up over warmup_fraction of the steps, then linear decay to zero on the last step."""
    warmup = round(warmup_fraction * total)
    last = max(total - 1, warmup + 1)
    if k < warmup:
        return base * (k + 1) / (warmup + 1)
    return base * max(0.0, (last - k) / (last - warmup))


SCHEDULES: dict[str, Callable[..., float]] = {"cosine": cosine, "onecycle": onecycle, "linear": linear}


def node_name(node: DictConfig) -> str:
    """What a group node is: the NAME of its schema class (the group option chose it, and its fields are that
    class's), else its `name` key (a node without a schema)."""
    return getattr(OmegaConf.get_type(node), "NAME", "") or node.name


def schedule_of(sched_cfg: DictConfig) -> Callable[[float, int, int], float] | None:
    """`lr_at(base, k, total)` of the `scheduler` config node, its fields bound; None for `scheduler=none`."""
    params = OmegaConf.to_container(sched_cfg, resolve=True)
    params.pop("name")
    fn = SCHEDULES.get(node_name(sched_cfg))
    return functools.partial(fn, **params) if fn is not None else None


def lr_at(sched_cfg: DictConfig, base: float, k: int, total: int) -> float:
    """The LR of optimiser step k of `total` under the `scheduler` config node."""
    return schedule_of(sched_cfg)(base, k, total)
