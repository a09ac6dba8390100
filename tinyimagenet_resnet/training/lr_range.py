"""Leslie Smith's LR range test: the LR grows exponentially, the loss is EMA-smoothed, the run stops on divergence."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class RangeTestResult:
    lrs: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    smoothed: list = field(default_factory=list)
    stopped_early: bool = False
    suggestion: float | None = None
    window: tuple | None = None  # (low, high): the LR range where the smoothed loss falls

    def to_json(self) -> dict:
        return {
            "suggested_lr": self.suggestion,
            "stable_window": list(self.window) if self.window else None,
            "iterations": len(self.lrs),
            "stopped_on_divergence": self.stopped_early,
            "min_smoothed_loss": float(np.min(self.smoothed)) if self.smoothed else None,
            "lr_at_min_loss": float(self.lrs[int(np.argmin(self.smoothed))]) if self.smoothed else None,
        }


def analyse(
    lrs, smoothed, skip_start: int = 5, skip_end: int = 2, min_drop: float = 0.01
) -> tuple[float | None, tuple | None]:
    """Window: the contiguous LR range where the smoothed loss falls, taking the stretch with the largest total drop.
    Suggestion: the LR of steepest descent of the smoothed loss against log LR inside that window.
    (None, None) when no stretch drops by at least `min_drop` x the starting loss: noise, not a descent."""
    lrs, smoothed = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    n = len(lrs)
    if n < skip_start + skip_end + 3:
        return None, None
    grad = np.gradient(smoothed, np.log10(lrs))
    stretches, begin = [], None
    for i in range(skip_start, n - skip_end):
        if grad[i] < 0 and begin is None:
            begin = i
        elif grad[i] >= 0 and begin is not None:
            stretches.append((begin, i - 1))
            begin = None
    if begin is not None:
        stretches.append((begin, n - skip_end - 1))
    if not stretches:
        return None, None
    lo, hi = max(stretches, key=lambda r: smoothed[r[0]] - smoothed[r[1]])
    if smoothed[lo] - smoothed[hi] < min_drop * smoothed[skip_start]:
        return None, None
    i = lo + int(np.argmin(grad[lo : hi + 1]))
    return float(lrs[i]), (float(lrs[lo]), float(lrs[hi]))


def range_test(
    model: torch.nn.Module,
    make_optimizer,
    batches,
    loss_fn,
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
    num_iters: int = 100,
    beta: float = 0.98,
    diverge_factor: float = 4.0,
    step_fn=None,
    on_step=None,
    min_drop: float = 0.01,
) -> RangeTestResult:
    """Run on a deep copy of `model` (the caller's model and optimizer are untouched).

    `make_optimizer(params, lr)` builds a fresh optimizer; `batches` yields (x, y) forever or at least num_iters;
    `step_fn(model, x, y) -> loss` overrides the plain forward+loss."""
    model = copy.deepcopy(model)
    model.train()
    optimizer = make_optimizer(model.parameters(), min_lr)
    gamma = (max_lr / min_lr) ** (1.0 / max(num_iters - 1, 1))
    result = RangeTestResult()
    avg, best = 0.0, math.inf
    it = iter(batches)
    for i in range(num_iters):
        lr = min_lr * gamma**i
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = next(it)
        loss = step_fn(model, x, y) if step_fn else loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        avg = beta * avg + (1 - beta) * value
        smooth = avg / (1 - beta ** (i + 1))
        result.lrs.append(lr)
        result.losses.append(value)
        result.smoothed.append(smooth)
        if on_step:
            on_step(i, lr, value, smooth)
        if not math.isfinite(value) or (i > 0 and smooth > diverge_factor * best):
            result.stopped_early = True
            break
        best = min(best, smooth)
    result.suggestion, result.window = analyse(result.lrs, result.smoothed, min_drop=min_drop)
    return result
