"""Sections 2 to 4 of the report: the model (baselines, architecture, initial loss), overfitting a small sample, and
the LR finder."""

from __future__ import annotations

from ..artifacts import names
from ..artifacts.records import BaselinesRecord, LRFindRecord, SplitSummary, TrainMetrics
from .architecture import MODEL_DEFAULTS, architecture
from .context import Ctx
from .document import g3
from .figures import curves, save
from .flags import OVERFIT_LAST, OVERFIT_LOSS, final_loss
from .redraw import lr_figure


def model(c: Ctx) -> None:
    """M0 to M2: the trivial baselines, the architecture layer by layer, the loss at initialisation."""
    doc, t = c.doc, c.t
    doc.h3("M0")
    base = c.run("baselines")
    if base:
        doc.use(base)
        bj = base.read(BaselinesRecord)
        doc.table(
            t["h_baselines"],
            [
                (
                    s,
                    g3(r["majority_class"]["accuracy"]),
                    g3(r["uniform_random"]["expected_accuracy"]),
                    g3(r["class_prior_random"]["expected_accuracy"]),
                )
                for s, r in (("val", bj.val), ("test", bj.test))
            ],
        )
    else:
        doc.missing("baselines")
    doc.h3("M1")
    ref = c.ref_cfg
    if ref:
        m = {**MODEL_DEFAULTS, **ref["model"]}
        rows, total = architecture(m, ref["data"]["num_classes"])
        doc.table(t["h_arch"], rows)
        doc.add(
            t["m1"].format(
                total=total, blocks=m["blocks"], widths=m["widths"], act=m["activation"], bn=c.yes(m["batch_norm"])
            ),
            "",
        )
        doc.prompt("M1")
    else:
        doc.missing("train")
    doc.h3("M2")
    rec = c.inspect_record
    if rec:
        il = rec.initial_loss
        doc.add(
            t["m2"].format(  # 4 figures: the point is how close the loss is to ln(classes)
                loss=f"{il['loss']:.4f}",
                n=ref["data"]["num_classes"],
                ln=f"{il['ln_num_classes']:.4f}",
                diff=g3(il["abs_diff"]),
                params=rec.gradients["parameters"],
                ok=c.yes(rec.gradients["all_finite_and_nonzero"]),
            ),
            "",
        )
        doc.prompt("M2", f"{il['loss']:.4f} / ln({ref['data']['num_classes']}) = {il['ln_num_classes']:.4f}")
    else:
        doc.missing("inspect")


def overfit(c: Ctx) -> None:
    """M3: the overfit-small run, its train-loss curve, and a warning when its loss did not end near zero."""
    doc, t = c.doc, c.t
    doc.h3("M3")
    if not (found := c.found("overfit", TrainMetrics, lambda m: m.history)):
        return
    ov, om = found
    oc, hist = ov.config, om.history
    split = ov.read(SplitSummary)
    doc.add(
        t["m3"].format(
            n=oc["data"]["train_subset"] or (split.sizes["train"] if split else "–"),
            aug=t["on"] if oc["data"]["augment"]["enabled"] else t["off"],
            blocks=oc["model"]["blocks"],
            dropout=g3(oc["model"]["dropout"]),
            optim=oc["optim"]["name"],
            lr=g3(oc["optim"]["lr"]),
            wd=g3(oc["optim"]["weight_decay"]),
            epochs=len(hist),
            first=g3(hist[0].train_loss),
            last=g3(hist[-1].train_loss),
            acc=g3(hist[-1].train_accuracy),
        ),
        "",
    )
    steps, values = ov.scalars(names.TRAIN_LOSS)
    if steps:
        series = {t["series"].get(names.TRAIN_LOSS, names.TRAIN_LOSS): (steps, values)}
        fig = curves(series, t["train_loss"], t["m3_fig"], xlabel=t["epoch"], logy=True, integer_x=True)
        doc.figure(save(fig, doc.figures / "overfit_train_loss.png"), "overfit_train_loss.png", t["M3"])
    ended = final_loss(hist)
    if ended > OVERFIT_LOSS:
        flag = t["flag_overfit"].format(loss=g3(ended), n=len(hist[-OVERFIT_LAST:]), limit=OVERFIT_LOSS)
        doc.add(f"> ⚠️ {flag}", "")
    doc.prompt("M3", t["m3_fact"].format(loss=g3(hist[-1].train_loss)))


def lr_finder(c: Ctx) -> None:
    """M4: the LR finder's curve and suggestion, next to the LR the training chose."""
    doc, t = c.doc, c.t
    doc.h3("M4")
    if not (found := c.found("lr_find", LRFindRecord)):
        return
    lf, lj = found
    doc.figure(lr_figure(c, lf, lj), "lr_find.png", t["M4"])
    window, suggestion = lj.stable_window, lj.suggested_lr
    found = (
        t["m4_found"].format(lr=g3(suggestion), lo=g3(window[0]), hi=g3(window[1]))
        if suggestion is not None
        else t["m4_none"]
    )
    doc.add(
        t["m4"].format(
            lo=lj.min_lr, hi=lj.max_lr, n=lj.iterations, optim=lj.optimizer, wd=lj.weight_decay, found=found
        ),
        "",
    )
    train = c.run("train")
    chosen = (
        t["m4_chosen"].format(lr=g3(train.config["optim"]["lr"]), wd=g3(train.config["optim"]["weight_decay"]))
        if train
        else ""
    )
    facts = t["m4_fact_lr"].format(lr=g3(suggestion)) if suggestion is not None else t["m4_fact_none"]
    doc.prompt("M4", facts + (f"; {chosen}" if chosen else ""))
