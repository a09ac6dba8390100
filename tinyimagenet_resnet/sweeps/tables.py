"""Sweep summary tables: `summary.md` and `summary.csv` (best first), with the Pareto front of several objectives
and the mean ± std over seeds of each configuration."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from ..artifacts.files import write_csv, write_text
from ..artifacts.summary_row import SummaryRow
from .rows import collect, study_rows
from .seeds import differing, seed_section

# main.log names the logger on every line: these lines keep the name they have always had
log = logging.getLogger("tinyimagenet_resnet.sweeps.summary")


def directions_of(sweeper) -> list[str]:
    """The objective directions of a sweep: the Optuna sweeper's `direction` (one or a list), else maximize."""
    d = (sweeper or {}).get("direction") if sweeper is not None else None
    if d is None:
        return ["maximize"]
    items = list(d) if isinstance(d, (list, tuple)) or OmegaConf.is_list(d) else [d]
    return [str(getattr(x, "name", x)).split(".")[-1] for x in items]


FORMATS = {"best_val_top1": "{:.4f}", "val_loss_at_best": "{:.4f}", "wall_time_s": "{:.1f}"}


def fmt(v, column: str = "") -> str:
    """A table cell: 4 decimals for metrics, 1 for seconds, %g for other floats, – for missing values."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return FORMATS.get(column, "{:.4g}").format(v)
    return str(v)


def pareto_front(rows: list[SummaryRow], directions: list[str]) -> set[str]:
    """Jobs whose values no other ok row dominates (at least as good in every objective, better in one)."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    pts = {
        r.job: [s * v for s, v in zip(signs, r.values, strict=True)]
        for r in rows
        if r.status == "ok" and r.values and len(r.values) == len(signs)
    }

    def dominates(a, b):
        return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b, strict=True))

    return {j for j, p in pts.items() if not any(dominates(q, p) for k, q in pts.items() if k != j)}


def table(
    rows: list[SummaryRow], objectives: list[str], directions: list[str], top1_first: bool = True
) -> tuple[list[str], list[dict]]:
    """Columns and cells of summary.csv: rank, job, run name, the parameters that differ between jobs, this
    package's columns where some job has them, one column per objective, seed, status, time."""
    params = []
    own_keys = SummaryRow.OWN_KEYS if any(r.lr is not None for r in rows) else set()
    for r in rows:
        for k in r.params:
            if k not in params and k not in own_keys and k != "seed":
                params.append(k)
    if len(rows) > 1:
        params = differing(rows, params)
    own = [c for c in SummaryRow.OWN if any(getattr(r, c) is not None for r in rows)]
    multi = len(objectives) > 1 or not own or not top1_first
    value_cols = list(objectives) if multi else []
    front = pareto_front(rows, directions) if len(directions) > 1 else set()
    cols = ["rank", "job", "run_name", *params, *own, *value_cols]
    cols += ["pareto"] * bool(front) + ["seed"] * any(r.seed is not None for r in rows)
    cols += ["epochs_run"] * any(r.epochs_run is not None for r in rows) + ["status", "wall_time_s"]
    cols += ["error"] * any(r.error for r in rows)
    cells = []
    for r in rows:
        c = {k: getattr(r, k, None) for k in cols}
        c.update({k: r.params.get(k) for k in params})
        c.update({name: (r.values[i] if r.values and i < len(r.values) else None) for i, name in enumerate(value_cols)})
        if front:
            c["pareto"] = r.job in front
        cells.append(c)
    return cols, cells


def objective_names(sweeper, config=None, n: int | None = None) -> list[str]:
    """The objectives' names: the app's `optuna.objectives` where it has one, val_top1 for this package's app
    otherwise, else value / value_0, value_1... for another app."""
    names = OmegaConf.select(config, "optuna.objectives", default=None) if config is not None else None
    if names:
        return [str(x) for x in names]
    if config is not None and OmegaConf.select(config, "optim.lr", default=None) is not None:
        return ["val_top1"]  # this package's train task returns its best val top-1
    n = n or len(directions_of(sweeper))
    return ["value"] if n == 1 else [f"value_{i}" for i in range(n)]


def write_summary(sweep_dir: Path, sweeper=None, config=None, study=None) -> list[SummaryRow]:
    """summary.md / summary.csv of the job directories in `sweep_dir`, plus, for an Optuna sweep (`sweeper` is
    its hydra.sweeper config; `study` the open study), the trials other workers recorded in the shared study.
    With several seeds per configuration, also summary_by_config.csv and its table (mean ± std over seeds)."""
    sweep_dir = Path(sweep_dir)
    directions = directions_of(sweeper)
    objectives = objective_names(sweeper, config)
    top1_first = objectives[0] in ("val_top1", "value")
    rows = collect(sweep_dir, study_rows(sweeper, study), directions, top1_first)
    columns, cells = table(rows, objectives, directions, top1_first)
    write_csv(sweep_dir / "summary.csv", columns, cells)
    order = "best first" if rows and (rows[0].values or rows[0].best_val_top1 is not None) else "in job order"
    lines = [f"# Sweep summary: {sweep_dir}", "", f"{len(rows)} runs, {order}.", ""]
    swept = sweep_overrides(sweep_dir)
    if swept is not None:
        lines[-1:] = ["", f"The sweep's overrides: `{' '.join(swept)}`", ""]
    lines += md_table(columns, cells)
    if "pareto" in columns:
        n = sum(1 for c in cells if c["pareto"])
        lines += [
            "",
            f"**Pareto front** ({n} runs marked `true`): no other run is at least as good in every "
            f"objective ({', '.join(f'{o} {d}' for o, d in zip(objectives, directions, strict=False))}) "
            "and better in one.",
        ]
    lines += seed_section(sweep_dir, rows, directions)
    best = next((r for r in rows if r.status == "ok" and (r.values or r.best_val_top1 is not None)), None)
    if best and len(directions) == 1:
        overrides = sweep_dir / best.job / ".hydra" / "overrides.yaml"
        cmd = " ".join(yaml.safe_load(overrides.read_text()) or []) if overrides.is_file() else ""
        value = best.values[0] if best.values else best.best_val_top1
        lines += ["", f"**Best:** `{best.run_name}` (job {best.job}): {objectives[0]} {value:.4f}"]
        if best.lr is not None:
            lines[-1] += f", lr={best.lr:g}, wd={best.weight_decay:g}, blocks={best.blocks}, dropout={best.dropout:g}"
        lines += ["", f"The best job's own overrides (to run it alone): `{cmd}`"]
        log.info("Best configuration: %s (job %s) %s %.4f", best.run_name, best.job, objectives[0], value)
    write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    return rows


def sweep_overrides(sweep_dir: Path) -> list[str] | None:
    """The sweep's command-line overrides, as `multirun.yaml` recorded them (None without one)."""
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        return [str(o) for o in (yaml.safe_load(path.read_text()) or {})["hydra"]["overrides"]["task"]]
    except (KeyError, TypeError, yaml.YAMLError):
        return None


def md_table(columns: list[str], cells: list[dict]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(fmt(c.get(k), k) for k in columns) + " |" for c in cells),
    ]
