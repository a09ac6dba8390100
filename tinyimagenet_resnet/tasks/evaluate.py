"""`task=evaluate ckpt_path=<run>/checkpoints/best.ckpt`: test metrics beside val, per-class accuracy,
the confusion matrix and the most confused class pairs, rebuilt from the checkpoint's own config."""

from __future__ import annotations

import logging

import numpy as np

from ..artifacts.files import atomic_path, write_csv
from ..artifacts.records import EvalMetrics
from ..config.overrides import RUNTIME_KEYS
from ..data.classes import class_name, class_table
from ..progress import use_progress_bar
from ..reporting import figures
from ..training.checkpoint import eval_weights
from ..training.evaluation import evaluate
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
    show = use_progress_bar(cfg.trainer.progress_bar)
    tb = open_tb(ctx)
    meters, results = {}, {}
    for split in ("val", "test"):
        meter = evaluate(
            model,
            dm.eval_loader(split, ctx.device),
            device=ctx.device,
            num_classes=dm.num_classes,
            amp_dtype=ctx.amp_dtype,
            channels_last=ctx.channels_last,
            show_progress=show,
            desc=split,
            flip=bool(cfg.trainer.tta_flip),
            progress_every_s=float(cfg.trainer.progress_every_s),
        )
        meters[split], results[split] = meter, meter.compute()
        tb.scalars(results[split].tags(split), int(ckpt["epoch"]))
    cm = meters["test"].confusion.cpu().numpy()
    per_class = meters["test"].per_class_accuracy().cpu().numpy()
    support = cm.sum(1)
    table = class_table()
    write_csv(
        ctx.run_dir / "per_class_accuracy.csv",
        ["label", "wnid", "name", "support", "accuracy"],
        (
            [
                c,
                table[c][0] if c < len(table) else "",
                class_name(c),
                int(support[c]),
                f"{per_class[c]:.6f}" if support[c] else "",
            ]
            for c in range(dm.num_classes)
        ),
    )
    confused = top_confusions(cm, int(cfg.evaluate.top_confusions))
    write_csv(
        ctx.run_dir / "top_confusions.csv",
        ["true", "true_name", "predicted", "predicted_name", "count", "share_of_true"],
        confused,
    )
    with atomic_path(ctx.run_dir / "confusion_matrix.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, cm)
    names = [class_name(c) for c in range(dm.num_classes)]
    fig = figures.confusion_matrix(
        cm, names, f"Test confusion matrix ({len(dm.splits['test'])} images, top-1 {results['test'].accuracy:.2%})"
    )
    tb.figure("test/confusion_matrix", fig)
    figures.save(fig, ctx.run_dir / "confusion_matrix.png")
    out = EvalMetrics(
        checkpoint=str(cfg.ckpt_path),
        epoch=int(ckpt["epoch"]),
        trained_config=ckpt["config"]["model"],
        val=results["val"],
        test=results["test"],
        top_confusions=confused,
    )
    out.write(ctx.run_dir)
    tb.close()
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
    return float(results["test"].accuracy)
