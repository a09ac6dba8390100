"""Which runs a report is built from: the latest of each kind under outputs/ and multirun/, or those the user named."""

from __future__ import annotations

from pathlib import Path

from ..artifacts.records import TrainMetrics
from ..artifacts.runs import Run, expand, is_run
from ..compared import keys_of
from ..config.kinds import GRIDS, SWEEP_KINDS
from .context import ReportOptions


def kind_of(run: Run) -> str | None:
    """The kind of run for the report: its task, "overfit" for experiment=overfit_small, "train" for a training that
    wrote its metrics; None for a training that did not."""
    cfg = run.config
    task = cfg.get("task", "train")
    if task != "train":
        return task
    if run.choices.get("experiment") == "overfit_small" or run.name == "overfit_small":
        return "overfit"
    return "train" if run.read(TrainMetrics) is not None else None


def sweep_kind(sweep: Path) -> str:
    """The sweep's `sweep=` choice; for a sweep of plain overrides, blocks_dropout or lr_wd by the keys it varies."""
    jobs = expand([sweep])
    choice = jobs[0].choices.get("sweep") if jobs else None
    if choice in SWEEP_KINDS:
        return choice
    keys = {o.split("=", 1)[0] for j in jobs for o in j.overrides}
    lr_wd, blocks_dropout = GRIDS
    return blocks_dropout if keys & keys_of("blocks", "dropout") and not keys & keys_of("lr", "weight_decay") else lr_wd


def discover(cfg: ReportOptions) -> tuple[dict[str, Run], dict[str, Path]]:
    """(kind -> run, sweep kind -> sweep directory): the latest of each found under cfg.outputs and cfg.multirun
    (unless cfg.discover is False), where cfg does not name its own."""
    runs = latest_runs(Path(cfg.outputs)) if cfg.discover else {}
    sweeps = latest_sweeps(Path(cfg.multirun)) if cfg.discover else {}
    for k, path in cfg.runs.items():
        runs[k] = Run(Path(path))
    if cfg.sweeps:
        sweeps = {sweep_kind(Path(s)): Path(s) for s in cfg.sweeps}
    return runs, sweeps


def latest_runs(root: Path) -> dict[str, Run]:
    """The latest run of each kind under outputs/<date>/<time>."""
    found = {}
    for d in sorted(root.glob("*/*")) if root.is_dir() else []:
        if is_run(d) and (k := kind_of(Run(d))):
            found[k] = Run(d)  # sorted by date/time: the latest wins
    return found


def latest_sweeps(mroot: Path) -> dict[str, Path]:
    """The latest sweep of each kind under multirun/ that holds at least one job."""
    sweeps: dict = {}
    # dated grid sweeps, then the per-study folders of Optuna sweeps (multirun/optuna/<study>)
    dated = sorted(mroot.glob("2*/*")) + sorted(p for p in mroot.glob("optuna/*") if p.is_dir())
    for d in dated:
        if (d / "summary.csv").is_file() or (d / "multirun.yaml").is_file():
            if expand([d]):
                sweeps.setdefault(sweep_kind(d), []).append(d)
    return {k: v[-1] for k, v in sweeps.items()}
