"""The figures a run drew in English, drawn again in the report's language from the data the run kept (a run of an
older version, without that data, gives its own figure)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..artifacts.records import LRFindRecord
from ..artifacts.runs import Run
from ..data.classes import class_name
from . import figures
from .context import Ctx


def csv_rows(path) -> list[dict]:
    """The rows of a CSV file a run wrote, as dicts of text."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def class_distribution_figure(c: Ctx, ins: Run) -> Path:
    path = ins.path / "class_distribution.csv"
    if not path.is_file():
        return ins.path / "class_distribution.png"
    rows = csv_rows(path)
    splits = [k for k in rows[0] if k not in ("label", "name")] if rows else []
    counts = {k: np.array([int(r[k]) for r in rows]) for k in splits}
    return figures.save(figures.class_distribution(counts, lang=c.doc.lang), c.doc.figures / "class_distribution.png")


def samples_figure(c: Ctx, ins: Run) -> Path:
    path = ins.path / "augmented_samples.npz"
    if not path.is_file():
        return ins.path / "augmented_samples.png"
    data = np.load(path)
    pipeline = (ins.config.get("data") or {}).get("pipeline", "fast")
    fig = figures.samples(data["images"] / 255.0, [int(x) for x in data["labels"]], pipeline, c.doc.lang)
    return figures.save(fig, c.doc.figures / "augmented_samples.png")


def lr_figure(c: Ctx, lf: Run, rec: LRFindRecord) -> Path:
    path = lf.path / "lr_find.csv"
    if not path.is_file():
        return lf.path / "lr_find.png"
    rows = csv_rows(path)
    lrs, losses, smoothed = ([float(r[k]) for r in rows] for k in ("lr", "loss", "smoothed_loss"))
    window = tuple(rec.stable_window) if rec.stable_window else None
    fig = figures.lr_curve(lrs, losses, smoothed, rec.suggested_lr, window, lang=c.doc.lang)
    return figures.save(fig, c.doc.figures / "lr_find.png")


def confusion_figure(c: Ctx, ev: Run) -> Path:
    path = ev.path / "confusion_matrix.npy"
    if not path.is_file():
        return ev.path / "confusion_matrix.png"
    cm = np.load(path)
    fig = figures.confusion_matrix(cm, [class_name(i) for i in range(len(cm))], c.t["m9_cm"], c.doc.lang)
    return figures.save(fig, c.doc.figures / "confusion_matrix.png")
