"""What became of a trial: its job's return value checked, its outcome told to Optuna, its run recorded as user
attributes; and this run's tally of outcomes, which decides when a sweep stops (imported by the sweeper only)."""

from __future__ import annotations

import logging
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import optuna
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf
from optuna.trial import TrialState

from .. import compat
from .rows import job_row, row_attrs

# main.log names the logger on every line: these lines keep the name they have always had
log = logging.getLogger("tinyimagenet_resnet.sweeps.optuna_loop")


@dataclass
class Tally:
    """This run's trials by outcome. `failed`: recorded FAIL; `raised`: those whose job raised, which alone count
    toward max_failure_rate (a rejected return value is recorded FAIL and the sweep goes on, as with the plugin)."""

    failed: int = 0
    raised: int = 0
    finished: int = 0
    last_error: str | None = None

    def add(self, state: str, trial) -> None:
        if state in ("FAIL", "REJECTED"):
            self.failed += 1
            self.raised += state == "FAIL"
            self.last_error = trial.user_attrs.get("error", "")
        else:
            self.finished += 1


def tell(study, trial, *args, **kwargs) -> str:
    """study.tell, and the state optuna stored (it records FAIL, with a warning, values it rejects).
    GridSampler calls study.stop() once its grid is exhausted, which raises outside optimize() after the trial's
    state is stored (optuna stores it in a `finally`), so that error is ignored."""
    try:
        return study.tell(trial, *args, **kwargs).state.name
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise
        return next(t.state.name for t in study.get_trials(deepcopy=False) if t.number == trial.number)


def job_values(ret, directions: list) -> list[float]:
    """The job's return value as one float per objective (ValueError says what is wrong with it)."""
    n = len(directions)
    value = ret.return_value
    try:
        values = [float(value)] if n == 1 else [float(v) for v in value]
    except (TypeError, ValueError):
        want = "a float" if n == 1 else f"a list of {n} floats (one per direction)"
        raise ValueError(f"the job returned {value!r}; an Optuna sweep needs {want}") from None
    if len(values) != n:
        raise ValueError(f"the job returned {len(values)} values for {n} directions {directions}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"non-finite return value {value!r}")
    return values


def outcome(trial, ret, directions: list) -> tuple[str, list[float] | None]:
    """COMPLETE with the job's values, PRUNED, FAIL (the job raised) or REJECTED (it returned no usable value);
    the error is kept as the trial's `error` attribute. Both of the last are FAIL in the study."""
    if ret.status == JobStatus.COMPLETED:
        try:
            return "COMPLETE", job_values(ret, directions)
        except ValueError as exc:
            trial.set_user_attr("error", str(exc)[:500])
            log.warning("Trial %d failed: %s", trial.number, exc)
            return "REJECTED", None
    exc = compat.job_exception(ret)
    if isinstance(exc, optuna.TrialPruned):
        return "PRUNED", None
    trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
    log.warning(
        "Trial %d failed: %s: %s",
        trial.number,
        type(exc).__name__,
        str(exc).splitlines()[0][:300] if str(exc) else "",
    )
    return "FAIL", None


def record_result(study, trial, ret, directions: list) -> str:
    """The trial's run (attributes first: a finished trial cannot take any) and its outcome, told to optuna."""
    state, values = outcome(trial, ret, directions)
    record_run(trial, ret, state, values)
    if state == "COMPLETE":
        if tell(study, trial, values) != "COMPLETE":  # optuna refused the values (it only warns): counted so
            log.warning("Trial %d: optuna recorded its values %s as FAIL", trial.number, values)
            return "REJECTED"
    else:
        tell(study, trial, state=TrialState["FAIL" if state == "REJECTED" else state])
    return state


def record_run(trial, ret, state: str, values: list[float] | None) -> None:
    """Where the trial ran and its summary row (one user attribute per column, numbers as numbers), so that
    any worker's summary lists every worker's trials, also those of machines whose run directories it cannot
    see, and optuna-dashboard can sort and filter by them."""
    run_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg else None
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    if run_dir:
        trial.set_user_attr("run_dir", str(Path(run_dir).resolve()))
        status = {"COMPLETE": "ok", "PRUNED": "pruned"}.get(state, "failed")  # FAIL, REJECTED
        row = job_row(Path(run_dir), overrides=list(ret.overrides or []), values=values, status=status)
        if row is not None:
            for key, value in row_attrs(row).items():
                trial.set_user_attr(key, value)
