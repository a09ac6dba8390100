"""The warnings a report raises over what the runs measured: an overfit run that did not overfit, a grid whose two
best configurations are within sampling noise, test predictions collapsed onto few classes."""

from __future__ import annotations

import math

import numpy as np

from ..artifacts.records import SplitSummary
from ..artifacts.runs import Run

OVERFIT_LOSS = 0.1  # an overfit sample's train loss should end below this (the course: "near zero")
OVERFIT_LAST = 5  # ...on average over its last epochs (Dropout2d keeps the loss of single epochs noisy)


def final_loss(hist) -> float:
    """The train loss an overfit run ended at: the mean of its last OVERFIT_LAST epochs."""
    last = [r.train_loss for r in hist[-OVERFIT_LAST:]]
    return sum(last) / len(last)


def within_noise(rows, sweep) -> dict | None:
    """The best and second configurations of a grid differ by less than twice the standard error of a difference
    of two accuracies measured on the same val split (binomial: sqrt(2 p (1 - p) / n)), or None."""
    ok = sorted((r for r in rows if r.status == "ok" and r.best_val_top1 is not None), key=lambda r: -r.best_val_top1)
    if len(ok) < 2:
        return None
    n = val_images(sweep / ok[0].job)
    if not n:
        return None
    p = ok[0].best_val_top1
    se = math.sqrt(2 * p * (1 - p) / n) if 0 < p < 1 else 1 / n
    gap = ok[0].best_val_top1 - ok[1].best_val_top1
    if gap >= 2 * se:
        return None
    return {"gap": f"{100 * gap:.2g}", "noise": f"{200 * se:.2g}", "n": n, "first": ok[0].job, "second": ok[1].job}


def val_images(job) -> int | None:
    split = Run(job).read(SplitSummary)
    return split.sizes.get("val") if split else None


def collapsed(ev: Run) -> dict | None:
    """The test predictions fall on few classes: the most predicted class takes over a third of them, or they
    cover fewer than a tenth of the classes present; None otherwise."""
    path = ev.path / "confusion_matrix.npy"
    if not path.is_file():
        return None
    cm = np.load(path)
    predicted = cm.sum(0)
    total, present = predicted.sum(), int((cm.sum(1) > 0).sum())
    if total == 0:
        return None
    used, top = int((predicted > 0).sum()), float(predicted.max() / total)
    if top <= 1 / 3 and used >= max(2, present // 10):
        return None
    return {"used": used, "present": present, "top": f"{top:.0%}", "n": int(total)}
