"""Sections 6, 8 and 9 of the report: the full training and its curves, the optional extra iteration, the test
evaluation."""

from __future__ import annotations

from ..artifacts import names
from ..artifacts.records import EvalMetrics, TrainMetrics
from .context import Ctx
from .document import g3
from .figures import curves, save
from .flags import collapsed
from .redraw import confusion_figure


def full_training(c: Ctx) -> None:
    """M6: the training's configuration, its best epoch, and its train/val curves."""
    doc, t = c.doc, c.t
    doc.h3("M6")
    if not (found := c.found("train", TrainMetrics, lambda m: m.history)):
        return
    train, tm = found
    tc = train.config
    doc.add(
        t["m6_cfg"].format(
            blocks=tc["model"]["blocks"],
            dropout=g3(tc["model"]["dropout"]),
            optim=tc["optim"]["name"],
            lr=g3(tc["optim"]["lr"]),
            wd=g3(tc["optim"]["weight_decay"]),
            batch=tc["data"]["batch_size"],
            epochs=tc["trainer"]["epochs"],
            scheduler=tc["scheduler"]["name"],
            seed=tc["seed"],
        ),
        t["m6_best"].format(
            top1=g3(tm.best.val_accuracy),
            epoch=tm.best.epoch,
            loss=g3(tm.best.val_loss),
            top5=g3(tm.best.val_top5),
            f1=g3(tm.best.val_f1_macro),
            epochs=tm.epochs_run,
            seconds=tm.wall_time_s,
        ),
        "",
    )
    for metric, name in (("loss", "train_val_loss.png"), ("accuracy", "train_val_accuracy.png")):
        series = {names.split_tag(s, metric): train.scalars(names.split_tag(s, metric)) for s in ("train", "val")}
        series = {k: v for k, v in series.items() if v[0]}
        if series:
            title = t["m6_fig"].format(metric=t[metric])
            series = {t["series"].get(k, k): v for k, v in series.items()}
            fig = curves(series, t[metric], title, xlabel=t["epoch"], integer_x=True)
            doc.figure(save(fig, doc.figures / name), name, title)
    doc.prompt("M6", t["m6_fact"].format(top1=g3(tm.best.val_accuracy), epoch=tm.best.epoch))


def extra(c: Ctx) -> None:
    """Section 8: a prompt for an optional extra iteration."""
    c.doc.prompt("M8")


def test_evaluation(c: Ctx) -> None:
    """M9: val and test metrics of the evaluated checkpoint, its confusion matrix and top confusions."""
    doc, t = c.doc, c.t
    doc.h3("M9")
    if not (found := c.found("evaluate", EvalMetrics)):
        return
    ev, ej = found
    doc.table(
        t["h_eval"],
        [
            (s, m.n, g3(m.loss), g3(m.accuracy), g3(m.top5), g3(m.f1_macro))
            for s, m in (("val", ej.val), ("test", ej.test))
        ],
    )
    doc.add(t["m9_ckpt"].format(ckpt=ej.checkpoint, epoch=ej.epoch), "")
    collapse = collapsed(ev)
    if collapse:
        doc.add(f"> ⚠️ {t['flag_collapse'].format(**collapse)}", "")
    doc.figure(confusion_figure(c, ev), "confusion_matrix.png", t["m9_cm"])
    if ej.top_confusions:
        doc.table(
            t["h_confusions"],
            [
                (r["true_name"], r["predicted_name"], r["count"], f"{r['share_of_true']:.0%}")
                for r in ej.top_confusions[:10]
            ],
        )
    doc.prompt("M9", t["m9_fact"].format(test=g3(ej.test.accuracy), val=g3(ej.val.accuracy)))
