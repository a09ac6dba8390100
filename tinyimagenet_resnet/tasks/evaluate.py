"""`task=evaluate ckpt_path=<run>/checkpoints/best.ckpt`: test metrics beside val, per-class accuracy,
the confusion matrix and the most confused class pairs, rebuilt from the checkpoint's own config."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..artifacts.files import atomic_path, write_csv
from ..artifacts.records import EvalMetrics
from ..config.overrides import RUNTIME_KEYS
from ..data.classes import class_name, class_table
from ..progress import use_progress_bar
from ..reporting import figures
from ..training.checkpoint import eval_weights
from ..training.evaluation import evaluate
from ..training.metrics import ClassificationMeter
from .common import (
    config_from_checkpoint,
    hydra_overrides,
    load_for_model,
    make_model,
    open_tb,
    run_context,
    setup_data,
)

log = logging.getLogger(__name__)

# Command-line keys that may differ from the training run without changing what is evaluated.
EVAL_KEYS = (
    "data.val_subset",
    "data.test_subset",
    "data.eval_batch_size",
    "trainer.precision",
    "trainer.channels_last",
    "trainer.tta_flip",
)


def top_confusions(cm: np.ndarray, k: int) -> list[dict]:
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:k]
    rows = []
    for flat in order:
        t, p = np.unravel_index(flat, off.shape)
        if off[t, p] == 0:
            break
        rows.append(
            {
                "true": int(t),
                "true_name": class_name(int(t)),
                "predicted": int(p),
                "predicted_name": class_name(int(p)),
                "count": int(off[t, p]),
                "share_of_true": float(off[t, p] / max(cm[t].sum(), 1)),
            }
        )
    return rows


def run(cfg) -> float:
    ckpt, saved = load_for_model(cfg.ckpt_path)
    cfg = config_from_checkpoint(cfg, saved, hydra_overrides(), (*RUNTIME_KEYS, *EVAL_KEYS), "evaluating a checkpoint")
    ctx = run_context(cfg)
    dm = setup_data(cfg, ctx.run_dir)
    recorded = (ckpt.get("split") or {}).get("fingerprints", {})
    if recorded and recorded.get("train") != dm.splits["train"].fingerprint():
        log.warning(
            "The train split differs from the one this checkpoint was trained on (data changed?): "
            "the test split may not be held out"
        )
    model = make_model(cfg, dm.num_classes, ctx.device, ctx.channels_last)
    model.load_state_dict(eval_weights(ckpt))
    tb = open_tb(ctx)
    meters, results = {}, {}
    for split in ("val", "test"):
        meters[split] = evaluate_split(cfg, ctx, model, dm, split)
        results[split] = meters[split].compute()
        tb.scalars(results[split].tags(split), int(ckpt["epoch"]))
    cm = meters["test"].confusion.cpu().numpy()
    write_per_class(ctx.run_dir / "per_class_accuracy.csv", cm, meters["test"].per_class_accuracy().cpu().numpy())
    confused = top_confusions(cm, int(cfg.evaluate.top_confusions))
    write_confusions(ctx.run_dir, tb, cm, confused, results["test"].accuracy, len(dm.splits["test"]))
    EvalMetrics(
        checkpoint=str(cfg.ckpt_path),
        epoch=int(ckpt["epoch"]),
        trained_config=ckpt["config"]["model"],
        val=results["val"],
        test=results["test"],
        top_confusions=confused,
    ).write(ctx.run_dir)
    tb.close()
    log_results(results, confused)
    return float(results["test"].accuracy)


def evaluate_split(cfg, ctx, model, dm, split: str) -> ClassificationMeter:
    """The checkpoint's model over one split, with the run's precision, memory format and test-time flip."""
    return evaluate(
        model,
        dm.eval_loader(split, ctx.device),
        device=ctx.device,
        num_classes=dm.num_classes,
        amp_dtype=ctx.amp_dtype,
        channels_last=ctx.channels_last,
        show_progress=use_progress_bar(cfg.trainer.progress_bar),
        desc=split,
        flip=bool(cfg.trainer.tta_flip),
        progress_every_s=float(cfg.trainer.progress_every_s),
    )


def write_per_class(path: Path, cm: np.ndarray, per_class: np.ndarray) -> None:
    """per_class_accuracy.csv: each class's test support and accuracy (empty for a class with no test image)."""
    support = cm.sum(1)
    table = class_table()
    write_csv(
        path,
        ["label", "wnid", "name", "support", "accuracy"],
        (
            [
                c,
                table[c][0] if c < len(table) else "",
                class_name(c),
                int(support[c]),
                f"{per_class[c]:.6f}" if support[c] else "",
            ]
            for c in range(len(cm))
        ),
    )


def write_confusions(run_dir: Path, tb, cm: np.ndarray, confused: list[dict], top1: float, images: int) -> None:
    """top_confusions.csv, confusion_matrix.npy, and the matrix's figure as PNG and in TensorBoard."""
    write_csv(
        run_dir / "top_confusions.csv",
        ["true", "true_name", "predicted", "predicted_name", "count", "share_of_true"],
        confused,
    )
    with atomic_path(run_dir / "confusion_matrix.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, cm)
    names = [class_name(c) for c in range(len(cm))]
    fig = figures.confusion_matrix(cm, names, f"Test confusion matrix ({images} images, top-1 {top1:.2%})")
    tb.figure("test/confusion_matrix", fig)
    figures.save(fig, run_dir / "confusion_matrix.png")


def log_results(results: dict, confused: list[dict]) -> None:
    for split in ("val", "test"):
        m = results[split]
        log.info(
            "%-4s n=%d  loss %.4f  top-1 %.4f  top-5 %.4f  macro-F1 %.4f",
            split,
            m.n,
            m.loss,
            m.accuracy,
            m.top5,
            m.f1_macro,
        )
    for r in confused[:5]:
        log.info(
            "confused: %s -> %s (%d, %.0f%% of %s)",
            r["true_name"],
            r["predicted_name"],
            r["count"],
            100 * r["share_of_true"],
            r["true_name"],
        )
