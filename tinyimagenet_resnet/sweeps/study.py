"""Optuna storage, pruner and study bookkeeping shared by the sweeper (parent) and the trials (jobs)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# Trials in these states count toward `n_trials`. Failed ones do not: a re-run after fixing their cause runs new
# trials in their place (a run stops itself after too many failures, hydra.sweeper.max_failure_rate).
COUNTED = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")


def mark_interrupted(study, trial) -> None:
    """A trial whose sweep died (already FAIL when this is called): queue its parameters again as `retry_of`."""
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
    log.warning("Trial %d was interrupted (its sweep stopped); its parameters are queued again", trial.number)


def make_pruner(opt_cfg):
    import optuna  # lazy: optuna costs 0.5 s of start-up; a training run imports this module and prunes nothing

    name = opt_cfg.pruner
    if name == "none":
        pruner = optuna.pruners.NopPruner()
    elif name == "median":
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=int(opt_cfg.n_startup_trials), n_warmup_steps=int(opt_cfg.n_warmup_steps)
        )
    else:  # threshold (the schema's Pruner enum allows nothing else)
        pruner = optuna.pruners.ThresholdPruner(
            lower=float(opt_cfg.threshold), n_warmup_steps=int(opt_cfg.n_warmup_steps)
        )
    if opt_cfg.patience > 0:
        pruner = optuna.pruners.PatientPruner(pruner, patience=int(opt_cfg.patience))
    return pruner


def interrupted_numbers(trials) -> set[int]:
    """Numbers of trials killed with their sweep: those another trial retries."""
    return {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}


def counted_trials(trials) -> int:
    """Trials that count toward n_trials (`study.get_trials(deepcopy=False)`)."""
    interrupted = interrupted_numbers(trials)
    return sum(1 for t in trials if t.state.name in COUNTED and t.number not in interrupted)
