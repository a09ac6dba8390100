"""The sections of the course report, one function each, in the order of `SECTIONS`.

Every sentence comes from the language's text table (reporting/text.py); numbers come from the run directories,
floats in tables with 3 significant figures."""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from importlib import metadata

import torch
from omegaconf import OmegaConf

from ..artifacts import names
from ..artifacts.records import BaselinesRecord, EvalMetrics, InspectRecord, LRFindRecord, SplitSummary, TrainMetrics
from ..artifacts.runs import Run, expand
from ..sweeps.rows import collect
from .figures import curves, save
from .overlay import overlay

GRIDS = ("lr_wd", "blocks_dropout")
SWEEP_KINDS = (*GRIDS, "optuna", "optuna_pareto")


def g3(x) -> str:
    """A float with 3 significant figures (the precision of run names); '–' for none."""
    if x is None:
        return "–"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


@dataclass
class Ctx:
    doc: object  # report.Doc
    opts: object  # report.ReportOptions
    runs: dict
    sweeps: dict

    @property
    def t(self) -> dict:
        return self.doc.t

    def run(self, kind: str) -> Run | None:
        return self.runs.get(kind)

    @property
    def ref_cfg(self) -> dict | None:
        ref = self.run("train") or self.run("inspect") or self.run("lr_find") or self.run("baselines")
        return ref.config if ref else None

    @property
    def inspect_record(self) -> InspectRecord | None:
        ins = self.run("inspect")
        return ins.read(InspectRecord) if ins else None

    def yes(self, flag) -> str:
        return self.t["yes"] if flag else self.t["no"]

    def found(self, kind: str, record, has=lambda rec: True):
        """(run, its record) of a kind of run that wrote one, cited as the section's source; else None, and the
        section says it was not run yet, with the command."""
        run = self.run(kind)
        rec = run.read(record) if run else None
        if not rec or not has(rec):
            self.doc.missing(kind)
            return None
        self.doc.use(run)
        return run, rec


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
    import numpy as np

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


# The figures a run drew in English, drawn again in the report's language from the data the run kept (a run of an
# older version, without that data, gives its own figure).
def csv_rows(path) -> list[dict]:
    """The rows of a CSV file a run wrote, as dicts of text."""
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def class_distribution_figure(c: Ctx, ins: Run):
    import numpy as np

    from . import figures

    path = ins.path / "class_distribution.csv"
    if not path.is_file():
        return ins.path / "class_distribution.png"
    rows = csv_rows(path)
    splits = [k for k in rows[0] if k not in ("label", "name")] if rows else []
    counts = {k: np.array([int(r[k]) for r in rows]) for k in splits}
    return save(figures.class_distribution(counts, lang=c.doc.lang), c.doc.figures / "class_distribution.png")


def samples_figure(c: Ctx, ins: Run):
    import numpy as np

    from . import figures

    path = ins.path / "augmented_samples.npz"
    if not path.is_file():
        return ins.path / "augmented_samples.png"
    data = np.load(path)
    pipeline = (ins.config.get("data") or {}).get("pipeline", "fast")
    fig = figures.samples(data["images"] / 255.0, [int(x) for x in data["labels"]], pipeline, c.doc.lang)
    return save(fig, c.doc.figures / "augmented_samples.png")


def lr_figure(c: Ctx, lf: Run, rec):
    from . import figures

    path = lf.path / "lr_find.csv"
    if not path.is_file():
        return lf.path / "lr_find.png"
    rows = csv_rows(path)
    lrs, losses, smoothed = ([float(r[k]) for r in rows] for k in ("lr", "loss", "smoothed_loss"))
    window = tuple(rec.stable_window) if rec.stable_window else None
    fig = figures.lr_curve(lrs, losses, smoothed, rec.suggested_lr, window, lang=c.doc.lang)
    return save(fig, c.doc.figures / "lr_find.png")


def confusion_figure(c: Ctx, ev: Run):
    import numpy as np

    from ..data.classes import class_name
    from . import figures

    path = ev.path / "confusion_matrix.npy"
    if not path.is_file():
        return ev.path / "confusion_matrix.png"
    cm = np.load(path)
    fig = figures.confusion_matrix(cm, [class_name(i) for i in range(len(cm))], c.t["m9_cm"], c.doc.lang)
    return save(fig, c.doc.figures / "confusion_matrix.png")


# ---------------------------------------------------------------------------------------------------- 0
def general(c: Ctx) -> None:
    from .report import command_of, sweep_command

    doc, t = c.doc, c.t
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("torchvision", "hydra-core", "omegaconf", "datasets", "optuna", "tensorboard", "tinyimagenet-resnet"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "–"
    fill = "✏️ " + t["fill"] + ": "
    scale = (c.opts.protocol or {}).get("scale")
    if scale in ("smoke", "cpu"):  # what these numbers are not, before any of them
        doc.add(f"> ⚠️ **{t[f'banner_title_{scale}']}** {t[f'banner_{scale}']}", "")
    doc.add(
        f"- **{t['project']}:** {c.opts.project or t['project_title']}",
        f"- **{t['author']}:** {c.opts.author or fill + t['fill_author']}",
        f"- **{t['repo']}:** {c.opts.repo or fill + t['fill_repo']}",
        f"- **{t['env']}:** "
        + ", ".join(f"{k} `{v}`" for k, v in versions.items())
        + f"; `{platform.platform()}`; cuda: `{torch.cuda.is_available()}`",
        "",
    )
    doc.add(f"**{t['commands']}:**", "", "```bash")
    for kind in ("inspect", "baselines", "overfit", "lr_find", "train", "evaluate"):
        if c.run(kind):
            doc.add(f"# {kind}", command_of(c.run(kind)))
    for kind, sweep in c.sweeps.items():
        doc.add(f"# sweep: {kind}", sweep_command(sweep))
    doc.add("```", "")
    if c.opts.protocol:
        protocol_choices(c)


def protocol_choices(c: Ctx) -> None:
    """Which choice came from where: the hand-offs between the protocol's steps."""
    doc, t, state = c.doc, c.t, c.opts.protocol
    steps = state.get("steps", {})
    rows = []
    lf = steps.get("lr_find", {})
    lr = lf.get("choice", {}).get("lr")
    rows.append(("lr_find", "lr", g3(lr) if lr is not None else t["lr_none"], "`lr_find/lr_find.json`"))
    for step in GRIDS:
        st = steps.get(step, {})
        source = t["from_grid"].format(sweep=step, job=st.get("best_job", "?"))
        for key, value in st.get("choice", {}).items():
            rows.append((step, key, g3(value) if isinstance(value, float) else value, source))
    tr = steps.get("train", {})
    if tr.get("choice"):
        rows.append(("train", "checkpoint", f"`{tr['choice']['checkpoint']}`", t["from_train"]))
    doc.add(f"**{t['protocol_choices'].format(name=state.get('name', ''), scale=state.get('scale', ''))}:**", "")
    doc.table(t["h_choice"], rows)


# ---------------------------------------------------------------------------------------------------- 1
def data(c: Ctx) -> None:
    doc, t = c.doc, c.t
    train, ins = c.run("train"), c.run("inspect")
    split = (train or ins).read(SplitSummary) if (train or ins) else None
    data_cfg = c.ref_cfg["data"] if c.ref_cfg else None
    rec = c.inspect_record
    doc.h3("D1")
    if data_cfg:
        source = (
            t["d1_local"].format(path=data_cfg["path"])
            if data_cfg["path"]
            else t["d1_hub"].format(name=data_cfg["hub_name"])
        )
        doc.add(t["d1"].format(source=source, n=data_cfg["num_classes"]), "")
    else:
        doc.missing("inspect")
    doc.h3("D2")
    split = (ins or train).read(SplitSummary) if (ins or train) else None  # the same run as D4/D5
    if split:
        doc.use(ins or train)
        doc.table(t["h_split"], [(k, v, split.fingerprints[k]) for k, v in split.sizes.items()])
        trained = train.read(SplitSummary) if train and ins else None
        if trained and trained.sizes != split.sizes:
            sizes = ", ".join(f"{k} {c.doc.num(v)}" for k, v in trained.sizes.items())
            doc.add(t["d2_train"].format(sizes=sizes), "")
    else:
        doc.missing("inspect")
    doc.h3("D3")
    if split:
        doc.add(
            t["d3"].format(frac=f"{split.test_fraction:.0%}", seed=split.seed, fp=split.fingerprint),
            "",
        )
    else:
        doc.missing("inspect")
    doc.h3("D4")
    if ins and rec:
        doc.use(ins)
        doc.figure(class_distribution_figure(c, ins), "class_distribution.png", t["D4"])
        doc.table(
            t["h_classes"],
            [(k, v["classes_present"], v["min"], v["max"]) for k, v in rec.class_counts.items()],
        )
    else:
        doc.missing("inspect")
    doc.h3("D5")
    if rec:
        sizes = sorted({s for v in rec.image_sizes.values() for s in v})
        share = f"{rec.grayscale_share:.2%}"
        doc.add(
            "- " + t["d5_gray"].format(share=share, modes=", ".join(f"{k}: {v}" for k, v in rec.image_modes.items())),
            "- " + t["d5_sizes"].format(sizes=", ".join(sizes)),
            "- "
            + t["d5_stats"].format(
                mean=rec.train_stats["mean"], std=rec.train_stats["std"], n=rec.train_stats["images"]
            ),
            "",
        )
        doc.prompt("D5", t["d5_fact"].format(share=share))
    else:
        doc.missing("inspect")
    doc.h3("D6")
    doc.add(t["d6"], "")
    doc.h3("D7")
    if data_cfg:
        doc.add(t["d7"].format(mean=list(data_cfg["mean"]), std=list(data_cfg["std"])), "")
    doc.h3("D8")
    if data_cfg:
        doc.add(augmentations(t, data_cfg), "")
    else:
        doc.missing("inspect")
    doc.h3("D9")
    if data_cfg:
        a = data_cfg["augment"]
        rrc, cj = a["random_resized_crop"], a["color_jitter"]
        doc.table(
            t["h_aug"],
            [
                (
                    "RandomResizedCrop(64)",
                    f"scale={rrc['scale']}, ratio={rrc['ratio']}",
                    c.yes(a["enabled"] and rrc["enabled"]),
                ),
                ("RandomHorizontalFlip", f"p={a['hflip']}", c.yes(a["enabled"] and a["hflip"] > 0)),
                (
                    "ColorJitter",
                    ", ".join(f"{k}={cj[k]}" for k in ("brightness", "contrast", "saturation", "hue")),
                    c.yes(a["enabled"] and cj["enabled"]),
                ),
            ],
        )
        doc.add(t["d9"].format(pipeline=data_cfg.get("pipeline", "reference")), "")
    doc.h3("D10")
    if ins:
        doc.figure(samples_figure(c, ins), "augmented_samples.png", t["D10"])
    else:
        doc.missing("inspect")
    doc.h3("D11")
    if rec:
        b = rec.batch
        match = t["match"] if b["matches_model_input"] else t["mismatch"]
        doc.add(t["d11"].format(x=b["x_shape"], dtype=b["x_dtype"], y=b["y_shape"], match=match), "")
        used = (train.config or {}).get("data", {}).get("batch_size") if train else None
        if isinstance(used, int) and used != int(b["x_shape"][0]):  # (data.batch_size=auto: not known here)
            doc.add(t["d11_train"].format(inspect=b["x_shape"][0], train=used), "")
    else:
        doc.missing("inspect")


def augmentations(t: dict, data_cfg: dict) -> str:
    """D8: the train-time operations in the order they are applied, with their parameters and probabilities."""
    a = data_cfg["augment"]
    if not a["enabled"]:
        return t["d8_off"]
    ops = []
    rrc, cj = a["random_resized_crop"], a["color_jitter"]
    if rrc["enabled"]:
        ops.append(t["d8_crop"].format(lo=rrc["scale"][0], hi=rrc["scale"][1], r0=rrc["ratio"][0], r1=rrc["ratio"][1]))
    if a["hflip"] > 0:
        ops.append(t["d8_flip"].format(p=a["hflip"]))
    if cj["enabled"]:
        ops.append(t["d8_jitter"].format(b=cj["brightness"], c=cj["contrast"], s=cj["saturation"], h=cj["hue"]))
    if not ops:
        return t["d8_off"]
    how = t["d8_pipeline"] if data_cfg.get("pipeline") == "fast" else t["d8_reference"]
    return t["d8_on"].format(ops="; ".join(ops) + f" ({how})")


# ---------------------------------------------------------------------------------------------------- 2
def model(c: Ctx) -> None:
    from .report import MODEL_DEFAULTS, architecture

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


# ---------------------------------------------------------------------------------------------------- 3
def overfit(c: Ctx) -> None:
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


# ---------------------------------------------------------------------------------------------------- 4
def lr_finder(c: Ctx) -> None:
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


# ---------------------------------------------------------------------------------------------------- 5
def grids(c: Ctx) -> None:
    from .report import sweep_extras

    doc, t = c.doc, c.t
    doc.h3("M5")
    for kind in SWEEP_KINDS:
        sweep = c.sweeps.get(kind)
        if sweep is None:
            continue
        rows = collect(sweep)
        doc.add(t["m5_sweep"].format(kind=kind, path=sweep, n=len(rows)), "")
        doc.table(
            t["h_grid"],
            [
                (
                    r.rank,
                    r.run_name,
                    g3(r.lr),
                    g3(r.weight_decay),
                    r.blocks,
                    g3(r.dropout),
                    g3(r.best_val_top1),
                    g3(r.val_loss_at_best),
                    r.epochs_run,
                    r.status,
                )
                for r in rows[:12]
            ],
        )
        best = next((r for r in rows if r.status == "ok"), None)
        if best:
            doc.add(t["m5_best"].format(run=best.run_name, top1=g3(best.best_val_top1)), "")
            noise = within_noise(rows, sweep)
            if noise:
                doc.add(f"> ⚠️ {t['flag_noise'].format(**noise)}", "")
        sweep_extras(doc, sweep, len(rows))
    for kind in GRIDS:  # what was not run, below what was (never a "not run yet" above results)
        if kind not in c.sweeps:
            doc.missing(kind)
    doc.prompt("M5")


# ---------------------------------------------------------------------------------------------------- 6
def full_training(c: Ctx) -> None:
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


# ---------------------------------------------------------------------------------------------------- 7
def comparisons(c: Ctx) -> None:
    doc, t = c.doc, c.t
    doc.h3("M7")
    if "lr_wd" in c.sweeps:
        jobs = expand([c.sweeps["lr_wd"]])
        rows = collect(c.sweeps["lr_wd"])
        best = next((r for r in rows if r.status == "ok"), rows[0] if rows else None)
        if best:
            same_wd = [j for j in jobs if j.config["optim"]["weight_decay"] == best.weight_decay]
            same_lr = [j for j in jobs if j.config["optim"]["lr"] == best.lr]
            for subset, label, name, what in (
                (
                    same_wd,
                    lambda r: f"lr={g3(r.config['optim']['lr'])}",
                    "compare_lr.png",
                    t["m7_lr"].format(wd=g3(best.weight_decay)),
                ),
                (
                    same_lr,
                    lambda r: f"wd={g3(r.config['optim']['weight_decay'])}",
                    "compare_wd.png",
                    t["m7_wd"].format(lr=g3(best.lr)),
                ),
            ):
                path = overlay(subset, names.VAL_ACC, doc.figures / name, what, label, t["val_acc"], t["epoch"])
                if path:
                    doc.figure(path, name, what)
    if "blocks_dropout" in c.sweeps:
        runs = expand([c.sweeps["blocks_dropout"]])
        out = doc.figures / "compare_blocks_dropout.png"
        path = overlay(runs, names.VAL_ACC, out, t["m7_bd"], None, t["val_acc"], t["epoch"])
        if path:
            doc.figure(path, "compare_blocks_dropout.png", t["m7_bd"])
    for kind in GRIDS:  # below the figures that were drawn
        if kind not in c.sweeps:
            doc.missing(kind)
    doc.prompt("M7")


# ---------------------------------------------------------------------------------------------------- 8, 9, 10, 11
def extra(c: Ctx) -> None:
    c.doc.prompt("M8")


def test_evaluation(c: Ctx) -> None:
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


def limits(c: Ctx) -> None:
    c.doc.add(*(f"- [ ] ✏️ {item}" for item in c.t["limits"]), "")


def reproducibility(c: Ctx) -> None:
    from .report import HOW, RUN_KINDS, command_of, sweep_command

    doc, t, ref = c.doc, c.t, c.ref_cfg
    if ref:
        doc.add(
            t["s11_seed"].format(seed=ref["seed"], det=c.yes(ref["trainer"]["deterministic"])),
            "",
            "```yaml",
            OmegaConf.to_yaml(OmegaConf.create({k: ref[k] for k in ("seed", "model", "optim") if k in ref})).rstrip(),
            "```",
            "",
        )
    doc.add(f"**{t['checklist']}:**", "")
    for kind in RUN_KINDS:
        run = c.run(kind)
        doc.add(f"- [{'x' if run else ' '}] {kind}: " + (f"`{run.path}` — `{command_of(run)}`" if run else HOW[kind]))
    for kind in SWEEP_KINDS:
        s = c.sweeps.get(kind)
        if s or kind in GRIDS:
            doc.add(f"- [{'x' if s else ' '}] sweep {kind}: " + (f"`{s}` — `{sweep_command(s)}`" if s else HOW[kind]))
    doc.add("")


# (heading key, function): the report, in order
SECTIONS = (
    ("s0", general),
    ("s1", data),
    ("s2", model),
    ("s3", overfit),
    ("s4", lr_finder),
    ("s5", grids),
    ("s6", full_training),
    ("s7", comparisons),
    ("s8", extra),
    ("s9", test_evaluation),
    ("s10", limits),
    ("s11", reproducibility),
)
