"""The sections of the course report, one function each, in the order of `SECTIONS`.

Every sentence comes from the language's text table (reporting/text.py); numbers come from the run directories,
floats in tables with 3 significant figures."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib import metadata

import torch
from omegaconf import OmegaConf

from ..artifacts import names
from ..artifacts.records import BaselinesRecord, EvalMetrics, InspectRecord, LRFindRecord, SplitSummary, TrainMetrics
from ..artifacts.runs import Run, expand
from ..sweeps.summary import collect
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
    doc.add(
        f"- **{t['project']}:** {c.opts.project or t['project_title']}",
        f"- **{t['author']}:** {c.opts.author or fill + t['fill_author']}",
        f"- **{t['repo']}:** {c.opts.repo or fill + t['fill_repo']}",
        f"- **{t['env']}:** "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; {platform.platform()}; cuda: {torch.cuda.is_available()}",
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
    if split:
        doc.table(t["h_split"], [(k, v, split.fingerprints[k]) for k, v in split.sizes.items()])
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
        doc.figure(ins.path / "class_distribution.png", "class_distribution.png", t["D4"])
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
        doc.figure(ins.path / "augmented_samples.png", "augmented_samples.png", t["D10"])
    else:
        doc.missing("inspect")
    doc.h3("D11")
    if rec:
        b = rec.batch
        match = t["match"] if b["matches_model_input"] else t["mismatch"]
        doc.add(t["d11"].format(x=b["x_shape"], dtype=b["x_dtype"], y=b["y_shape"], match=match), "")
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
        fig = curves({names.TRAIN_LOSS: (steps, values)}, t["train_loss"], t["m3_fig"], logy=True)
        doc.figure(save(fig, doc.figures / "overfit_train_loss.png"), "overfit_train_loss.png", t["M3"])
    doc.prompt("M3", t["m3_fact"].format(loss=g3(hist[-1].train_loss)))


# ---------------------------------------------------------------------------------------------------- 4
def lr_finder(c: Ctx) -> None:
    doc, t = c.doc, c.t
    doc.h3("M4")
    if not (found := c.found("lr_find", LRFindRecord)):
        return
    lf, lj = found
    doc.figure(lf.path / "lr_find.png", "lr_find.png", t["M4"])
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
            doc.figure(save(curves(series, t[metric], title), doc.figures / name), name, title)
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
                path = overlay(subset, names.VAL_ACC, doc.figures / name, what, label=label)
                if path:
                    doc.figure(path, name, what)
    if "blocks_dropout" in c.sweeps:
        path = overlay(
            expand([c.sweeps["blocks_dropout"]]), names.VAL_ACC, doc.figures / "compare_blocks_dropout.png", t["m7_bd"]
        )
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
    doc.figure(ev.path / "confusion_matrix.png", "confusion_matrix.png", t["m9_cm"])
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
