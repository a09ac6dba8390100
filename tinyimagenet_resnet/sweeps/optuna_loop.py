"""The trial loop of `ResumableOptunaSweeper` (imports optuna; loaded only when a sweep starts)."""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from hydra.core.utils import JobStatus
from omegaconf import OmegaConf

from .. import compat
from ..artifacts.files import read_json, write_json, write_text
from .storage import make_storage, redacted, study_lock
from .study import counted_trials, mark_interrupted

OptunaSweeperImpl, _ = compat.optuna_sweeper_impl()

log = logging.getLogger(__name__)


class _Heartbeat:
    """Records a heartbeat for every in-flight trial from the sweeper process (any launcher)."""

    def __init__(self, storage, interval_s: float):
        self.storage, self.interval = storage, interval_s
        self.trial_ids: set[int] = set()
        self.lock = threading.Lock()
        self.enabled = storage is not None and storage.get_heartbeat_interval() is not None
        if self.enabled:
            threading.Thread(target=self._beat, daemon=True, name="optuna-heartbeat").start()

    def _record(self):
        with self.lock:
            for trial_id in self.trial_ids:
                self.storage.record_heartbeat(trial_id)

    def _beat(self):
        while True:
            time.sleep(self.interval)
            self._record()

    def track(self, trials):
        with self.lock:
            self.trial_ids |= {compat.trial_id(t) for t in trials}
        if self.enabled:
            self._record()

    def untrack(self, trials):
        with self.lock:
            self.trial_ids -= {compat.trial_id(t) for t in trials}


def _tell(study, trial, *args, **kwargs) -> None:
    """study.tell; GridSampler calls study.stop() once its grid is exhausted, which raises outside optimize()
    after the trial's state is stored (optuna stores it in a `finally`), so that error is ignored."""
    try:
        study.tell(trial, *args, **kwargs)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    def _settings(self):
        """Heartbeat, grace and poll seconds: the app's `optuna` node where it has one, else the defaults."""
        opt = OmegaConf.select(self.config, "optuna", default=None) or {}
        return int(opt.get("heartbeat_s", 30)), int(opt.get("grace_s", 90)), float(opt.get("poll_s", 5))

    def _record_result(self, study, trial, ret) -> str:
        import optuna
        from optuna.trial import TrialState

        if ret.status == JobStatus.COMPLETED:
            try:
                value = float(ret.return_value)
            except (TypeError, ValueError):
                value = float("nan")
            if math.isfinite(value):
                _tell(study, trial, value)
                return "COMPLETE"
            trial.set_user_attr("error", f"non-finite or non-float return value {ret.return_value!r}")
        else:
            exc = compat.job_exception(ret)
            if isinstance(exc, optuna.TrialPruned):
                _tell(study, trial, state=TrialState.PRUNED)
                return "PRUNED"
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            log.warning(
                "Trial %d failed: %s: %s",
                trial.number,
                type(exc).__name__,
                str(exc).splitlines()[0][:300] if str(exc) else "",
            )
        _tell(study, trial, state=TrialState.FAIL)
        return "FAIL"

    def _stop(self, study, folder: Path, line: str) -> None:
        """End the sweep with one line on stderr and exit 1, after writing its results and summary."""
        self._finish(study, folder)
        print(f"error: {line}", file=sys.stderr)
        sys.exit(1)

    def _finish(self, study, folder: Path) -> None:
        from .summary import write_summary

        self._write_results(study, folder)
        rows = write_summary(folder, self.config.hydra.sweeper)
        log.info("Sweep summary (%d runs): %s", len(rows), folder / "summary.md")

    def _folder(self, study) -> Path:
        """The folder of this study's trials: `multirun/optuna/<study>`, unless it holds the trials of another study
        of the same name (a new storage, a deleted database): then `<study>@<instance>`, so that no earlier trial
        folder is ever overwritten. Chosen once per study instance, under the workers' lock, and stored in it."""
        attrs = study.user_attrs
        if "tir_folder" in attrs:
            return Path(attrs["tir_folder"])
        instance = uuid.uuid4().hex[:8]
        base = Path(self.config.hydra.sweep.dir)
        marker = read_json(base / "study.json")
        taken = (marker is not None and marker.get("instance") != instance) or (
            marker is None and base.is_dir() and any(p.is_dir() and p.name.isdigit() for p in base.iterdir())
        )
        folder = base.with_name(f"{base.name}@{instance}") if taken else base
        if taken:
            log.warning(
                "%s holds the trials of another study named %r: this one writes to %s", base, study.study_name, folder
            )
        write_json(
            folder / "study.json",
            {"study_name": study.study_name, "instance": instance, "storage": redacted(self.storage)},
        )
        study.set_user_attr("tir_instance", instance)
        study.set_user_attr("tir_folder", str(folder))
        return folder

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        heartbeat_s, grace_s, poll_s = self._settings()
        distributions, fixed_params, fixed_overrides = compat.search_space(self, arguments)
        for name in fixed_params:
            distributions.pop(name, None)
        if getattr(self.sampler, "func", None) is optuna.samplers.GridSampler:
            self.sampler = self.sampler({k: compat.grid_choices(self, d) for k, d in distributions.items()})
        # Heartbeats are recorded by this loop (ask/tell), which optuna warns about; heartbeats are "experimental".
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        storage = make_storage(self.storage, heartbeat_s, grace_s, stale_callback=mark_interrupted)
        lock = functools.partial(study_lock, storage, self.storage, self.study_name)
        with lock():  # two workers starting together create the study once
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=self.sampler,
                direction=compat.study_directions(self)[0],
                load_if_exists=True,
            )
            folder = self._folder(study)
        write_text(folder / "multirun.yaml", OmegaConf.to_yaml(self.config))  # as Hydra's basic sweeper does
        log.info(
            "Study %r in %s: %d of %d trials already counted; trials in %s",
            study.study_name,
            redacted(self.storage),
            counted_trials(study.get_trials(deepcopy=False)),
            self.n_trials,
            folder,
        )
        failed, finished, last_error = 0, 0, None
        first_ask = True
        heartbeat = _Heartbeat(storage, heartbeat_s)
        while True:
            if heartbeat.enabled:
                optuna.storages.fail_stale_trials(study)
            with lock():  # count and ask atomically across workers: together they start exactly n_trials
                existing = study.get_trials(deepcopy=False)
                states = [t.state.name for t in existing]
                # queued trials (retries of killed ones) are already counted and are asked for first. Failed trials
                # do not count toward n_trials across runs (a re-run after fixing their cause replaces them), but
                # within this run they do: it never retries what just failed (a grid point would fail again).
                free = self.n_trials - counted_trials(existing) - failed + states.count("WAITING")
                if first_ask and states:
                    # A sampler seeded again with `seed` would re-propose the trials this seed already proposed
                    # (TPE starts with seeded random draws), so a resumed study, or a second worker, draws fresh
                    # random numbers.
                    self.sampler.reseed_rng()
                first_ask = False
                trials = [study.ask() for _ in range(min(free, self.n_jobs))]
                heartbeat.track(trials)
            if not trials:
                if "RUNNING" in states:
                    time.sleep(poll_s)  # another worker's trial, or a dead one about to be re-queued
                    continue
                break
            overrides = [
                tuple(o) + (f"optuna.trial_number={t.number}", f"hydra.sweep.dir={folder}")
                for o, t in zip(
                    compat.configure_trials(self, trials, distributions, fixed_params, fixed_overrides),
                    trials,
                    strict=True,
                )
            ]
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            for trial, ret in zip(trials, returns, strict=True):
                self._record_run(trial, ret)
                if self._record_result(study, trial, ret) == "FAIL":
                    failed += 1
                    last_error = trial.user_attrs.get("error", "")
                else:
                    finished += 1
            heartbeat.untrack(trials)
            if failed > self.max_failure_rate * self.n_trials:
                self._stop(
                    study,
                    folder,
                    f"optuna sweep stopped: {failed} failed trial{'s' * (failed > 1)} in this run, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate} x n_trials={self.n_trials}; "
                    f"the last: {last_error}",
                )
        if failed and not finished:
            self._stop(
                study, folder, f"optuna sweep: every trial of this run failed ({failed}); the last: {last_error}"
            )
        self._finish(study, folder)

    @staticmethod
    def _record_run(trial, ret) -> None:
        """Where the trial ran and its summary row, so that any worker's summary lists every worker's trials,
        also those of machines whose run directories it cannot see."""
        from .summary import job_row

        run_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg else None
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        if run_dir:
            trial.set_user_attr("run_dir", str(Path(run_dir).resolve()))
            row = job_row(Path(run_dir))
            if row is not None:
                trial.set_user_attr("summary_row", row.to_json())

    def _write_results(self, study, folder: Path) -> None:
        states: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            states[t.state.name] = states.get(t.state.name, 0) + 1
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": study.study_name,
            "storage": redacted(self.storage),
            "n_trials": self.n_trials,
            "trial_states": states,
        }
        try:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial=best.number)
            log.info("Best trial %d: value %.4f, params %s", best.number, best.value, best.params)
        except ValueError:
            log.warning("No completed trial in study %r", study.study_name)
        write_text(folder / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results)))
