"""Grids that survive interruptions: Hydra's basic sweeper (every combination of the swept values, jobs numbered in
that order) made resumable, failure tolerant and honest about what it ran.

Re-running the same `-m` command into the same sweep folder (`hydra.sweep.dir=...`, or `sweep_name=...` for
`multirun/<name>`) skips every job that finished (one line each), continues a job that was interrupted from its
`last.ckpt` (bitwise on a CPU, as a single run), runs the jobs never started, and rewrites the summary over all of
them; a job that failed, or died before its first checkpoint, runs again (its folder is kept under `.attempts/`).
A sweep folder that holds another grid (other values, other settings) is refused in one line, before any job. A job
that fails does not stop the grid: the summary gives its one-line reason, and the command exits 1 at the end. It
works with every launcher (the basic one runs the jobs one by one, so that ctrl-C stops between two).

    python -m tinyimagenet_resnet.main -m sweep_name=lr model/blocks=b222,b333 optim.lr=1e-3,1e-2
    # interrupted? the same command again continues it
"""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf

from .. import compat
from ..artifacts.files import read_json, write_json
from ..artifacts.records import TrainMetrics
from ..artifacts.runs import Run, is_run
from ..config.kinds import COMMAND
from ..config.overrides import RUNTIME_KEYS, override_key, override_value, seed_sweep
from ..errors import ConfigError, UserError, one_line
from .rows import FAILURE_FILE

log = logging.getLogger(__name__)

GRID_FILE = "grid.json"  # the jobs of the grid a sweep folder holds, written by its first run
ATTEMPTS = ".attempts"  # the folders of jobs that failed or died before a checkpoint, kept when they run again
# where the process is: the command that continues the grid, for the line an interrupted job prints (main.run)
CONTINUE: dict[str, str] = {}


@dataclass
class GridSweeperConf:
    _target_: str = "tinyimagenet_resnet.sweeps.grid.GridSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None


def grid_jobs(params: dict | None, arguments: list[str]) -> list[list[str]]:
    """Every job of the grid, in the order Hydra's basic sweeper numbers them: the product of the swept values of
    `params` (hydra.sweeper.params) then of the command line's `arguments`, each job a list of overrides."""
    params_conf = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    overrides = OverridesParser.create().parse_overrides(params_conf)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def _settings(job: list[str]) -> tuple[str, ...]:
    """What a job trains, as compared between two runs of a grid: its overrides but for where and how it runs."""
    return tuple(
        sorted(o for o in job if override_key(o) not in RUNTIME_KEYS and not override_key(o).startswith("hydra"))
    )


def differences(old: list[list[str]], new: list[list[str]]) -> str:
    """The keys whose values differ between two grids' jobs, e.g. `optim.lr: 0.001,0.01 -> 0.001,0.003`."""

    def values(jobs):
        out: dict[str, list[str]] = {}
        for job in jobs:
            for o in job:
                out.setdefault(override_key(o), [])
                if override_value(o) not in out[override_key(o)]:
                    out[override_key(o)].append(str(override_value(o)))
        return out

    a, b = values([list(j) for j in old]), values([list(j) for j in new])
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    text = "; ".join(f"{k}: {','.join(a.get(k, ['unset']))} -> {','.join(b.get(k, ['unset']))}" for k in keys)
    return text or f"the same values in another order ({len(old)} jobs numbered otherwise)"


def check_same_grid(sweep_dir: Path, jobs: list[list[str]], key: str = "hydra.sweep.dir") -> None:
    """Refuse a grid whose sweep folder holds another one (its grid.json, else its job folders' overrides)."""
    new = [_settings(j) for j in jobs]
    recorded = read_json(sweep_dir / GRID_FILE)
    if recorded is not None:
        old = [tuple(j) for j in recorded.get("jobs", [])]
    else:  # a folder from before grid.json: what its job folders ran
        old = []
        for i in range(len(jobs)):
            folder = sweep_dir / str(i)
            if not is_run(folder):
                old = None if not old else old
                break
            old.append(_settings(Run(folder).overrides))
        if not old:
            return
        new = new[: len(old)]
    if old != new:
        raise ConfigError(
            f"{key}: {sweep_dir} holds another grid ({differences(old, new)}); run the command that made it to "
            "continue it, or choose another sweep_name (or hydra.sweep.dir)"
        )


def check_command(sweeper, overrides: list[str], cfg) -> None:
    """The entry point's pre-flight of a grid (before Hydra starts, so that a refused grid changes nothing): the
    sweep folder the command names (hydra.sweep.dir, sweep_name) holds this grid or none."""
    if sweeper is None or "GridSweeper" not in str(sweeper.get("_target_", "")):
        return
    explicit = next((override_value(o) for o in overrides if override_key(o) == "hydra.sweep.dir"), None)
    folder, key = (Path(explicit), f"hydra.sweep.dir={explicit}") if explicit and "${" not in explicit else (None, "")
    if folder is None and cfg.get("sweep_name"):
        folder, key = Path("multirun") / str(cfg.sweep_name), f"sweep_name={cfg.sweep_name}"
    if folder is None or not folder.is_dir():
        return
    task = [o for o in overrides if not override_key(o).startswith("hydra")]  # Hydra's overrides.task
    params = OmegaConf.to_container(sweeper.params) if sweeper.get("params") else {}
    check_same_grid(folder, grid_jobs(params, seed_sweep(task, int(cfg.seed), int(cfg.seeds))), key)


def job_state(folder: Path) -> str:
    """done (finished: skip), resume (interrupted after a checkpoint), redo (failed, or stopped before any
    checkpoint: run again), new (never started)."""
    if not folder.is_dir():
        return "new"
    metrics = Run(folder).read(TrainMetrics) if (folder / "metrics.json").is_file() else None
    if metrics is not None and metrics.status == "ok":
        return "done"
    if metrics is None and any((folder / f).is_file() for f in ("inspect.json", "baselines.json", "lr_find.json")):
        return "done"
    if (folder / "metrics.json").is_file() and metrics is None:
        return "done"  # an evaluation's metrics.json
    last = folder / "checkpoints" / "last.ckpt"
    if last.is_file() and metrics is not None and metrics.status in ("running", "interrupted"):
        return "resume"
    return "redo" if any(folder.iterdir()) else "new"


def _set_aside(sweep_dir: Path, folder: Path) -> Path:
    """Move a job folder that will run again under .attempts/<job>-<n>, so that nothing it wrote is lost."""
    attempts = sweep_dir / ATTEMPTS
    attempts.mkdir(exist_ok=True)
    n = 1 + sum(1 for p in attempts.iterdir() if p.name.startswith(f"{folder.name}-"))
    target = attempts / f"{folder.name}-{n}"
    shutil.move(str(folder), str(target))
    return target


def continue_command(sweep_dir: Path) -> str:
    """This command again, pointed at its sweep folder (a grid's time-stamped folder is new at every start)."""
    args = [a for a in sys.argv[1:] if override_key(a) != "hydra.sweep.dir"]
    if not any(override_key(a) == "sweep_name" for a in args):
        args.append(f"hydra.sweep.dir={sweep_dir.resolve()}")
    return shlex.join([*shlex.split(COMMAND), *args])


BasicSweeper = compat.basic_sweeper()


class GridSweeper(BasicSweeper):
    """BasicSweeper's grid, resumable per job (see the module's docstring)."""

    def sweep(self, arguments: list[str]):
        if self.config is None or self.launcher is None:
            raise RuntimeError(
                "GridSweeper.sweep() called before setup(): Hydra sets the config and the launcher first"
            )
        jobs = grid_jobs(self.params, arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        try:
            check_same_grid(sweep_dir, jobs)
        except UserError as exc:
            print(f"error: {one_line(exc)}", file=sys.stderr)
            sys.exit(exc.exit_code)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if not (sweep_dir / "multirun.yaml").is_file():  # a resumed grid keeps its first run's record
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        if not (sweep_dir / GRID_FILE).is_file():
            write_json(sweep_dir / GRID_FILE, {"jobs": [list(_settings(j)) for j in jobs]})
        CONTINUE["command"] = continue_command(sweep_dir)
        subdir = OmegaConf.to_container(self.config.hydra.sweep, resolve=False).get("subdir")
        if subdir == "${hydra.job.num}":
            todo = self._plan(sweep_dir, jobs)
        else:  # the job folders are not the job numbers: nothing to match them with, every job runs
            log.warning("hydra.sweep.subdir=%s: jobs are resumed only with the default ${hydra.job.num}", subdir)
            todo = list(enumerate(jobs))
        failed = []
        for batch in self._batches(todo):
            results = self.launcher.launch([job for _, job in batch], initial_job_idx=batch[0][0])
            for (idx, job), ret in zip(batch, results, strict=True):
                exc = compat_exception(ret)
                if exc is not None:
                    failed.append((idx, job, exc))
                    self._record_failure(sweep_dir / str(idx), exc)
        if failed:
            idx, job, exc = failed[0]
            swept = " ".join(o for o in job if "," not in o and override_key(o) in self._swept(arguments))
            print(
                f"error: grid: {len(failed)} of {len(jobs)} jobs failed (job {idx}{f' {swept}' if swept else ''}: "
                f"{_reason(exc)}); the others finished; the summary lists each failure: {sweep_dir / 'summary.md'}",
                file=sys.stderr,
            )
            sys.exit(1)

    def _swept(self, arguments: list[str]) -> set[str]:
        parsed = OverridesParser.create().parse_overrides(
            [f"{k}={v}" for k, v in (self.params or {}).items()] + list(arguments)
        )
        return {o.get_key_element() for o in parsed if o.is_sweep_override()}

    def _plan(self, sweep_dir: Path, jobs: list[list[str]]) -> list[tuple[int, list[str]]]:
        """(job number, overrides) of the jobs to launch; finished ones skipped, interrupted ones continued."""
        todo = []
        swept = {o for o in {x for j in jobs for x in j} if sum(o in j for j in jobs) < len(jobs)}
        for idx, job in enumerate(jobs):
            folder = sweep_dir / str(idx)
            state = job_state(folder)
            if state == "done":
                log.info("job %d (%s): finished earlier, skipped", idx, " ".join(o for o in job if o in swept) or "-")
                continue
            if state == "resume":
                last = folder.resolve() / "checkpoints" / "last.ckpt"
                log.info("job %d: continues from %s", idx, last)
                job = [*job, f"ckpt_path={last}"]
            elif state == "redo":
                log.info("job %d: runs again (its earlier attempt is kept in %s)", idx, _set_aside(sweep_dir, folder))
            todo.append((idx, job))
        return todo

    def _batches(self, todo):
        """Consecutive job numbers launched together (a launcher numbers a batch's jobs from its first); the basic
        launcher runs one job at a time, so that an interruption stops the grid between two."""
        size = 1 if type(self.launcher).__name__ == "BasicLauncher" else (self.max_batch_size or len(todo) or 1)
        batch: list = []
        for idx, job in todo:
            if batch and (idx != batch[-1][0] + 1 or len(batch) >= size):
                yield batch
                batch = []
            batch.append((idx, job))
        if batch:
            yield batch

    @staticmethod
    def _record_failure(folder: Path, exc: BaseException) -> None:
        """The failed job's one-line reason beside its results (the summary shows it)."""
        if folder.is_dir():
            write_json(folder / FAILURE_FILE, {"error": _reason(exc), "type": type(exc).__name__})


def _reason(exc: BaseException) -> str:
    return f"{one_line(exc)}"[:300]


def compat_exception(ret) -> BaseException | None:
    """The exception of a failed job (None when it completed)."""
    return compat.job_exception(ret) if ret.status == JobStatus.FAILED else None


def register() -> None:
    """Hydra's `hydra/sweeper=basic` (the default of every -m command) becomes this grid sweeper: the same keys, the
    same jobs in the same order, numbered the same way."""
    ConfigStore.instance().store(
        group="hydra/sweeper", name="basic", node=GridSweeperConf, provider="tinyimagenet_resnet", replace=True
    )
    compat.register_hydra_plugin(GridSweeper)
