"""Sweep summary tables (`summary.md`, `summary.csv`, best first) built from the job directories of a sweep, and
the `tinyimagenet-summarize` command that (re)builds them for any sweep directory, also an interrupted one."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from ..artifacts.files import read_json, write_csv, write_text
from ..artifacts.records import TrainMetrics
from ..artifacts.runs import Run, is_run, job_dirs
from ..artifacts.summary_row import SummaryRow
from ..config.naming import format_blocks
from ..config.overrides import SWEEPER_KEYS, override_key, override_value, seed_sweep
from .seeds import differing, seed_section

log = logging.getLogger(__name__)

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
    return [r for t in study.get_trials(deepcopy=False) if (r := row_from_trial(t)) is not None]


def directions_of(sweeper) -> list[str]:
    """The objective directions of a sweep: the Optuna sweeper's `direction` (one or a list), else maximize."""
    d = (sweeper or {}).get("direction") if sweeper is not None else None
    if d is None:
        return ["maximize"]
    items = list(d) if isinstance(d, (list, tuple)) or OmegaConf.is_list(d) else [d]
    return [str(getattr(x, "name", x)).split(".")[-1] for x in items]


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
    own_keys = set(SummaryRow.OWN_KEYS) if any(r.lr is not None for r in rows) else set()
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


class SummaryCallback(Callback):
    """Repeats every grid point with `seeds` seeds, and writes summary.md / summary.csv into the sweep directory at
    the end of every multirun."""

    def on_multirun_start(self, config, **kwargs) -> None:
        seeds = OmegaConf.select(config, "seeds", default=1) or 1
        if seeds > 1:
            add_seed_sweep(config, int(seeds))
        mlflow_cfg = OmegaConf.select(config, "logger.mlflow", default=None)
        if mlflow_cfg is not None:  # one parent run per sweep, its jobs its children
            from ..artifacts.trackers import start_mlflow_parent
            from ..errors import UserError

            sweep_dir = Path(config.hydra.sweep.dir)
            try:
                start_mlflow_parent(sweep_dir, mlflow_cfg.tracking_uri, mlflow_cfg.experiment, str(sweep_dir))
            except UserError as exc:  # mlflow not installed: one line, before any job
                print(f"error: {exc}", file=sys.stderr)
                sys.exit(exc.exit_code)
        if "ResumableOptunaSweeper" in str(config.hydra.sweeper.get("_target_", "")) or not uses_tensorboard(config):
            return  # that sweeper declares its search space's columns itself, in its study's folder
        from ..artifacts.names import HP_METRICS
        from ..artifacts.tb_hparams import write_experiment
        from ..config.hparams import grid_hparams

        params = config.hydra.sweeper.get("params") or {}
        overrides = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
        write_experiment(Path(config.hydra.sweep.dir), grid_hparams(overrides, config), list(HP_METRICS), "grid sweep")

    def on_multirun_end(self, config, **kwargs) -> None:
        if "ResumableOptunaSweeper" in str(config.hydra.sweeper.get("_target_", "")):
            return  # that sweeper writes the summary of its study's folder itself, also when it stops early
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            rows = write_summary(sweep_dir, config.hydra.get("sweeper"), config)
            log.info("Sweep summary (%d runs): %s", len(rows), sweep_dir / "summary.md")


def uses_tensorboard(config) -> bool:
    """`logger` includes TensorBoard (runs of version 0.1.0 have no `logger` node: TensorBoard only)."""
    logger = OmegaConf.select(config, "logger", default=None)
    return logger is None or logger.get("tensorboard") is not None


def add_seed_sweep(config, seeds: int) -> None:
    """`seeds=3`: the sweep's command-line overrides get `seed=<seed>,<seed+1>,<seed+2>` (replacing a single
    `seed=`), so the sweeper runs every point of its grid once per seed. Called before Hydra creates the sweeper,
    which reads these overrides. A seed sweep the user wrote (`seed=1,5,9`) is kept as it is."""
    from omegaconf import read_write

    task = config.hydra.overrides.task
    if any(override_key(o) == "seed" and "," in (override_value(o) or "") for o in task):
        return
    base = int(config.seed)
    with read_write(task):
        swept = seed_sweep(list(task), base, seeds)
        task.clear()
        task.extend(swept)
    log.info("seeds=%d: every configuration runs with seed %s", seeds, ", ".join(str(base + i) for i in range(seeds)))


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
        config = OmegaConf.load(recorded) if recorded.is_file() else None
        rows = write_summary(sweep, OmegaConf.select(config, "hydra.sweeper") if config else None, config)
        print(f"{sweep}: {len(rows)} runs -> {sweep / 'summary.md'}")
        for r in rows[:10]:
            value = fmt(r.values[0] if r.values else r.best_val_top1, "best_val_top1")
            print(f"  {r.rank:>3}. {r.run_name:<50} value={value} status={r.status}")
    return 0


if __name__ == "__main__":
    from ..cli import run_tool

    sys.exit(run_tool(main))
