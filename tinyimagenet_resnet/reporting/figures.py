"""Matplotlib figures (Agg backend, PNG files) for the tasks and reports."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from ..artifacts.files import atomic_path  # noqa: E402
from ..data.classes import class_name, class_table  # noqa: E402

# The fixed words of the figures, per language (titles, axes, legends); numbers and class names are data.
WORDS = {
    "en": {
        "images": "images",
        "class_label": "class label",
        "split_title": "{split}: {n} images, {k} classes, min {lo} / max {hi} per class",
        "per_class": "Images per class",
        "loss": "loss",
        "smoothed": "smoothed loss (EMA)",
        "window": "stable window (loss falls)",
        "suggested": "suggested lr {lr}",
        "lr_axis": "learning rate (log scale)",
        "train_loss": "training loss",
        "lr_title": "LR range test",
        "predicted": "predicted class",
        "true": "true class",
        "share": "share of the true class (log scale)",
        "epoch": "epoch",
        "samples": "Augmented train samples ({pipeline} pipeline)",
        "split": {"train": "train", "val": "val", "test": "test"},
    },
    "fr": {
        "images": "images",
        "class_label": "étiquette de classe",
        "split_title": "{split} : {n} images, {k} classes, min {lo} / max {hi} par classe",
        "per_class": "Images par classe",
        "loss": "perte",
        "smoothed": "perte lissée (moyenne mobile)",
        "window": "fenêtre stable (la perte baisse)",
        "suggested": "taux suggéré {lr}",
        "lr_axis": "taux d'apprentissage (échelle log)",
        "train_loss": "perte d'entraînement",
        "lr_title": "Recherche du taux d'apprentissage",
        "predicted": "classe prédite",
        "true": "classe réelle",
        "share": "part de la classe réelle (échelle log)",
        "epoch": "époque",
        "samples": "Exemples d'entraînement augmentés (chaîne {pipeline})",
        "split": {"train": "entraînement", "val": "validation", "test": "test"},
    },
}


def texts(fig) -> dict:
    """The words of a figure (titles, axis labels, legends, colour bars): what its sidecar records."""
    out: dict[str, list[str]] = {"title": [], "xlabel": [], "ylabel": [], "legend": []}
    if fig.get_suptitle():
        out["title"].append(fig.get_suptitle())
    for ax in fig.axes:
        for key, text in (("title", ax.get_title()), ("xlabel", ax.get_xlabel()), ("ylabel", ax.get_ylabel())):
            if text:
                out[key].append(text)
        legend = ax.get_legend()
        if legend is not None:
            out["legend"] += [t.get_text() for t in legend.get_texts()]
    return out


def words_path(path: Path) -> Path:
    """A figure's sidecar: `lr_find.png` -> `lr_find.png.json` (never a run's own `lr_find.json`)."""
    return path.with_name(path.name + ".json")


def save(fig, path: Path) -> Path:
    """Write the figure (format from the file suffix, PNG by default) atomically and close it; its words go to a
    sidecar `<name>.png.json` (titles, axis labels, legends), which tests read instead of the pixels."""
    path = Path(path)
    try:
        words = texts(fig)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
        with atomic_path(words_path(path)) as tmp:
            tmp.write_text(json.dumps(words, ensure_ascii=False, indent=1), encoding="utf-8")
    finally:
        plt.close(fig)
    return path


def class_distribution(counts: dict[str, np.ndarray], title: str | None = None, lang: str = "en"):
    w = WORDS[lang]
    fig, axes = plt.subplots(len(counts), 1, figsize=(14, 2.8 * len(counts)), squeeze=False)
    for ax, (split, c) in zip(axes[:, 0], counts.items(), strict=True):
        # one filled step outline per panel: the look of 200 bars of width 1, drawn as one artist (3x faster)
        ax.stairs(c, np.arange(len(c) + 1) - 0.5, fill=True, color="tab:blue")
        name = w["split"].get(split, split)
        ax.set_title(
            w["split_title"].format(split=name, n=int(c.sum()), k=int((c > 0).sum()), lo=int(c.min()), hi=int(c.max())),
            fontsize=10,
        )
        ax.set_xlim(-0.5, len(c) - 0.5)
        ax.set_ylabel(w["images"])
    axes[-1, 0].set_xlabel(w["class_label"])
    fig.suptitle(title or w["per_class"])
    fig.tight_layout()  # each panel's title clear of the ticks of the panel above
    return fig


def image_grid(images: np.ndarray, titles: list[str], ncols: int = 8, title: str = ""):
    """images: (N, H, W, 3) floats in [0, 1]."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 2.1 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(np.clip(images[i], 0, 1))
            ax.set_title(titles[i][:22], fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def samples(images: np.ndarray, labels: list[int], pipeline: str, lang: str = "en"):
    """The augmented train samples of task=inspect, each titled with its label and class (its English WordNet
    words in English; its WordNet id in French, where no translation is at hand)."""
    wnids = [row[0] for row in class_table()] if lang != "en" else None
    titles = [f"{c}: {class_name(c) if wnids is None else wnids[c]}" for c in labels]
    return image_grid(images, titles, title=WORDS[lang]["samples"].format(pipeline=pipeline))


def lr_curve(lrs, losses, smoothed, suggestion: float | None, window: tuple | None, lang: str = "en"):
    w = WORDS[lang]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(lrs, losses, color="0.75", lw=0.8, label=w["loss"])
    ax.plot(lrs, smoothed, color="tab:blue", lw=1.8, label=w["smoothed"])
    if window:
        ax.axvspan(window[0], window[1], color="tab:green", alpha=0.12, label=w["window"])
    if suggestion:
        lr = f"{suggestion:.2e}" if lang == "en" else f"{suggestion:.2e}".replace(".", ",")
        ax.axvline(suggestion, color="tab:red", ls="--", label=w["suggested"].format(lr=lr))
    ax.set_xscale("log")
    ax.set_xlabel(w["lr_axis"])
    ax.set_ylabel(w["train_loss"])
    lo, hi = np.nanmin(smoothed), np.nanpercentile(losses, 95)
    ax.set_ylim(lo - 0.05 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
    ax.legend()
    ax.set_title(w["lr_title"])
    return fig


def confusion_matrix(cm: np.ndarray, names: list[str], title: str, lang: str = "en"):
    """A readable heatmap for many classes: row-normalised, log colour scale, every 10th class labelled."""
    rows = cm.sum(1, keepdims=True)
    norm = np.where(rows > 0, cm / np.maximum(rows, 1), 0.0)
    n = len(cm)
    fig, ax = plt.subplots(figsize=(13, 11.5))
    im = ax.imshow(
        np.where(norm > 0, norm, np.nan),
        cmap="viridis",
        norm=LogNorm(vmin=max(norm[norm > 0].min(), 1e-3) if (norm > 0).any() else 1e-3, vmax=1.0),
        interpolation="nearest",
    )
    step = max(1, n // 20)
    ticks = np.arange(0, n, step)
    ax.set_xticks(ticks, [f"{i} {names[i][:14]}" for i in ticks], rotation=90, fontsize=7)
    ax.set_yticks(ticks, [f"{i} {names[i][:14]}" for i in ticks], fontsize=7)
    w = WORDS[lang]
    ax.set_xlabel(w["predicted"])
    ax.set_ylabel(w["true"])
    bar = fig.colorbar(im, ax=ax, fraction=0.04)
    bar.set_label(w["share"])
    ax.set_title(title)
    return fig


def curves(
    series: dict[str, tuple[list, list]],
    ylabel: str,
    title: str,
    xlabel: str = "epoch",
    logy=False,
    integer_x: bool | None = None,
):
    """One line per series; `integer_x` (default: an x axis of epochs or steps) keeps ticks on whole numbers."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, (x, y) in series.items():
        ax.plot(x, y, marker="o" if len(x) < 30 else None, ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if integer_x or (integer_x is None and xlabel in ("epoch", "step")):  # whole epochs: no tick at 2.5
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if logy:
        ax.set_yscale("log")  # ticks at 1, 2, 5 x 10^k, written as plain numbers (not 4x10^0)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1 or any(series):
        ax.legend(fontsize=8)
    return fig


def tta_curves(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows of bench tta as one curve per run: a recipe run under two budgets is two curves (its schedule
    differs), labelled with the budget."""
    curves: dict[str, list[dict]] = {}
    for r in rows:
        curves.setdefault(f"{r['recipe']} ({r['budget_min']:g} min budget)", []).append(r)
    return curves


def time_to_accuracy(rows: list[dict], title: str):
    """Val top-1 against wall-clock minutes, one line per run (rows of bench tta); filled markers are the
    validations on the whole val split, hollow ones those on a subset."""
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for label, pts in tta_curves(rows).items():
        (line,) = ax.plot(
            [r["minutes"] for r in pts],
            [100 * r["val_top1"] for r in pts],
            marker="o",
            mfc="none",
            label=label,
        )
        final = [r for r in pts if r["final"]]
        ax.plot([r["minutes"] for r in final], [100 * r["val_top1"] for r in final], "o", color=line.get_color())
    ax.set_xlabel("wall-clock minutes since the command started")
    ax.set_ylabel("val top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
