"""Progressive resizing over a run's optimiser steps (`trainer.train_sizes`, `trainer.train_size_fractions`): the
step where each train size starts, the size of a given step, the steps left at each size, and the largest step count
whose remaining steps fit in a number of seconds (what a time budget plans and re-plans with)."""

from __future__ import annotations

import bisect


def size_bounds(total_steps: int, fractions) -> list[int]:
    """The global steps where progressive resizing moves to the next train size (trainer.train_size_fractions)."""
    bounds, cumulative = [], 0.0
    for f in list(fractions)[:-1]:
        cumulative += f
        bounds.append(round(cumulative * total_steps))
    return bounds


def size_index(step: int, total_steps: int, fractions, reached: int = 0) -> int:
    """The index of the train size of global step `step`; never below `reached` (the latest phase reached)."""
    return max(bisect.bisect_right(size_bounds(total_steps, fractions), step), reached)


def steps_by_size(start: int, total_steps: int, fractions, reached: int = 0) -> list[int]:
    """How many of the steps start..total_steps-1 run at each train size."""
    bounds = [0, *size_bounds(total_steps, fractions), total_steps]
    counts = [0] * len(list(fractions))
    for i in range(len(counts)):
        lo, hi = max(bounds[i], start), min(bounds[i + 1], total_steps)
        counts[max(i, reached)] += max(0, hi - lo)
    return counts


def fit_steps(start: int, seconds: float, step_s: list[float], fractions, reached: int = 0) -> int:
    """The largest total_steps whose remaining steps (from `start`, each at its size's seconds) fit in `seconds`;
    `start` when not even one does. The cost grows with every added step, so a bisection finds it."""

    def cost(total: int) -> float:
        return sum(n * t for n, t in zip(steps_by_size(start, total, fractions, reached), step_s, strict=True))

    lo, hi = start, start + int(max(seconds, 0.0) / min(step_s)) + 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(mid) <= seconds:
            lo = mid
        else:
            hi = mid - 1
    return lo
