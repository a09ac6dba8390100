"""Job side of Optuna pruning: report val top-1 after every epoch to the trial this job runs."""

from __future__ import annotations

import logging

from hydra.core.hydra_config import HydraConfig

from .storage import make_storage
from .study import make_pruner

log = logging.getLogger(__name__)


def pruning_callback(cfg):
    """An epoch callback for the Trainer when this job is an Optuna trial, else None."""
    opt = cfg.get("optuna")
    if opt is None or opt.get("trial_number") is None:
        return None
    import optuna

    sweeper = HydraConfig.get().sweeper
    storage = make_storage(sweeper.storage)
    if storage is None:
        log.warning("optuna: no storage configured, so trials cannot report to the study; pruning is off")
        return None
    study = optuna.load_study(study_name=sweeper.study_name, storage=storage, pruner=make_pruner(opt))
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, int(opt.trial_number))
    trial = optuna.trial.Trial(study, trial_id)

    def report(trainer, row):
        if "val/accuracy" not in row:  # an epoch without validation (trainer.val_every_n_epochs)
            return
        trial.report(row["val/accuracy"], step=row["epoch"])
        if trial.should_prune():
            trainer.state.status = "pruned"
            log.info("optuna: trial %d pruned after epoch %d (val top-1 %.4f)", trial.number, row["epoch"],
                     row["val/accuracy"])
            raise optuna.TrialPruned(f"pruned at epoch {row['epoch']}")

    return report
