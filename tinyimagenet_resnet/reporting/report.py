"""`tinyimagenet-report [--lang fr|en] [--out report] [--run KIND=DIR ...] [--sweep DIR ...]`

Builds `report/REPORT.md` and `report/figures/` following the course outline, from the run directories the other
tasks wrote. By default it takes the latest run of each kind under `outputs/` and `multirun/`; `--run KIND=DIR`
(KIND: inspect, baselines, overfit, lr_find, train, evaluate) and `--sweep DIR` (repeatable) pick them by path.
Missing runs give sections marked "not run yet", with the command to run. Judgement questions are left as marked
prompts carrying the measured facts.
"""

from __future__ import annotations

import csv
import platform
import shutil
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..artifacts import names
from ..artifacts.files import write_text
from ..artifacts.records import BaselinesRecord, EvalMetrics, InspectRecord, LRFindRecord, SplitSummary, TrainMetrics
from ..artifacts.runs import Run, expand, is_run
from ..cli import UsageError, parser
from ..model import build_model
from ..sweeps.summary import collect
from .figures import curves, save
from .overlay import overlay
from .text import TEXT

RUN_KINDS = ("inspect", "baselines", "overfit", "lr_find", "train", "evaluate")


@dataclass
class ReportOptions:
    lang: str = "en"
    out: str = "report"
    outputs: str = "outputs"
    multirun: str = "multirun"
    project: str = "Tiny ImageNet-200 × residual blocks + Dropout2d inside the blocks"
    runs: dict = field(default_factory=dict)  # kind -> run directory, chosen by the user
    sweeps: list = field(default_factory=list)  # sweep directories, chosen by the user


MAIN = "python -m tinyimagenet_resnet.main"
HOW = {
    "inspect": f"{MAIN} task=inspect data.path=<data>",
    "baselines": f"{MAIN} task=baselines data.path=<data>",
    "overfit": f"{MAIN} experiment=overfit_small data.path=<data>",
    "lr_find": f"{MAIN} task=lr_find data.path=<data>",
    "lr_wd": f"{MAIN} sweep=lr_wd data.path=<data>",
    "blocks_dropout": f"{MAIN} sweep=blocks_dropout data.path=<data> optim.lr=<lr> optim.weight_decay=<wd>",
    "train": f"{MAIN} data.path=<data> optim.lr=<lr> optim.weight_decay=<wd> model/blocks=<b> model/dropout=<p>",
    "evaluate": f"{MAIN} task=evaluate ckpt_path=<train run>/checkpoints/best.ckpt data.path=<data>",
}


def f4(x) -> str:
    return "–" if x is None else f"{x:.4f}"


def kind_of(run: Run) -> str | None:
    cfg = run.config
    task = cfg.get("task", "train")
    if task != "train":
        return task
    if run.choices.get("experiment") == "overfit_small" or run.name == "overfit_small":
        return "overfit"
    return "train" if run.read(TrainMetrics) is not None else None


def sweep_kind(sweep: Path) -> str:
    jobs = expand([sweep])
    choice = jobs[0].choices.get("sweep") if jobs else None
    if choice in ("lr_wd", "blocks_dropout", "optuna", "optuna_pareto"):
        return choice
    keys = {o.split("=", 1)[0] for j in jobs for o in j.overrides}
    return (
        "blocks_dropout"
        if keys & {"model/blocks", "model/dropout", "model.blocks", "model.dropout"}
        and not keys & {"optim.lr", "optim.weight_decay"}
        else "lr_wd"
    )


def sweep_extras(doc: Doc, sweep: Path, total: int) -> None:
    """A sweep's Pareto front (several objectives: optimization_results.yaml, pareto.png) and its mean ± std per
    configuration (seeds=N: summary_by_config.csv), where it has them."""
    results = (
        OmegaConf.load(sweep / "optimization_results.yaml") if (sweep / "optimization_results.yaml").is_file() else {}
    )
    solutions = results.get("solutions") if results else None
    if solutions:
        metric_names = list(results.get("metric_names") or [f"value_{i}" for i in range(len(solutions[0]["values"]))])
        doc.add(f"**{doc.t['pareto'].format(n=len(solutions), total=total)}**", "")
        doc.table(
            ["trial", *metric_names, "params"],
            [
                (s.trial, *(f"{v:.4g}" for v in s["values"]), ", ".join(f"{k}={v}" for k, v in s.params.items()))
                for s in solutions
            ],
        )
        doc.figure(
            sweep / "pareto.png", f"pareto_{sweep.name}.png", doc.t["pareto"].format(n=len(solutions), total=total)
        )
    groups = sweep / "summary_by_config.csv"
    if groups.is_file():
        with open(groups) as f:
            rows = list(csv.DictReader(f))
        doc.add(f"**{doc.t['by_seed']}**", "")
        doc.table(
            ["rank", "configuration", "n", "mean ± std", "95%", ""],
            [
                (
                    g["rank"],
                    g["configuration"],
                    g["n"],
                    f"{f4(_num(g['mean']))} ± {f4(_num(g['std']))}",
                    f"[{f4(_num(g['ci95_low']))}, {f4(_num(g['ci95_high']))}]",
                    "best" if g["rank"] == "1" else {"True": "≈ best", "False": ""}.get(g["tied_with_best"], "n < 2"),
                )
                for g in rows
            ],
        )


def _num(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def discover(cfg: ReportOptions) -> dict:
    found: dict = {}
    root = Path(cfg.outputs)
    for d in sorted(root.glob("*/*")) if root.is_dir() else []:
        if is_run(d) and (k := kind_of(Run(d))):
            found[k] = Run(d)  # sorted by date/time: the latest wins
    sweeps: dict = {}
    mroot = Path(cfg.multirun)
    # dated grid sweeps, then the per-study folders of Optuna sweeps (multirun/optuna/<study>)
    for d in sorted(mroot.glob("2*/*")) + sorted(p for p in mroot.glob("optuna/*") if p.is_dir()):
        if (d / "summary.csv").is_file() or (d / "multirun.yaml").is_file():
            if expand([d]):
                sweeps.setdefault(sweep_kind(d), []).append(d)
    found["sweeps"] = {k: v[-1] for k, v in sweeps.items()}
    for k, path in cfg.runs.items():
        found[k] = Run(Path(path))
    if cfg.sweeps:
        found["sweeps"] = {sweep_kind(Path(s)): Path(s) for s in cfg.sweeps}
    return found


class Doc:
    def __init__(self, out: Path, lang: str):
        self.out, self.t, self.lines = out, TEXT[lang], []
        self.figures = out / "figures"
        self.figures.mkdir(parents=True, exist_ok=True)
        self.used_runs: list[Run] = []

    def add(self, *lines):
        self.lines.extend(lines)

    def h2(self, key):
        self.add("", f"## {self.t[key]}", "")

    def h3(self, qid):
        self.add("", f"### {qid}. {self.t[qid]}", "")

    def table(self, header, rows):
        self.add("| " + " | ".join(header) + " |", "|" + "---|" * len(header))
        self.add(*("| " + " | ".join(str(c) for c in row) + " |" for row in rows))
        self.add("")

    def figure(self, src: Path | None, name: str, caption: str):
        if src is None or not Path(src).is_file():
            return
        dst = self.figures / name
        if Path(src).resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        self.add(f"![{caption}](figures/{name})", f"*{caption}*", "")

    def prompt(self, qid, facts: str = ""):
        self.add(
            f"> ✏️ **{self.t['fill']} ({qid}):** {self.t['q_' + qid]}"
            + (f" — *{self.t['measured']}: {facts}*" if facts else ""),
            "",
        )

    def missing(self, kind):
        self.add(f"*{self.t['not_run']}* `{HOW[kind]}`", "")

    def use(self, run: Run):
        self.used_runs.append(run)
        self.add(f"<sub>source: `{run.path}`</sub>", "")


def command_of(run: Run) -> str:
    return " ".join([MAIN, *run.overrides])


def sweep_command(sweep: Path) -> str:
    f = sweep / "multirun.yaml"
    over = OmegaConf.load(f).hydra.overrides.task if f.is_file() else []
    return " ".join([MAIN, "-m", *over])


def architecture(model_cfg, num_classes: int) -> tuple[list, int]:
    model = build_model(OmegaConf.create(model_cfg), num_classes).eval()
    rows, hooks = [], []
    named = (
        [("stem", model.stem)]
        + [(f"stage{s + 1}.block{b + 1}", blk) for s, stage in enumerate(model.stages) for b, blk in enumerate(stage)]
        + [("head", model.head)]
    )
    for name, module in named:

        def hook(m, i, o, name=name):
            desc = type(m).__name__ if name != "stem" else "Conv3x3 + BN + act"
            if name.startswith("stage"):
                desc = (
                    f"ResidualBlock(Conv3x3-BN-act-Dropout2d({m.drop.p:g})-Conv3x3-BN, "
                    + ("1x1 conv shortcut" if isinstance(m.shortcut, torch.nn.Sequential) else "identity")
                    + ")"
                )
            elif name == "head":
                desc = "AdaptiveAvgPool2d(1) -> Flatten -> Linear"
            rows.append(
                (name, desc, "×".join(str(s) for s in o.shape[1:]), f"{sum(p.numel() for p in m.parameters()):,}")
            )

        hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    return rows, sum(p.numel() for p in model.parameters())


def build(cfg: ReportOptions) -> Path:
    out = Path(cfg.out)
    doc = Doc(out, cfg.lang)
    t = doc.t
    runs = discover(cfg)
    sweeps = runs.get("sweeps", {})
    train, ev, ins = runs.get("train"), runs.get("evaluate"), runs.get("inspect")
    ins_rec = ins.read(InspectRecord) if ins else None
    ref_cfg = train or ins or runs.get("lr_find") or runs.get("baselines")
    ref_cfg = ref_cfg.config if ref_cfg else None

    doc.add(f"# {t['title']}: {cfg.project}", "")
    # 0 --------------------------------------------------------------------------------------------------------
    doc.h2("s0")
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("torchvision", "hydra-core", "omegaconf", "datasets", "optuna", "tensorboard", "tinyimagenet-resnet"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "–"
    doc.add(
        f"- **{t['project']}:** {cfg.project}",
        f"- **{t['env']}:** "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; {platform.platform()}; cuda available: {torch.cuda.is_available()}",
        "",
    )
    doc.add(f"**{t['commands']}:**", "", "```bash")
    for kind in ("inspect", "baselines", "overfit", "lr_find", "train", "evaluate"):
        if runs.get(kind):
            doc.add(f"# {kind}", command_of(runs[kind]))
    for kind, sweep in sweeps.items():
        doc.add(f"# sweep: {kind}", sweep_command(sweep))
    doc.add("```", "")

    # 1 Data ----------------------------------------------------------------------------------------------------
    doc.h2("s1")
    split = (train or ins).read(SplitSummary) if (train or ins) else None
    data_cfg = ref_cfg["data"] if ref_cfg else None
    doc.h3("D1")
    if data_cfg:
        source = f"hub `{data_cfg['hub_name']}`" if not data_cfg["path"] else f"local copy `{data_cfg['path']}`"
        doc.add(
            f"Hugging Face `datasets` ({source}"
            f", layout of `zh-plus/tiny-imagenet`): parquet shards, `image` = 64×64 JPEG bytes, `label` = ClassLabel "
            f"over {data_cfg['num_classes']} WordNet ids.",
            "",
        )
    else:
        doc.missing("inspect")
    doc.h3("D2")
    if split:
        doc.table(["split", "images", "fingerprint"], [(k, v, split.fingerprints[k]) for k, v in split.sizes.items()])
    else:
        doc.missing("inspect")
    doc.h3("D3")
    if split:
        doc.add(
            f"val = the hub `valid` split; test = a stratified {split.test_fraction:.0%} of the hub `train` "
            f"split carved with seed {split.seed} (`datasets`' stratified splitter); train = the rest. "
            f"Split fingerprint `{split.fingerprint}`.",
            "",
        )
    else:
        doc.missing("inspect")
    doc.h3("D4")
    if ins:
        doc.use(ins)
        doc.figure(ins.path / "class_distribution.png", "class_distribution.png", t["D4"])
        cc = ins_rec.class_counts
        doc.table(
            ["split", "classes", "min / class", "max / class"],
            [(k, v["classes_present"], v["min"], v["max"]) for k, v in cc.items()],
        )
    else:
        doc.missing("inspect")
    doc.h3("D5")
    if ins_rec:
        sizes = sorted({s for v in ins_rec.image_sizes.values() for s in v})
        doc.add(
            f"- grayscale (mode L) images: {ins_rec.grayscale_share:.2%} of all "
            f"({', '.join(f'{k}: {v}' for k, v in ins_rec.image_modes.items())})",
            f"- image sizes seen: {', '.join(sizes)}",
            f"- train mean {ins_rec.train_stats['mean']} / std {ins_rec.train_stats['std']} over "
            f"{ins_rec.train_stats['images']} images",
            "",
        )
        doc.prompt("D5", f"grayscale share {ins_rec.grayscale_share:.2%}")
    else:
        doc.missing("inspect")
    doc.h3("D6")
    doc.add("Grayscale (mode L) → RGB; to tensor in [0, 1]; no resize (all images are 64×64).", "")
    doc.h3("D7")
    if data_cfg:
        doc.add(f"Normalize with mean {list(data_cfg['mean'])} and std {list(data_cfg['std'])} (train statistics).", "")
    doc.h3("D8")
    doc.h3("D9")
    if data_cfg:
        a = data_cfg["augment"]
        doc.table(
            ["augmentation (train only)", "parameters", "enabled"],
            [
                (
                    "RandomResizedCrop(64)",
                    f"scale={a['random_resized_crop']['scale']}, ratio={a['random_resized_crop']['ratio']}",
                    a["enabled"] and a["random_resized_crop"]["enabled"],
                ),
                ("RandomHorizontalFlip", f"p={a['hflip']}", a["enabled"] and a["hflip"] > 0),
                (
                    "ColorJitter",
                    ", ".join(f"{k}={a['color_jitter'][k]}" for k in ("brightness", "contrast", "saturation", "hue")),
                    a["enabled"] and a["color_jitter"]["enabled"],
                ),
            ],
        )
        doc.add(f"Pipeline: `{data_cfg.get('pipeline', 'reference')}`; val/test get no random operation.", "")
    doc.h3("D10")
    if ins:
        doc.figure(ins.path / "augmented_samples.png", "augmented_samples.png", t["D10"])
    else:
        doc.missing("inspect")
    doc.h3("D11")
    if ins_rec:
        b = ins_rec.batch
        doc.add(
            f"One train batch: x {b['x_shape']} ({b['x_dtype']}), y {b['y_shape']}; model input (B, 3, 64, 64): "
            f"{'match' if b['matches_model_input'] else 'MISMATCH'}.",
            "",
        )
    else:
        doc.missing("inspect")

    # 2 Model ---------------------------------------------------------------------------------------------------
    doc.h2("s2")
    doc.h3("M0")
    base = runs.get("baselines")
    if base:
        doc.use(base)
        bj = base.read(BaselinesRecord)
        doc.table(
            ["split", "majority class", "uniform random (expected)", "class-prior random"],
            [
                (
                    s,
                    f4(r["majority_class"]["accuracy"]),
                    f4(r["uniform_random"]["expected_accuracy"]),
                    f4(r["class_prior_random"]["expected_accuracy"]),
                )
                for s, r in (("val", bj.val), ("test", bj.test))
            ],
        )
    else:
        doc.missing("baselines")
    doc.h3("M1")
    if ref_cfg:
        rows, total = architecture(ref_cfg["model"], ref_cfg["data"]["num_classes"])
        doc.table(["layer", "module", "output (C×H×W)", "parameters"], rows)
        doc.add(
            f"Total parameters: **{total:,}** (blocks {ref_cfg['model']['blocks']}, widths "
            f"{ref_cfg['model']['widths']}, activation {ref_cfg['model']['activation']}, batch norm "
            f"{ref_cfg['model']['batch_norm']}).",
            "",
        )
        doc.prompt("M1")
    else:
        doc.missing("train")
    doc.h3("M2")
    if ins_rec:
        il = ins_rec.initial_loss
        doc.add(
            f"First-batch loss **{f4(il['loss'])}** vs ln({ref_cfg['data']['num_classes']}) = "
            f"{f4(il['ln_num_classes'])} (|diff| {f4(il['abs_diff'])}); after one backward all "
            f"{ins_rec.gradients['parameters']} parameter gradients finite and non-zero: "
            f"{ins_rec.gradients['all_finite_and_nonzero']}.",
            "",
        )
        doc.prompt("M2", f"{f4(il['loss'])} vs {f4(il['ln_num_classes'])}")
    else:
        doc.missing("inspect")

    # 3 Overfit -------------------------------------------------------------------------------------------------
    doc.h2("s3")
    doc.h3("M3")
    ov = runs.get("overfit")
    if ov:
        doc.use(ov)
        oc, om = ov.config, ov.read(TrainMetrics)
        hist = om.history
        doc.add(
            f"{oc['data']['train_subset']} train images, "
            f"augmentation {'on' if oc['data']['augment']['enabled'] else 'off'}, "
            f"blocks {oc['model']['blocks']}, dropout {oc['model']['dropout']}, {oc['optim']['name']} lr "
            f"{oc['optim']['lr']:g}, weight decay {oc['optim']['weight_decay']:g}, {len(hist)} epochs: train loss "
            f"{f4(hist[0].train_loss)} → **{f4(hist[-1].train_loss)}**, train accuracy "
            f"{f4(hist[-1].train_accuracy)}.",
            "",
        )
        steps, values = ov.scalars(names.TRAIN_LOSS)
        if steps:
            fig = curves({names.TRAIN_LOSS: (steps, values)}, "train loss", "Overfit-small: train loss", logy=True)
            doc.figure(save(fig, doc.figures / "overfit_train_loss.png"), "overfit_train_loss.png", t["M3"])
        doc.prompt("M3", f"final train loss {f4(hist[-1].train_loss)}")
    else:
        doc.missing("overfit")

    # 4 LR finder -----------------------------------------------------------------------------------------------
    doc.h2("s4")
    doc.h3("M4")
    lf = runs.get("lr_find")
    if lf:
        doc.use(lf)
        lj = lf.read(LRFindRecord)
        doc.figure(lf.path / "lr_find.png", "lr_find.png", t["M4"])
        window, suggestion = lj.stable_window, lj.suggested_lr
        found = (
            f"suggested LR **{suggestion:.3g}**; stable window **{window[0]:.3g} – {window[1]:.3g}**"
            if suggestion is not None
            else "no clear descent (the smoothed loss never fell by `lr_find.min_drop`): run more iterations"
        )
        doc.add(
            f"Range {lj.min_lr:g} → {lj.max_lr:g} over {lj.iterations} iterations ({lj.optimizer}, "
            f"weight decay {lj.weight_decay:g}); {found}.",
            "",
        )
        chosen = (
            f"chosen lr {train.config['optim']['lr']:g}, wd {train.config['optim']['weight_decay']:g}" if train else ""
        )
        facts = f"suggestion {suggestion:.3g}" if suggestion is not None else "no suggestion"
        doc.prompt("M4", facts + (f"; {chosen}" if chosen else ""))
    else:
        doc.missing("lr_find")

    # 5 Grid search ---------------------------------------------------------------------------------------------
    doc.h2("s5")
    doc.h3("M5")
    for kind in ("lr_wd", "blocks_dropout", "optuna", "optuna_pareto"):
        sweep = sweeps.get(kind)
        if sweep is None:
            if not kind.startswith("optuna"):
                doc.missing(kind)
            continue
        rows = collect(sweep)
        doc.add(f"**{kind}** — `{sweep}` ({len(rows)} runs, best first)", "")
        doc.table(
            ["rank", "run", "lr", "wd", "blocks", "dropout", "best val top-1", "val loss", "epochs", "status"],
            [
                (
                    r.rank,
                    r.run_name,
                    f"{r.lr:g}",
                    f"{r.weight_decay:g}",
                    r.blocks,
                    f"{r.dropout:g}",
                    f4(r.best_val_top1),
                    f4(r.val_loss_at_best),
                    r.epochs_run,
                    r.status,
                )
                for r in rows[:12]
            ],
        )
        best = next((r for r in rows if r.status == "ok"), None)
        if best:
            doc.add(f"Best: `{best.run_name}` — val top-1 {f4(best.best_val_top1)}.", "")
        sweep_extras(doc, sweep, len(rows))
    doc.prompt("M5")

    # 6 Full training -------------------------------------------------------------------------------------------
    doc.h2("s6")
    doc.h3("M6")
    if train:
        doc.use(train)
        tc, tm = train.config, train.read(TrainMetrics)
        doc.add(
            f"Configuration: blocks {tc['model']['blocks']}, dropout {tc['model']['dropout']}, {tc['optim']['name']} "
            f"lr {tc['optim']['lr']:g}, weight decay {tc['optim']['weight_decay']:g}, "
            f"batch {tc['data']['batch_size']}, "
            f"{tc['trainer']['epochs']} epochs, scheduler {tc['scheduler']['name']}, seed {tc['seed']}.",
            f"Best val top-1 **{f4(tm.best.val_accuracy)}** at epoch {tm.best.epoch} "
            f"(val loss {f4(tm.best.val_loss)}, top-5 {f4(tm.best.val_top5)}, macro-F1 "
            f"{f4(tm.best.val_f1_macro)}); {tm.epochs_run} epochs in {tm.wall_time_s:.0f} s.",
            "",
        )
        for metric, name in (("loss", "train_val_loss.png"), ("accuracy", "train_val_accuracy.png")):
            series = {names.split_tag(s, metric): train.scalars(names.split_tag(s, metric)) for s in ("train", "val")}
            series = {k: v for k, v in series.items() if v[0]}
            if series:
                doc.figure(
                    save(curves(series, metric, f"Full training: {metric}"), doc.figures / name),
                    name,
                    f"{t['M6']}: {metric}",
                )
        doc.prompt("M6", f"best val top-1 {f4(tm.best.val_accuracy)} at epoch {tm.best.epoch}")
    else:
        doc.missing("train")

    # 7 Comparisons ---------------------------------------------------------------------------------------------
    doc.h2("s7")
    doc.h3("M7")
    if "lr_wd" in sweeps:
        jobs = expand([sweeps["lr_wd"]])
        rows = collect(sweeps["lr_wd"])
        best = next((r for r in rows if r.status == "ok"), rows[0] if rows else None)
        if best:
            same_wd = [j for j in jobs if j.config["optim"]["weight_decay"] == best.weight_decay]
            same_lr = [j for j in jobs if j.config["optim"]["lr"] == best.lr]
            for subset, label, name, what in (
                (
                    same_wd,
                    lambda r: f"lr={r.config['optim']['lr']:g}",
                    "compare_lr.png",
                    f"LR variation (wd={best.weight_decay:g})",
                ),
                (
                    same_lr,
                    lambda r: f"wd={r.config['optim']['weight_decay']:g}",
                    "compare_wd.png",
                    f"weight-decay variation (lr={best.lr:g})",
                ),
            ):
                path = overlay(subset, names.VAL_ACC, doc.figures / name, what, label=label)
                if path:
                    doc.figure(path, name, what)
    else:
        doc.missing("lr_wd")
    if "blocks_dropout" in sweeps:
        path = overlay(
            expand([sweeps["blocks_dropout"]]),
            names.VAL_ACC,
            doc.figures / "compare_blocks_dropout.png",
            "blocks × dropout variation",
        )
        if path:
            doc.figure(path, "compare_blocks_dropout.png", "blocks × dropout variation")
    else:
        doc.missing("blocks_dropout")
    doc.prompt("M7")

    # 8 Extra ---------------------------------------------------------------------------------------------------
    doc.h2("s8")
    doc.prompt("M8")

    # 9 Test ----------------------------------------------------------------------------------------------------
    doc.h2("s9")
    doc.h3("M9")
    if ev:
        doc.use(ev)
        ej = ev.read(EvalMetrics)
        doc.table(
            ["split", "images", "loss", "top-1", "top-5", "macro-F1"],
            [
                (s, m.n, f4(m.loss), f4(m.accuracy), f4(m.top5), f4(m.f1_macro))
                for s, m in (("val", ej.val), ("test", ej.test))
            ],
        )
        doc.add(f"Checkpoint `{ej.checkpoint}` (epoch {ej.epoch}).", "")
        doc.figure(ev.path / "confusion_matrix.png", "confusion_matrix.png", "Test confusion matrix")
        if ej.top_confusions:
            doc.table(
                ["true", "predicted", "count", "share of true"],
                [
                    (r["true_name"], r["predicted_name"], r["count"], f"{r['share_of_true']:.0%}")
                    for r in ej.top_confusions[:10]
                ],
            )
        doc.prompt("M9", f"test top-1 {f4(ej.test.accuracy)} vs val {f4(ej.val.accuracy)}")
    else:
        doc.missing("evaluate")

    # 10 Limits -------------------------------------------------------------------------------------------------
    doc.h2("s10")
    doc.add(*(f"- [ ] ✏️ {item}" for item in t["limits"]), "")

    # 11 Reproducibility ----------------------------------------------------------------------------------------
    doc.h2("s11")
    if ref_cfg:
        doc.add(
            f"Seed **{ref_cfg['seed']}**; deterministic kernels: {ref_cfg['trainer']['deterministic']}.",
            "",
            "```yaml",
            OmegaConf.to_yaml(
                OmegaConf.create({k: ref_cfg[k] for k in ("seed", "model", "optim") if k in ref_cfg})
            ).rstrip(),
            "```",
            "",
        )
    doc.add(f"**{t['checklist']}:**", "")
    for kind in RUN_KINDS:
        run = runs.get(kind)
        doc.add(f"- [{'x' if run else ' '}] {kind}: " + (f"`{run.path}` — `{command_of(run)}`" if run else HOW[kind]))
    for kind in ("lr_wd", "blocks_dropout", "optuna", "optuna_pareto"):
        s = sweeps.get(kind)
        if s or not kind.startswith("optuna"):
            doc.add(f"- [{'x' if s else ' '}] sweep {kind}: " + (f"`{s}` — `{sweep_command(s)}`" if s else HOW[kind]))
    doc.add("")
    return write_text(out / "REPORT.md", "\n".join(doc.lines) + "\n")


def main(argv=None) -> int:
    d = ReportOptions()
    p = parser("tinyimagenet-report", __doc__)
    p.add_argument("--lang", default=d.lang, choices=sorted(TEXT), help="report language (default en)")
    p.add_argument("--out", default=d.out, help="output folder (default report/)")
    p.add_argument("--outputs", default=d.outputs, help="where single runs are found (default outputs/)")
    p.add_argument("--multirun", default=d.multirun, help="where sweeps are found (default multirun/)")
    p.add_argument("--project", default=d.project, help="the project title")
    p.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="KIND=DIR",
        help=f"use this run directory for KIND ({'|'.join(RUN_KINDS)}); repeatable",
    )
    p.add_argument("--sweep", action="append", default=[], metavar="DIR", help="use this sweep directory; repeatable")
    args = p.parse_args(argv)
    runs = {}
    for item in args.run:
        kind, _, path = item.partition("=")
        if kind not in RUN_KINDS or not path:
            raise UsageError(f"--run={item!r}: allowed KIND=DIR with KIND one of {'|'.join(RUN_KINDS)}")
        if not is_run(Path(path)):
            raise UsageError(f"--run {kind}={path!r}: not a run directory (no .hydra/config.yaml)")
        runs[kind] = path
    for sweep in args.sweep:
        if not Path(sweep).is_dir():
            raise UsageError(f"--sweep={sweep!r}: no such folder; allowed: a multirun/<date>/<time> folder")
    cfg = ReportOptions(args.lang, args.out, args.outputs, args.multirun, args.project, runs, list(args.sweep))
    path = build(cfg)
    print(f"wrote {path} and {path.parent / 'figures'}")
    return 0


if __name__ == "__main__":
    from ..cli import run_tool

    sys.exit(run_tool(main))
