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
from ..config.overrides import RUNTIME_KEYS, override_key, override_value
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


def _tell(study, trial, *args, **kwargs) -> str:
    """study.tell, and the state optuna stored (it records FAIL, with a warning, values it rejects).
    GridSampler calls study.stop() once its grid is exhausted, which raises outside optimize() after the trial's
    state is stored (optuna stores it in a `finally`), so that error is ignored."""
    try:
        return study.tell(trial, *args, **kwargs).state.name
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise
        return next(t.state.name for t in study.get_trials(deepcopy=False) if t.number == trial.number)


def _distribution_text(as_json: str) -> str:
    """An Optuna distribution as the sweeper's own syntax reads it: `tag(log, interval(1e-05, 0.1))`,
    `choice(0.0, 0.0001)`, `range(1, 5, step=2)`."""
    import json

    d = json.loads(as_json)
    a = d.get("attributes", {})
    if d.get("name") == "CategoricalDistribution":
        return f"choice({', '.join(str(c) for c in a.get('choices', []))})"
    kind = "range" if d.get("name") == "IntDistribution" else "interval"
    text = f"{kind}({a.get('low')}, {a.get('high')}" + (f", step={a['step']}" if a.get("step") else "") + ")"
    return f"tag(log, {text})" if a.get("log") else text


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    def _settings(self):
        """Heartbeat, grace and poll seconds: the app's `optuna` node where it has one, else the defaults."""
        opt = OmegaConf.select(self.config, "optuna", default=None) or {}
        return int(opt.get("heartbeat_s", 30)), int(opt.get("grace_s", 90)), float(opt.get("poll_s", 5))

    def _values(self, ret) -> list[float]:
        """The job's return value as one float per objective (ValueError says what is wrong with it)."""
        n = len(self.directions)
        value = ret.return_value
        try:
            values = [float(value)] if n == 1 else [float(v) for v in value]
        except (TypeError, ValueError):
            want = "a float" if n == 1 else f"a list of {n} floats (one per direction)"
            raise ValueError(f"the job returned {value!r}; an Optuna sweep needs {want}") from None
        if len(values) != n:
            raise ValueError(f"the job returned {len(values)} values for {n} directions {self.directions}")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"non-finite return value {value!r}")
        return values

    def _outcome(self, trial, ret) -> tuple[str, list[float] | None]:
        """COMPLETE with the job's values, PRUNED, FAIL (the job raised) or REJECTED (it returned no usable value);
        the error is kept as the trial's `error` attribute. Both of the last are FAIL in the study."""
        import optuna

        if ret.status == JobStatus.COMPLETED:
            try:
                return "COMPLETE", self._values(ret)
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

    def _record_result(self, study, trial, ret) -> str:
        """The trial's run (attributes first: a finished trial cannot take any) and its outcome, told to optuna."""
        from optuna.trial import TrialState

        state, values = self._outcome(trial, ret)
        self._record_run(trial, ret, state, values)
        if state == "COMPLETE":
            if _tell(study, trial, values) != "COMPLETE":  # optuna refused the values (it only warns): counted so
                log.warning("Trial %d: optuna recorded its values %s as FAIL", trial.number, values)
                return "REJECTED"
        else:
            _tell(study, trial, state=TrialState["FAIL" if state == "REJECTED" else state])
        return state

    def _stop(self, study, folder: Path, line: str) -> None:
        """End the sweep with one line on stderr and exit 1, after writing its results and summary."""
        self._finish(study, folder)
        print(f"error: {line}", file=sys.stderr)
        sys.exit(1)

    def _finish(self, study, folder: Path) -> None:
        from .tables import write_summary

        self._write_results(study, folder)
        rows = write_summary(folder, self.config.hydra.sweeper, self.config, study)
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

    def _app_optuna(self):
        """The app's `optuna` node (this package's job side of a sweep), or None for any other app."""
        node = OmegaConf.select(self.config, "optuna", default=None)
        return node if OmegaConf.is_dict(node) and "trial_number" in node else None

    def _check(self, distributions) -> None:
        """Settings that cannot work together, refused before any trial (one line, via main's error handling)."""
        from ..errors import ConfigError

        app = self._app_optuna()
        if app is not None and app.get("objectives") is not None and len(app.objectives) != len(self.directions):
            raise ConfigError(
                f"optuna.objectives={list(app.objectives)} has {len(app.objectives)} names for "
                f"{len(self.directions)} hydra.sweeper.direction {self.directions}; allowed: one name per direction"
            )
        seeds = OmegaConf.select(self.config, "seeds", default=1) if app is not None else 1
        if isinstance(seeds, int) and seeds > 1 and "seed" in distributions and not self.is_grid:
            raise ConfigError(
                f"seeds={seeds} repeats every grid point with {seeds} seeds, which a {type(self.sampler).__name__} "
                "cannot do (it would sample the seed); allowed: seeds=1, or hydra/sweeper/sampler=grid"
            )

    @staticmethod
    def _refusing(check, *args):
        """Run `check`; a setting it refuses is one line on stderr and exit 2, before any trial."""
        from ..errors import UserError

        try:
            return check(*args)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)

    def _check_directions(self, study) -> None:
        from ..errors import ConfigError

        stored = [d.name.lower() for d in study.directions]
        if stored != [str(d).lower() for d in self.directions]:
            raise ConfigError(
                f"hydra.sweeper.direction={self.directions}: study {study.study_name!r} in "
                f"{redacted(self.storage) or 'memory'} was created with {stored}; allowed: the same directions, or "
                "another hydra.sweeper.study_name for a new study"
            )

    @staticmethod
    def _signature(distributions, fixed_params, arguments) -> dict:
        """What makes two runs of a study the same study: its search space and the settings of its jobs (the
        command line's overrides that are not searched, but for where and how the jobs run: data.path, the device,
        the sweep's folder...)."""
        from optuna.distributions import distribution_to_json

        searched = set(distributions) | set(fixed_params)
        settings = {
            override_key(o): override_value(o)
            for o in arguments
            if override_key(o) not in searched
            and not override_key(o).startswith(("hydra", "optuna."))
            and override_key(o) not in RUNTIME_KEYS
        }
        settings.update({k: str(v) for k, v in fixed_params.items()})
        return {
            "space": {k: _distribution_text(distribution_to_json(d)) for k, d in sorted(distributions.items())},
            "settings": dict(sorted(settings.items())),
        }

    def _check_signature(self, study, signature: dict) -> None:
        """A study resumed with another search space or other job settings would mix two experiments in one study
        and one summary: refused, naming what differs. A study without a signature (from an earlier version), or
        whose every trial failed (the cause fixed, the same command runs it anew), takes this run's."""
        from ..errors import ConfigError

        stored = study.user_attrs.get("tir_signature")
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED")]
        if stored is None or (stored != signature and not finished):
            if stored is not None:  # every earlier trial failed: a re-run after fixing the cause takes its settings
                log.info("Study %r: no trial finished with its earlier settings; it takes these", study.study_name)
            study.set_user_attr("tir_signature", signature)
            return
        diffs = []
        for part, what in (("settings", "{k}: {a} -> {b}"), ("space", "search space of {k}: {a} -> {b}")):
            old, new = stored.get(part, {}), signature[part]
            for k in sorted(set(old) | set(new)):
                if old.get(k) != new.get(k):
                    diffs.append(what.format(k=k, a=old.get(k, "unset"), b=new.get(k, "unset")))
        if diffs:
            raise ConfigError(
                f"study {study.study_name!r} in {redacted(self.storage) or 'memory'} was run with other settings "
                f"({'; '.join(diffs)}); run it again with its own settings, or start a new study with "
                "hydra.sweeper.study_name=<another name>"
            )

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        heartbeat_s, grace_s, poll_s = self._settings()
        self.directions = compat.study_directions(self)
        distributions, fixed_params, fixed_overrides = compat.search_space(self, arguments)
        for name in fixed_params:
            distributions.pop(name, None)
        self.is_grid = getattr(self.sampler, "func", None) is optuna.samplers.GridSampler
        self._refusing(self._check, distributions)
        if self.is_grid:
            grid = {k: compat.grid_choices(self, d) for k, d in distributions.items()}
            self.sampler = self.sampler(grid)
            size = math.prod(len(v) for v in grid.values())
            if self.n_trials > size:
                log.info("GridSampler: n_trials=%d capped to the %d points of the grid", self.n_trials, size)
                self.n_trials = size
        # Heartbeats are recorded by this loop (ask/tell), which optuna warns about; heartbeats are "experimental".
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        if self.storage is None:
            log.warning(
                "hydra.sweeper.storage=null: the study lives in memory, so this sweep cannot be resumed or shared "
                "by workers, and trials cannot be pruned (set e.g. hydra.sweeper.storage=sqlite:///study.db)"
            )
        storage = make_storage(self.storage, heartbeat_s, grace_s, stale_callback=mark_interrupted)
        lock = functools.partial(study_lock, storage, self.storage, self.study_name)
        app = self._app_optuna()
        with lock():  # two workers starting together create the study once
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=self.sampler,
                directions=self.directions,
                load_if_exists=True,
            )
            self._refusing(self._check_directions, study)
            self._refusing(self._check_signature, study, self._signature(distributions, fixed_params, arguments))
            if app is not None and app.get("objectives"):
                study.set_metric_names([str(n) for n in app.objectives])  # optuna-dashboard's axis and column names
            folder = self._folder(study)
        if not (folder / "multirun.yaml").is_file():  # as Hydra's basic sweeper does; a re-run keeps the first's
            write_text(folder / "multirun.yaml", OmegaConf.to_yaml(self.config))
        from .summary import uses_tensorboard

        if app is not None and uses_tensorboard(self.config):  # TensorBoard's HParams columns, with their domains
            from ..artifacts.hparams import write_experiment
            from ..artifacts.names import HP_METRICS
            from ..config.hparams import optuna_hparams

            write_experiment(
                folder, optuna_hparams(distributions, self.config), list(HP_METRICS), f"optuna study {study.study_name}"
            )
        log.info(
            "Study %r in %s: %d of %d trials already counted; trials in %s",
            study.study_name,
            redacted(self.storage) or "memory",
            counted_trials(study.get_trials(deepcopy=False)),
            self.n_trials,
            folder,
        )
        # `failed`: trials of this run recorded FAIL; `raised`: those whose job raised, which alone count toward
        # max_failure_rate (a rejected return value is recorded FAIL and the sweep goes on, as with the plugin)
        failed, raised, finished, last_error = 0, 0, 0, None
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
            # The trial number goes to apps that have this package's `optuna` node (pruning reports to it); any
            # other app composes exactly the overrides the plugin would give it.
            # Every job's folder is its trial number (a re-run or another worker never reuses a folder).
            own = (lambda t: (f"optuna.trial_number={t.number}",)) if app is not None else (lambda t: ())
            overrides = [
                tuple(o) + own(t) + (f"hydra.sweep.dir={folder}", f"hydra.sweep.subdir={t.number}")
                for o, t in zip(
                    compat.configure_trials(self, trials, distributions, fixed_params, fixed_overrides),
                    trials,
                    strict=True,
                )
            ]
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            for trial, ret in zip(trials, returns, strict=True):
                state = self._record_result(study, trial, ret)
                if state in ("FAIL", "REJECTED"):
                    failed += 1
                    raised += state == "FAIL"
                    last_error = trial.user_attrs.get("error", "")
                else:
                    finished += 1
            heartbeat.untrack(trials)
            if raised > self.max_failure_rate * self.n_trials:
                self._stop(
                    study,
                    folder,
                    f"optuna sweep stopped: {raised} failed trial{'s' * (raised > 1)} in this run, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate} x n_trials={self.n_trials}; "
                    f"the last: {last_error}",
                )
        if failed and not finished:
            # max_failure_rate >= 1 tolerates every failure: the jobs' errors stay in the log and the study (as
            # with the plugin, which does not raise them then), but a run with nothing to show still fails
            tolerated = raised and self.max_failure_rate >= 1.0
            last = f"{last_error.split(':')[0]} (its message in the log)" if tolerated else last_error
            self._stop(study, folder, f"optuna sweep: every trial of this run failed ({failed}); the last: {last}")
        self._finish(study, folder)

    @staticmethod
    def _record_run(trial, ret, state: str, values: list[float] | None) -> None:
        """Where the trial ran and its summary row (one user attribute per column, numbers as numbers), so that
        any worker's summary lists every worker's trials, also those of machines whose run directories it cannot
        see, and optuna-dashboard can sort and filter by them."""
        from .rows import job_row, row_attrs

        run_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg else None
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        if run_dir:
            trial.set_user_attr("run_dir", str(Path(run_dir).resolve()))
            status = {"COMPLETE": "ok", "PRUNED": "pruned"}.get(state, "failed")  # FAIL, REJECTED
            row = job_row(Path(run_dir), overrides=list(ret.overrides or []), values=values, status=status)
            if row is not None:
                for key, value in row_attrs(row).items():
                    trial.set_user_attr(key, value)

    def _write_results(self, study, folder: Path) -> None:
        """optimization_results.yaml as the plugin writes it (`best_params`/`best_value`, or the Pareto front as
        `solutions` for several directions), plus the study's bookkeeping; a figure of the front for two."""
        states: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            states[t.state.name] = states.get(t.state.name, 0) + 1
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": study.study_name,
            "storage": redacted(self.storage),
            "n_trials": self.n_trials,
            "directions": list(self.directions),
            "trial_states": states,
        }
        if study.metric_names:
            results["metric_names"] = list(study.metric_names)
        if len(self.directions) == 1:
            try:
                best = study.best_trial
                results.update(best_params=best.params, best_value=best.value, best_trial=best.number)
                log.info("Best trial %d: value %.4f, params %s", best.number, best.value, best.params)
            except ValueError:
                log.warning("No completed trial in study %r", study.study_name)
        else:
            front = sorted(study.best_trials, key=lambda t: t.number)
            results["solutions"] = [{"params": t.params, "values": list(t.values), "trial": t.number} for t in front]
            log.info("Pareto front of %d trials: %s", len(front), [t.number for t in front])
            if len(self.directions) == 2 and front:
                from .pareto import pareto_figure  # lazy: matplotlib costs 1 s of start-up, paid by two objectives only

                pareto_figure(study, self.directions, folder / "pareto.png")
        write_text(folder / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results)))
