"""Sweep summary tables (`summary.md`, `summary.csv`, best first) built from the job directories of a sweep."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import yaml

from ..runs import Run, is_run

log = logging.getLogger(__name__)

COLUMNS = ["rank", "job", "run_name", "lr", "weight_decay", "blocks", "dropout", "best_val_top1",
           "val_loss_at_best", "epochs_run", "status", "wall_time_s"]


def _status(metrics: dict | None) -> str:
    if metrics is None:
        return "failed"
    status = metrics.get("status", "failed")
    return {"ok": "ok", "pruned": "pruned", "running": "failed", "diverged": "failed",
            "interrupted": "failed"}.get(status, "failed")


def job_row(job: Path) -> dict | None:
    """One row per job directory (needs Hydra's .hydra/config.yaml; metrics.json may be missing)."""
    if not is_run(job):
        return None
    run = Run(job)
    cfg, metrics = run.config, run.json("metrics.json")
    best = (metrics or {}).get("best") or {}
    return {
        "job": job.name,
        "run_name": run.name,
        "lr": cfg["optim"]["lr"],
        "weight_decay": cfg["optim"]["weight_decay"],
        "blocks": "".join(str(b) for b in cfg["model"]["blocks"]),
        "dropout": cfg["model"]["dropout"],
        "best_val_top1": best.get("val/accuracy") if best.get("epoch") else None,
        "val_loss_at_best": best.get("val/loss") if best.get("epoch") else None,
        "epochs_run": (metrics or {}).get("epochs_run", 0),
        "status": _status(metrics),
        "wall_time_s": (metrics or {}).get("wall_time_s"),
    }


def study_rows(sweeper) -> list[dict]:
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
        log.warning("Sweep summary without the study's other workers: cannot open study %r in %s (%s)", name,
                    url.split("@")[-1], str(exc).splitlines()[0][:200])
        return []
    return [dict(t.user_attrs["summary_row"]) for t in study.get_trials(deepcopy=False)
            if "summary_row" in t.user_attrs]


def collect(sweep_dir: Path, extra_rows: list[dict] = ()) -> list[dict]:
    rows = [r for job in sorted(Path(sweep_dir).iterdir(), key=lambda p: (len(p.name), p.name))
            if job.is_dir() and (r := job_row(job))]
    local = {r["job"] for r in rows}
    rows += [r for r in extra_rows if r["job"] not in local]
    rows.sort(key=lambda r: (r["best_val_top1"] is None, -(r["best_val_top1"] or 0.0), r["status"] != "ok"))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return rows


FORMATS = {"best_val_top1": "{:.4f}", "val_loss_at_best": "{:.4f}", "wall_time_s": "{:.1f}"}


def _fmt(v, column: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return FORMATS.get(column, "{:g}").format(v)
    return str(v)


def write_summary(sweep_dir: Path, sweeper=None) -> list[dict]:
    """summary.md / summary.csv of the job directories in `sweep_dir`, plus, for an Optuna sweep (`sweeper` is
    its hydra.sweeper config), the trials other workers recorded in the shared study."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir, study_rows(sweeper))
    with open(sweep_dir / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Sweep summary: {sweep_dir}", "", f"{len(rows)} runs, best val top-1 first.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(r[c], c) for c in COLUMNS) + " |" for r in rows]
    best = next((r for r in rows if r["status"] == "ok" and r["best_val_top1"] is not None), None)
    if best:
        overrides = sweep_dir / best["job"] / ".hydra" / "overrides.yaml"
        cmd = " ".join(yaml.safe_load(overrides.read_text()) or []) if overrides.is_file() else ""
        lines += ["", f"**Best:** `{best['run_name']}` (job {best['job']}): val top-1 {best['best_val_top1']:.4f}, "
                      f"lr={best['lr']:g}, wd={best['weight_decay']:g}, blocks={best['blocks']}, "
                      f"dropout={best['dropout']:g}", "", f"Overrides: `{cmd}`"]
        log.info("Best configuration: %s (job %s) val top-1 %.4f", best["run_name"], best["job"],
                 best["best_val_top1"])
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    return rows


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra < 1.1
    Callback = object


class SummaryCallback(Callback):
    """Writes summary.md / summary.csv into the sweep directory at the end of every multirun."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            rows = write_summary(sweep_dir, config.hydra.get("sweeper"))
            log.info("Sweep summary (%d runs): %s", len(rows), sweep_dir / "summary.md")
