"""`task=evaluate ckpt_path=<run>/checkpoints/best.ckpt`: test metrics beside val, per-class accuracy,
the confusion matrix and the most confused class pairs, rebuilt from the checkpoint's own config."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np

from .. import plots
from ..classes import class_name, class_table
from ..engine import evaluate, use_progress_bar
from .common import config_from_checkpoint, load_for_model, make_model, open_tb, run_context, setup_data

log = logging.getLogger(__name__)

# Command-line keys that may differ from the training run without changing what is evaluated.
EVAL_KEYS = ("data.val_subset", "data.test_subset", "data.eval_batch_size", "trainer.precision",
             "trainer.channels_last")


def top_confusions(cm: np.ndarray, k: int) -> list[dict]:
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:k]
    rows = []
    for flat in order:
        t, p = np.unravel_index(flat, off.shape)
        if off[t, p] == 0:
            break
        rows.append({"true": int(t), "true_name": class_name(int(t)), "predicted": int(p),
                     "predicted_name": class_name(int(p)), "count": int(off[t, p]),
                     "share_of_true": float(off[t, p] / max(cm[t].sum(), 1))})
    return rows


def run(cfg) -> float:
    ctx = run_context(cfg)
    ckpt = load_for_model(cfg.ckpt_path)
    keep = tuple(k for k in EVAL_KEYS if any(o.lstrip("+~").startswith(k) for o in ctx.overrides))
    cfg = config_from_checkpoint(cfg, ckpt, ctx.overrides, keep=keep)
    dm = setup_data(cfg, ctx.run_dir)
    recorded = (ckpt.get("split") or {}).get("fingerprints", {})
    if recorded and recorded.get("train") != dm.splits["train"].fingerprint():
        log.warning("The train split differs from the one this checkpoint was trained on (data changed?): "
                    "the test split may not be held out")
    model = make_model(cfg, dm.num_classes, ctx.device, ctx.channels_last)
    model.load_state_dict(ckpt["model"])
    show = use_progress_bar(cfg.trainer.progress_bar)
    tb = open_tb(ctx.run_dir, ctx.name)
    out: dict = {"checkpoint": str(cfg.ckpt_path), "epoch": ckpt["epoch"], "trained_config": ckpt["config"]["model"]}
    meters = {}
    for split in ("val", "test"):
        meter = evaluate(model, dm.eval_loader(split, ctx.device), ctx.device, dm.num_classes, ctx.amp_dtype,
                         ctx.channels_last, show, desc=split)
        meters[split] = meter
        out[split] = {**meter.compute(), "n": len(dm.splits[split])}
        tb.scalars({f"{split}/{k}": v for k, v in out[split].items() if k != "n"}, int(ckpt["epoch"]))
    cm = meters["test"].confusion.cpu().numpy()
    per_class = meters["test"].per_class_accuracy().cpu().numpy()
    support = cm.sum(1)
    table = class_table()
    with open(ctx.run_dir / "per_class_accuracy.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "wnid", "name", "support", "accuracy"])
        for c in range(dm.num_classes):
            w.writerow([c, table[c][0] if c < len(table) else "", class_name(c), int(support[c]),
                        f"{per_class[c]:.6f}" if support[c] else ""])
    confused = top_confusions(cm, int(cfg.evaluate.top_confusions))
    with open(ctx.run_dir / "top_confusions.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["true", "true_name", "predicted", "predicted_name", "count",
                                          "share_of_true"])
        w.writeheader()
        w.writerows(confused)
    np.save(ctx.run_dir / "confusion_matrix.npy", cm)
    names = [class_name(c) for c in range(dm.num_classes)]
    fig = plots.confusion_matrix(cm, names, f"Test confusion matrix ({len(dm.splits['test'])} images, "
                                            f"top-1 {out['test']['accuracy']:.2%})")
    tb.figure("test/confusion_matrix", fig)
    plots.save(fig, ctx.run_dir / "confusion_matrix.png")
    out["top_confusions"] = confused
    out["gap_val_minus_test"] = {k: out["val"][k] - out["test"][k] for k in ("accuracy", "top5", "f1_macro", "loss")}
    (ctx.run_dir / "metrics.json").write_text(json.dumps(out, indent=2))
    tb.close()
    for split in ("val", "test"):
        m = out[split]
        log.info("%-4s n=%d  loss %.4f  top-1 %.4f  top-5 %.4f  macro-F1 %.4f", split, m["n"], m["loss"],
                 m["accuracy"], m["top5"], m["f1_macro"])
    for r in confused[:5]:
        log.info("confused: %s -> %s (%d, %.0f%% of %s)", r["true_name"], r["predicted_name"], r["count"],
                 100 * r["share_of_true"], r["true_name"])
    return float(out["test"]["accuracy"])
