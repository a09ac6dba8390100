"""Sweep summary tables (`summary.md`, `summary.csv`, best first) built from the job directories of a sweep, and
the `tinyimagenet-summarize` command that (re)builds them for any sweep directory, also an interrupted one."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from ..artifacts.files import write_csv, write_text
from ..artifacts.records import SummaryRow, TrainMetrics
from ..artifacts.runs import Run, is_run, job_dirs
from ..config.naming import format_blocks

log = logging.getLogger(__name__)

STATUS = {"ok": "ok", "pruned": "pruned"}  # every other status of a job (running, diverged, ...) is a failure


def job_row(job: Path) -> SummaryRow | None:
    """One row per job directory (needs Hydra's .hydra/config.yaml; metrics.json may be missing)."""
    if not is_run(job):
        return None
    run = Run(job)
    cfg = run.config
    metrics = run.read(TrainMetrics)
    best = metrics.best if metrics else None
    validated = best is not None and best.epoch is not None
    return SummaryRow(
        job=job.name,
        run_name=run.name,
        lr=cfg["optim"]["lr"],
        weight_decay=cfg["optim"]["weight_decay"],
        blocks=format_blocks(cfg["model"]["blocks"]),
        dropout=cfg["model"]["dropout"],
        best_val_top1=best.val_accuracy if validated else None,
        val_loss_at_best=best.val_loss if validated else None,
        epochs_run=metrics.epochs_run if metrics else 0,
        status=STATUS.get(metrics.status, "failed") if metrics else "failed",
        wall_time_s=metrics.wall_time_s if metrics else None,
    )


def study_rows(sweeper) -> list[SummaryRow]:
    """Rows that Optuna workers stored with their trials (`summary_row`), so that a summary also lists the trials
    other workers ran, on machines whose run directories this one cannot see. [] for other sweepers."""
    url, name = (sweeper or {}).get("storage"), (sweeper or {}).get("study_name")
    if not url or not name:
        return []
    import optuna

    from .storage import make_storage

    try:
        study = optuna.load_study(study_name=name, storage=make_storage(url))
    except Exception as exc:  # noqa: BLE001 - the summary of local runs is still worth writing
        log.warning(
            "Sweep summary without the study's other workers: cannot open study %r in %s (%s)",
            name,
            url.split("@")[-1],
            str(exc).splitlines()[0][:200],
        )
        return []
    return [
        SummaryRow.from_json(t.user_attrs["summary_row"])
        for t in study.get_trials(deepcopy=False)
        if "summary_row" in t.user_attrs
    ]


def collect(sweep_dir: Path, extra_rows: list[SummaryRow] = ()) -> list[SummaryRow]:
    rows = [r for job in job_dirs(sweep_dir) if (r := job_row(job))]
    local = {r.job for r in rows}
    rows += [r for r in extra_rows if r.job not in local]
    rows.sort(key=lambda r: (r.best_val_top1 is None, -(r.best_val_top1 or 0.0), r.status != "ok"))
    for i, row in enumerate(rows, 1):
        row.rank = i
    return rows


FORMATS = {"best_val_top1": "{:.4f}", "val_loss_at_best": "{:.4f}", "wall_time_s": "{:.1f}"}


def fmt(v, column: str = "") -> str:
    """A table cell: 4 decimals for metrics, 1 for seconds, %g for other floats, – for missing values."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return FORMATS.get(column, "{:g}").format(v)
    return str(v)


def write_summary(sweep_dir: Path, sweeper=None) -> list[SummaryRow]:
    """summary.md / summary.csv of the job directories in `sweep_dir`, plus, for an Optuna sweep (`sweeper` is
    its hydra.sweeper config), the trials other workers recorded in the shared study."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir, study_rows(sweeper))
    columns = SummaryRow.COLUMNS
    write_csv(sweep_dir / "summary.csv", columns, (r.to_json() for r in rows))
    lines = [
        f"# Sweep summary: {sweep_dir}",
        "",
        f"{len(rows)} runs, best val top-1 first.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(fmt(getattr(r, c), c) for c in columns) + " |" for r in rows]
    best = next((r for r in rows if r.status == "ok" and r.best_val_top1 is not None), None)
    if best:
        overrides = sweep_dir / best.job / ".hydra" / "overrides.yaml"
        cmd = " ".join(yaml.safe_load(overrides.read_text()) or []) if overrides.is_file() else ""
        lines += [
            "",
            f"**Best:** `{best.run_name}` (job {best.job}): val top-1 {best.best_val_top1:.4f}, "
            f"lr={best.lr:g}, wd={best.weight_decay:g}, blocks={best.blocks}, "
            f"dropout={best.dropout:g}",
            "",
            f"Overrides: `{cmd}`",
        ]
        log.info("Best configuration: %s (job %s) val top-1 %.4f", best.run_name, best.job, best.best_val_top1)
    write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    return rows


class SummaryCallback(Callback):
    """Writes summary.md / summary.csv into the sweep directory at the end of every multirun."""

    def on_multirun_end(self, config, **kwargs) -> None:
        if "ResumableOptunaSweeper" in str(config.hydra.sweeper.get("_target_", "")):
            return  # that sweeper writes the summary of its study's folder itself, also when it stops early
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            rows = write_summary(sweep_dir, config.hydra.get("sweeper"))
            log.info("Sweep summary (%d runs): %s", len(rows), sweep_dir / "summary.md")


def main(argv=None) -> int:
    """`tinyimagenet-summarize SWEEP_DIR [...]`. For an Optuna sweep it also lists the trials that workers on other
    machines recorded in the shared study (run it from the folder the sweep was started in, where a relative
    storage path points)."""
    from ..cli import UsageError, parser

    p = parser("tinyimagenet-summarize", main.__doc__)
    p.add_argument("sweep_dirs", nargs="+", type=Path, help="multirun/<date>/<time> or multirun/optuna/<study>")
    args = p.parse_args(argv)
    for sweep in args.sweep_dirs:
        if not sweep.is_dir():
            raise UsageError(f"sweep_dir={str(sweep)!r}: no such folder; allowed: a multirun/<date>/<time> folder")
        recorded = sweep / "multirun.yaml"
        sweeper = OmegaConf.select(OmegaConf.load(recorded), "hydra.sweeper") if recorded.is_file() else None
        rows = write_summary(sweep, sweeper)
        print(f"{sweep}: {len(rows)} runs -> {sweep / 'summary.md'}")
        for r in rows[:10]:
            print(f"  {r.rank:>3}. {r.run_name:<50} top1={fmt(r.best_val_top1, 'best_val_top1')} status={r.status}")
    return 0


if __name__ == "__main__":
    from ..cli import run_tool

    sys.exit(run_tool(main))
