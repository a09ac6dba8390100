"""One `SummaryRow` per job of a sweep: read from its job folder, or stored with its Optuna trial by the worker that
ran it; `collect` ranks them best first."""

from __future__ import annotations

import logging
from pathlib import Path

from ..artifacts.files import read_json
from ..artifacts.records import TrainMetrics
from ..artifacts.runs import Run, is_run, job_dirs
from ..artifacts.summary_row import SummaryRow
from ..compared import format_blocks
from ..config.overrides import SWEEPER_KEYS, override_key, override_value
from .storage import make_storage

# main.log names the logger on every line: these lines keep the name they have always had
log = logging.getLogger("tinyimagenet_resnet.sweeps.summary")

FAILURE_FILE = "failure.json"  # a failed grid job's one-line reason, written by the grid sweeper
STATUS = {"ok": "ok", "pruned": "pruned"}  # every other status of a job (running, diverged, ...) is a failure


def _own(cfg: dict, *path: str):
    """cfg[path...] or None: jobs of another app have none of this package's keys."""
    node = cfg
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def job_params(overrides) -> dict:
    """The job's overrides as {key: value}, without those the sweeper adds for itself."""
    params = {}
    for o in overrides or []:
        key, value = override_key(o), override_value(o)
        if value is not None and not key.startswith(SWEEPER_KEYS):
            params[key] = value
    return params


def job_row(job: Path, overrides=None, values=None, status: str | None = None) -> SummaryRow | None:
    """One row per job directory (needs Hydra's .hydra/config.yaml; metrics.json may be missing). `overrides`,
    `values` (what the job returned) and `status` come from the sweeper where it knows them; else from the job's
    .hydra/overrides.yaml and this package's metrics.json."""
    if not is_run(job):
        return None
    run = Run(job)
    cfg = run.config
    metrics = run.read(TrainMetrics)
    best = metrics.best if metrics else None
    validated = best is not None and best.epoch is not None
    blocks = _own(cfg, "model", "blocks")
    top1 = best.val_accuracy if validated else None
    if metrics:
        status = STATUS.get(metrics.status, "failed")
    return SummaryRow(
        job=job.name,
        run_name=run.name,
        lr=_own(cfg, "optim", "lr"),
        weight_decay=_own(cfg, "optim", "weight_decay"),
        blocks=format_blocks(blocks) if isinstance(blocks, list) else None,
        dropout=_own(cfg, "model", "dropout"),
        best_val_top1=top1,
        val_loss_at_best=best.val_loss if validated else None,
        epochs_run=metrics.epochs_run if metrics else None,
        status=status or "failed",
        wall_time_s=metrics.wall_time_s if metrics else None,
        seed=_own(cfg, "seed") if isinstance(_own(cfg, "seed"), int) else None,
        params=job_params(run.overrides if overrides is None else overrides),
        values=[float(v) for v in values] if values is not None else None,
        error=(read_json(job / FAILURE_FILE) or {}).get("error") if (status or "failed") != "ok" else None,
    )


ROW_ATTRS = "row."  # one Optuna user attribute per summary field: row.best_val_top1, row.status, ...


def row_attrs(row: SummaryRow) -> dict:
    """A summary row as Optuna user attributes, one per value (numbers stay numbers, so optuna-dashboard sorts
    and filters them); `params` and `values` are the trial's own params and values."""
    return {
        f"{ROW_ATTRS}{k}": v
        for k, v in row.to_json().items()
        if k not in ("params", "values", "rank") and v is not None
    }


def row_from_trial(trial) -> SummaryRow | None:
    """The row a worker stored with its trial (also the JSON `summary_row` of studies of version 0.1.0)."""
    attrs = trial.user_attrs
    if "summary_row" in attrs:
        return SummaryRow.from_json(attrs["summary_row"])
    data = {k[len(ROW_ATTRS) :]: v for k, v in attrs.items() if k.startswith(ROW_ATTRS)}
    if not data:
        return None
    data["params"] = dict(trial.params)
    data["values"] = list(trial.values) if trial.values is not None else None
    return SummaryRow.from_json(data)


def study_rows(sweeper, study=None) -> list[SummaryRow]:
    """Rows that Optuna workers stored with their trials, so that a summary also lists the trials other workers
    ran, on machines whose run directories this one cannot see: those of `study`, else of the study the sweeper
    config names. [] for other sweepers."""
    if study is not None:
        return [r for t in study.get_trials(deepcopy=False) if (r := row_from_trial(t)) is not None]
    url, name = (sweeper or {}).get("storage"), (sweeper or {}).get("study_name")
    if not url or not name:
        return []
    import optuna  # lazy: optuna costs 0.5 s of start-up; the report and the protocol import this module for collect

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
    return [r for t in study.get_trials(deepcopy=False) if (r := row_from_trial(t)) is not None]


def collect(
    sweep_dir: Path, extra_rows: list[SummaryRow] = (), directions=("maximize",), top1_first: bool = True
) -> list[SummaryRow]:
    """Every job's row, best first: local job directories, plus the rows of `extra_rows` (other workers' trials)
    whose job is not here; ranked by the first objective in its direction (a job without values, e.g. pruned, by
    its best val top-1 where that is the first objective, else last)."""
    rows = [r for job in job_dirs(sweep_dir) if (r := job_row(job))]
    local = {r.job: i for i, r in enumerate(rows)}
    for r in extra_rows:
        if r.job not in local:
            rows.append(r)
        elif rows[local[r.job]].epochs_run is None:  # another app's job: only the sweeper knew its status and values
            rows[local[r.job]] = r
        elif r.values is not None:  # what the job returned (all objectives), which metrics.json does not hold
            rows[local[r.job]].values = r.values
    sign = -1.0 if directions[0] == "maximize" else 1.0

    def key(r):
        v = r.values[0] if r.values else (r.best_val_top1 if top1_first else None)
        return (v is None, sign * (v or 0.0), r.status != "ok", len(r.job), r.job)

    rows.sort(key=key)
    for i, row in enumerate(rows, 1):
        row.rank = i
    return rows
