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


def _moving_average(x: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return x
    padded = np.pad(x, k // 2, mode="edge")
    return np.convolve(padded, np.ones(k) / k, mode="valid")[: len(x)]


def analyse(
    lrs, smoothed, skip_start: int = 5, skip_end: int = 2, min_drop: float = 0.005, plateau: float = 0.1
) -> tuple[float | None, tuple | None]:
    """The valley of the smoothed loss, and the LR of steepest descent inside it.

    Plateau: the median smoothed loss over the first `plateau` share of the sweep (the LRs too small to learn).
    Valley (the window): from where the loss starts to fall below the plateau (the last point still within 10% of
    the total drop from it) to the minimum of the smoothed loss before divergence. Suggestion: the steepest descent
    against log LR inside the valley, on the smoothed loss averaged once more over n/30 points (a single noisy step
    is not a descent). (None, None) when the minimum is less than `min_drop` x the plateau below it, the valley spans
    fewer than 3 points, or fewer than 60% of its steps go down: noise, not a descent."""
    lrs, smoothed = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    finite = np.isfinite(smoothed)
    if not finite.all():  # the sweep stopped on a NaN/inf loss: the curve ends before it
        lrs, smoothed = lrs[: int(np.argmin(finite))], smoothed[: int(np.argmin(finite))]
    n = len(lrs)
    if n < skip_start + skip_end + 3:
        return None, None
    low = skip_start + int(np.argmin(smoothed[skip_start : n - skip_end]))
    base = float(np.median(smoothed[skip_start : max(skip_start + 3, skip_start + int(plateau * n))]))
    drop = base - smoothed[low]
    if drop < min_drop * base:
        return None, None
    started = [i for i in range(skip_start, low) if smoothed[i] >= base - 0.1 * drop]
    lo = started[-1] if started else skip_start
    if low - lo < 3:
        return None, None
    averaged = _moving_average(smoothed, max(1, n // 30))
    if (np.diff(averaged[lo : low + 1]) < 0).mean() < 0.6:
        return None, None
    grad = np.gradient(averaged, np.log10(lrs))
    i = lo + int(np.argmin(grad[lo : low + 1]))
    return float(lrs[i]), (float(lrs[lo]), float(lrs[low]))


def range_test(
    model: torch.nn.Module,
    make_optimizer,
    batches,
    loss_fn,
    min_lr: float = 1e-5,
    max_lr: float = 1.0,
    num_iters: int = 300,
    beta: float = 0.95,
    diverge_factor: float = 4.0,
    step_fn=None,
    on_step=None,
    min_drop: float = 0.005,
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
