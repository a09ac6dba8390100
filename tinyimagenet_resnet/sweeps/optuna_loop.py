"""The trial loop of `ResumableOptunaSweeper` (imports optuna; loaded only when a sweep starts): prepare the search
space and the study, then ask for trials, run them and check the failures until the study counts `n_trials`."""

from __future__ import annotations

import functools
import logging
import math
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import NamedTuple

import optuna
from omegaconf import OmegaConf

from .. import compat
from ..artifacts.files import read_json, write_json, write_text
from ..errors import ConfigError, UserError
from .callback import uses_tensorboard
from .heartbeat import Heartbeat
from .outcome import Tally, record_result
from .results import write_results
from .signature import check_signature, study_signature
from .storage import HEARTBEAT_S, make_storage, redacted, study_lock
from .study import counted_trials, mark_interrupted
from .tables import write_summary

OptunaSweeperImpl, _ = compat.optuna_sweeper_impl()

log = logging.getLogger(__name__)


class Space(NamedTuple):
    """The search space of a sweep, as the plugin parses it from `params` and the command line."""

    distributions: dict
    fixed_params: dict
    fixed_overrides: list


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    def _settings(self) -> tuple[int, int | None, float]:
        """Heartbeat, grace and poll seconds: the app's `optuna` node where it has one, else the defaults (a grace
        of None is the storage's default, a few heartbeats)."""
        opt = OmegaConf.select(self.config, "optuna", default=None) or {}
        grace = opt.get("grace_s")
        return int(opt.get("heartbeat_s", HEARTBEAT_S)), grace and int(grace), float(opt.get("poll_s", 5))

    def _stop(self, study, folder: Path, line: str) -> None:
        """End the sweep with one line on stderr and exit 1, after writing its results and summary."""
        self._finish(study, folder)
        print(f"error: {line}", file=sys.stderr)
        sys.exit(1)

    def _finish(self, study, folder: Path) -> None:
        write_results(study, folder, self.storage, self.n_trials, self.directions)
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
        try:
            return check(*args)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)

    def _check_directions(self, study) -> None:
        stored = [d.name.lower() for d in study.directions]
        if stored != [str(d).lower() for d in self.directions]:
            raise ConfigError(
                f"hydra.sweeper.direction={self.directions}: study {study.study_name!r} in "
                f"{redacted(self.storage) or 'memory'} was created with {stored}; allowed: the same directions, or "
                "another hydra.sweeper.study_name for a new study"
            )

    def sweep(self, arguments: list[str]) -> None:
        """Ask for trials and run them until the study counts n_trials (all workers together), then write the
        study's results and summary; exit 1 when too many trials failed, or every trial of this run."""
        heartbeat_s, grace_s, poll_s = self._settings()
        space = self._prepare(arguments)
        storage = make_storage(self.storage, heartbeat_s, grace_s, stale_callback=mark_interrupted)
        lock = functools.partial(study_lock, storage, self.storage, self.study_name)
        study, folder = self._open_study(storage, lock, space, arguments)
        tally = Tally()
        with Heartbeat(storage, heartbeat_s) as heartbeat:
            first_ask = True
            while True:
                trials, states = self._ask(study, lock, heartbeat, tally.failed, first_ask)
                first_ask = False
                if not trials:
                    if "RUNNING" in states:
                        time.sleep(poll_s)  # another worker's trial, or a dead one about to be re-queued
                        continue
                    break
                self._run(study, folder, trials, space, tally)
                heartbeat.untrack(trials)
                self._check_failure_rate(study, folder, tally)
        self._check_any_finished(study, folder, tally)
        self._finish(study, folder)

    def _prepare(self, arguments: list[str]) -> Space:
        """The directions, the search space and the sampler (a grid's, with its points), checked before any trial."""
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
        return Space(distributions, fixed_params, fixed_overrides)

    def _open_study(self, storage, lock, space: Space, arguments: list[str]):
        """The study, created by the first worker and checked against this run's directions and settings, and its
        folder, with the sweep's record (multirun.yaml) and TensorBoard's HParams columns."""
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
            signature = study_signature(space.distributions, space.fixed_params, arguments)
            self._refusing(check_signature, study, signature, self.storage)
            if app is not None and app.get("objectives"):
                study.set_metric_names([str(n) for n in app.objectives])  # optuna-dashboard's axis and column names
            folder = self._folder(study)
        if not (folder / "multirun.yaml").is_file():  # as Hydra's basic sweeper does; a re-run keeps the first's
            write_text(folder / "multirun.yaml", OmegaConf.to_yaml(self.config))
        if app is not None and uses_tensorboard(self.config):  # TensorBoard's HParams columns, with their domains
            self._declare_hparams(folder, space, study.study_name)
        log.info(
            "Study %r in %s: %d of %d trials already counted; trials in %s",
            study.study_name,
            redacted(self.storage) or "memory",
            counted_trials(study.get_trials(deepcopy=False)),
            self.n_trials,
            folder,
        )
        return study, folder

    def _declare_hparams(self, folder: Path, space: Space, study_name: str) -> None:
        """TensorBoard's HParams columns of the searched parameters, with their domains, in the study's folder."""
        # lazy: TensorBoard's protobufs cost 0.5 s of start-up, paid only by a study that logs to TensorBoard
        from ..artifacts.names import HP_METRICS  # lazy: with the line above, only where TensorBoard logs
        from ..artifacts.tb_hparams import write_experiment
        from ..config.hparams import optuna_hparams  # lazy: it imports TensorBoard's protobufs too

        write_experiment(
            folder, optuna_hparams(space.distributions, self.config), list(HP_METRICS), f"optuna study {study_name}"
        )

    def _ask(self, study, lock, heartbeat: Heartbeat, failed: int, first: bool) -> tuple[list, list[str]]:
        """New trials (none once the study counts n_trials) and the states of the study's trials, counted and asked
        for atomically across workers: together they start exactly n_trials."""
        if heartbeat.enabled:
            optuna.storages.fail_stale_trials(study)
        with lock():
            existing = study.get_trials(deepcopy=False)
            states = [t.state.name for t in existing]
            # queued trials (retries of killed ones) are already counted and are asked for first. Failed trials
            # do not count toward n_trials across runs (a re-run after fixing their cause replaces them), but
            # within this run they do: it never retries what just failed (a grid point would fail again).
            free = self.n_trials - counted_trials(existing) - failed + states.count("WAITING")
            if first and states:
                # A sampler seeded again with `seed` would re-propose the trials this seed already proposed
                # (TPE starts with seeded random draws), so a resumed study, or a second worker, draws fresh
                # random numbers.
                self.sampler.reseed_rng()
            trials = [study.ask() for _ in range(min(free, self.n_jobs))]
            heartbeat.track(trials)
        return trials, states

    def _run(self, study, folder: Path, trials: list, space: Space, tally: Tally) -> None:
        """Launch the trials' jobs together and record each one's outcome in the study and in `tally`."""
        # The trial number goes to apps that have this package's `optuna` node (pruning reports to it); any
        # other app composes exactly the overrides the plugin would give it.
        # Every job's folder is its trial number (a re-run or another worker never reuses a folder).
        own = (lambda t: (f"optuna.trial_number={t.number}",)) if self._app_optuna() is not None else (lambda t: ())
        overrides = [
            tuple(o) + own(t) + (f"hydra.sweep.dir={folder}", f"hydra.sweep.subdir={t.number}")
            for o, t in zip(
                compat.configure_trials(self, trials, space.distributions, space.fixed_params, space.fixed_overrides),
                trials,
                strict=True,
            )
        ]
        returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
        self.job_idx += len(returns)
        for trial, ret in zip(trials, returns, strict=True):
            tally.add(record_result(study, trial, ret, self.directions), trial)

    def _check_failure_rate(self, study, folder: Path, tally: Tally) -> None:
        """Stop the sweep once more trials of this run raised than max_failure_rate x n_trials."""
        if tally.raised > self.max_failure_rate * self.n_trials:
            self._stop(
                study,
                folder,
                f"optuna sweep stopped: {tally.raised} failed trial{'s' * (tally.raised > 1)} in this run, more "
                f"than hydra.sweeper.max_failure_rate={self.max_failure_rate} x n_trials={self.n_trials}; "
                f"the last: {tally.last_error}",
            )

    def _check_any_finished(self, study, folder: Path, tally: Tally) -> None:
        """Fail a run whose every trial failed. max_failure_rate >= 1 tolerates every failure: the jobs' errors stay
        in the log and the study (as with the plugin, which does not raise them then), but a run with nothing to
        show still fails."""
        if tally.failed and not tally.finished:
            tolerated = tally.raised and self.max_failure_rate >= 1.0
            last = f"{tally.last_error.split(':')[0]} (its message in the log)" if tolerated else tally.last_error
            line = f"optuna sweep: every trial of this run failed ({tally.failed}); the last: {last}"
            self._stop(study, folder, line)
