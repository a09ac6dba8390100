"""`tinyimagenet-report [--lang fr|en] [--out report] [--run KIND=DIR ...] [--sweep DIR ...]`

Builds `report/REPORT.md` and `report/figures/` following the course outline, from the run directories the other
tasks wrote. By default it takes the latest run of each kind under `outputs/` and `multirun/`; `--run KIND=DIR`
(KIND: inspect, baselines, overfit, lr_find, train, evaluate) and `--sweep DIR` (repeatable) pick them by path.
Missing runs give sections marked "not run yet", with the command to run. Judgement questions are left as marked
prompts carrying the measured facts.
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..artifacts.files import write_text
from ..artifacts.records import TrainMetrics
from ..artifacts.runs import Run, expand, is_run
from ..cli import UsageError, parser
from ..model import build_model
from .sections import csv_rows, g3
from .text import TEXT

# model keys added after 0.1.0, with the value every earlier run had
MODEL_DEFAULTS = {"activation": "relu", "batch_norm": True}
RUN_KINDS = ("inspect", "baselines", "overfit", "lr_find", "train", "evaluate")


@dataclass
class ReportOptions:
    lang: str = "en"
    out: str = "report"
    outputs: str = "outputs"
    multirun: str = "multirun"
    project: str | None = None  # None: the language's title of the course project
    runs: dict = field(default_factory=dict)  # kind -> run directory, chosen by the user
    sweeps: list = field(default_factory=list)  # sweep directories, chosen by the user
    author: str | None = None  # section 0 (None: a prompt to fill in)
    repo: str | None = None
    protocol: dict | None = None  # task=protocol's state: which choice came from which step
    discover: bool = True  # False: only the runs and sweeps given here (no search of outputs/ and multirun/)


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
            [doc.t["h_pareto"][0], *metric_names, doc.t["h_pareto"][1]],
            [
                (s.trial, *(f"{v:.3g}" for v in s["values"]), ", ".join(f"{k}={v}" for k, v in s.params.items()))
                for s in solutions
            ],
        )
        doc.figure(
            sweep / "pareto.png", f"pareto_{sweep.name}.png", doc.t["pareto"].format(n=len(solutions), total=total)
        )
    groups = sweep / "summary_by_config.csv"
    if groups.is_file():
        rows = csv_rows(groups)
        doc.add(f"**{doc.t['by_seed']}**", "")
        doc.table(
            doc.t["h_seeds"],
            [
                (
                    g["rank"],
                    g["configuration"],
                    g["n"],
                    f"{g3(_num(g['mean']))} ± {g3(_num(g['std']))}",
                    f"[{g3(_num(g['ci95_low']))}, {g3(_num(g['ci95_high']))}]",
                    doc.t["best"]
                    if g["rank"] == "1"
                    else {"True": doc.t["near_best"], "False": ""}.get(g["tied_with_best"], "n < 2"),
                )
                for g in rows
            ],
        )


def _num(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def discover(cfg: ReportOptions) -> dict:
    found: dict = {}
    root = Path(cfg.outputs)
    for d in sorted(root.glob("*/*")) if root.is_dir() and cfg.discover else []:
        if is_run(d) and (k := kind_of(Run(d))):
            found[k] = Run(d)  # sorted by date/time: the latest wins
    sweeps: dict = {}
    mroot = Path(cfg.multirun)
    # dated grid sweeps, then the per-study folders of Optuna sweeps (multirun/optuna/<study>)
    dated = sorted(mroot.glob("2*/*")) + sorted(p for p in mroot.glob("optuna/*") if p.is_dir())
    for d in dated if cfg.discover else []:
        if (d / "summary.csv").is_file() or (d / "multirun.yaml").is_file():
            if expand([d]):
                sweeps.setdefault(sweep_kind(d), []).append(d)
    found["sweeps"] = {k: v[-1] for k, v in sweeps.items()}
    for k, path in cfg.runs.items():
        found[k] = Run(Path(path))
    if cfg.sweeps:
        found["sweeps"] = {sweep_kind(Path(s)): Path(s) for s in cfg.sweeps}
    return found


NNBSP, NBSP = "\u202f", "\u00a0"  # French typography: a narrow space groups thousands, a no-break space before ":"
_CODE = re.compile(r"(`[^`]*`|<sub>.*?</sub>|\]\([^)]*\))")  # inline code, source lines, link targets: untouched
# a number of prose: not inside a word, a key=value, a path, a version (2.14.1), a list ([64,128,256]), a range
# (1e-3, top-1), scientific notation (3.00e-03); a sentence's final period is not a decimal point
_NUMBER = re.compile(r"(?<![\w.,=/:\[])(?<!\w-)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w=/\]]|[.,]\d)")
_PERCENT = re.compile(r"(\d)%")
_COLON = re.compile(r"(?<=[^\s:/])\s?:(?=\s|\*|$)")


def french_number(m: re.Match) -> str:
    whole, decimals = m.group(1).replace(",", NNBSP), m.group(2)
    return f"{whole},{decimals}" if decimals is not None else whole


def localize(line: str, lang: str) -> str:
    """A line of the report in the language's typography: in French, `187,608` becomes 187 608 (narrow space),
    `0.00724` becomes 0,00724, `12%` 12 %, and a colon gets its no-break space; code, paths, config values (`a=0.1`,
    `lr=0.001_wd`), versions (2.14.1) and the source lines are left as they are."""
    if lang != "fr" or line.startswith(("```", "    ")):
        return line
    parts = _CODE.split(line)
    for i in range(0, len(parts), 2):  # the text between code spans
        text = _NUMBER.sub(french_number, parts[i])
        text = _PERCENT.sub(rf"\1{NNBSP}%", text)
        parts[i] = _COLON.sub(f"{NBSP}:", text)
    return "".join(parts)


class Doc:
    def __init__(self, out: Path, lang: str):
        self.out, self.t, self.lines, self.lang = out, TEXT[lang], [], lang
        self.figures = out / "figures"
        self.figures.mkdir(parents=True, exist_ok=True)
        self.used_runs: list[Run] = []
        self._code = False  # inside a ``` block

    def add(self, *lines):
        for line in lines:
            if str(line).startswith("```"):
                self._code = not self._code
                self.lines.append(line)
            else:
                self.lines.append(line if self._code else localize(str(line), self.lang))

    def num(self, x) -> str:
        """An integer as this language writes it: 4,000 / 4 000."""
        return localize(f"{int(x):,}", self.lang)

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
        self.add(f"<sub>{self.t['source']}: `{run.path}`</sub>", "")


def _hydra_overrides(hydra_node) -> list[str]:
    """The command line's `hydra.*` overrides (hydra.sweeper.n_trials=3, hydra/launcher=joblib, ...); the mode is
    the `-m` flag, not an override the user typed."""
    return [o for o in (hydra_node.get("overrides", {}).get("hydra") or []) if not o.startswith("hydra.mode=")]


def command_of(run: Run) -> str:
    f = run.path / ".hydra" / "hydra.yaml"
    hydra = (OmegaConf.to_container(OmegaConf.load(f)).get("hydra", {}) if f.is_file() else {}) or {}
    return " ".join([MAIN, *_quote(run.overrides), *_quote(_hydra_overrides(hydra))])


def sweep_command(sweep: Path) -> str:
    f = sweep / "multirun.yaml"
    hydra = OmegaConf.to_container(OmegaConf.load(f).hydra) if f.is_file() else {}
    over = hydra.get("overrides", {}).get("task") or [] if hydra else []
    return " ".join([MAIN, "-m", *_quote(over), *_quote(_hydra_overrides(hydra))])


def _quote(overrides) -> list[str]:
    """Shell-quoted where the shell would split or expand them (lists, spaces)."""
    import shlex

    return [shlex.quote(o) for o in overrides]


def architecture(model_cfg, num_classes: int) -> tuple[list, int]:
    model_cfg = {**MODEL_DEFAULTS, **model_cfg}  # runs of older versions lack the later keys
    model = build_model(OmegaConf.create(model_cfg), num_classes).eval()
    bn = " + BN" if model_cfg.get("batch_norm", True) else ""  # the text follows the config (batch_norm=false)
    act = str(model_cfg.get("activation", "relu"))
    rows, hooks = [], []
    named = (
        [("stem", model.stem)]
        + [(f"stage{s + 1}.block{b + 1}", blk) for s, stage in enumerate(model.stages) for b, blk in enumerate(stage)]
        + [("head", model.head)]
    )
    for name, module in named:

        def hook(m, i, o, name=name):
            desc = type(m).__name__ if name != "stem" else f"Conv3x3{bn} + {act}"
            if name.startswith("stage"):
                desc = (
                    f"ResidualBlock(Conv3x3{bn.replace(' + ', '-')}-{act}-Dropout2d({m.drop.p:g})-Conv3x3"
                    f"{bn.replace(' + ', '-')}, "
                    + ("1x1 conv shortcut" if isinstance(m.shortcut, torch.nn.Sequential) else "identity")
                    + ")"
                )
            elif name == "head":
                desc = "AdaptiveAvgPool2d(1) -> Flatten -> Linear"
            rows.append(  # the layer as code: Dropout2d(0.3) stays 0.3 in every language
                (
                    name,
                    f"`{desc}`",
                    "×".join(str(s) for s in o.shape[1:]),
                    f"{sum(p.numel() for p in m.parameters()):,}",
                )
            )

        hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    return rows, sum(p.numel() for p in model.parameters())


def build(cfg: ReportOptions) -> Path:
    """REPORT.md (and figures/) in cfg.out: the sections of `sections.SECTIONS`, in order."""
    from .sections import SECTIONS, Ctx

    out = Path(cfg.out)
    doc = Doc(out, cfg.lang)
    runs = discover(cfg)
    ctx = Ctx(doc, cfg, runs, runs.get("sweeps", {}))
    doc.add(f"# {doc.t['title']}: {cfg.project or doc.t['project_title']}", "")
    for key, section in SECTIONS:
        doc.h2(key)
        section(ctx)
    return write_text(out / "REPORT.md", "\n".join(doc.lines) + "\n")


def main(argv=None) -> int:
    d = ReportOptions()
    p = parser("tinyimagenet-report", __doc__)
    p.add_argument("--lang", default=d.lang, choices=sorted(TEXT), help="report language (default en)")
    p.add_argument("--out", default=d.out, help="output folder (default report/)")
    p.add_argument("--outputs", default=d.outputs, help="where single runs are found (default outputs/)")
    p.add_argument("--multirun", default=d.multirun, help="where sweeps are found (default multirun/)")
    p.add_argument("--project", default=d.project, help="the project title (default: the course project's)")
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
