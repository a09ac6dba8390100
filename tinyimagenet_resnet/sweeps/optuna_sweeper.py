"""A thin subclass of hydra-optuna-sweeper's sweeper that makes Optuna sweeps survivable:

- resumable: the study lives in persistent storage and re-running the same command continues it up to its
  `n_trials` total (trials of a killed sweep are detected by heartbeats and queued again, with `retry_of` naming them);
- failure tolerant: a failed trial is recorded FAIL and the sweep goes on, until more than
  `max_failure_rate x n_trials` trials have failed;
- prunable: each job receives its trial number (`optuna.trial_number=N`) and reports val top-1 every epoch;
  a job that raises `optuna.TrialPruned` is recorded PRUNED.

Search-space parsing and trial configuration are the plugin's own (`create_params_from_overrides`,
`_configure_trials`); only the trial loop is ours.
"""

from __future__ import annotations

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

from .. import compat


class ResumableOptunaSweeper(OptunaSweeper):
    def __init__(
        self, sampler, direction, storage, study_name, n_trials, n_jobs, max_failure_rate, custom_search_space, params
    ) -> None:
        # lazy: optuna costs 0.5 s of start-up; main imports this module for every command, sweep or not
        from .optuna_loop import ResumableOptunaSweeperImpl

        super().__init__(
            sampler, direction, storage, study_name, n_trials, n_jobs, max_failure_rate, custom_search_space, params
        )
        impl = ResumableOptunaSweeperImpl(
            compat.sweeper_sampler(self.sweeper),
            direction,
            storage,
            study_name,
            n_trials,
            n_jobs,
            max_failure_rate,
            custom_search_space,
            params,
        )
        compat.replace_sweeper_impl(self, impl)


def register() -> None:
    """Make the class known to Hydra's plugin registry (its package scan cannot see editable installs)."""
    compat.register_hydra_plugin(ResumableOptunaSweeper)
