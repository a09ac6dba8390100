"""Job side of Optuna pruning: report val top-1 after every epoch to the trial this job runs."""

from __future__ import annotations

import logging

from hydra.core.hydra_config import HydraConfig

from ..training.callbacks import Callback
from .storage import make_storage
from .study import make_pruner

log = logging.getLogger(__name__)


class OptunaPruning(Callback):
    """Reports each validated epoch's val top-1 to the trial; raises optuna.TrialPruned when the pruner says so."""

    def __init__(self, trial):
        self.trial = trial

    def on_epoch_end(self, trainer, row):
        import optuna  # lazy: optuna costs 0.5 s of start-up; every training run imports this module

        if not row.validated:  # an epoch without validation (trainer.val_every_n_epochs)
            return
        self.trial.report(row.val_accuracy, step=row.epoch)
        if self.trial.should_prune():
            trainer.state.status = "pruned"
            log.info(
                "optuna: trial %d pruned after epoch %d (val top-1 %.4f)",
                self.trial.number,
                row.epoch,
                row.val_accuracy,
            )
            raise optuna.TrialPruned(f"pruned at epoch {row.epoch}")


def pruning_callback(cfg) -> OptunaPruning | None:
    """The pruning callback when this job is an Optuna trial, else None."""
    opt = cfg.optuna
    if opt is None or opt.trial_number is None:
        return None
    if list(opt.get("objectives") or ["val_top1"]) != ["val_top1"]:  # it reports val top-1, so only for that
        log.info("optuna: objectives %s: no per-epoch val top-1 reports, no pruning", list(opt.objectives))
        return None
    import optuna  # lazy: optuna costs 0.5 s of start-up, paid only by a job that is an Optuna trial

    sweeper = HydraConfig.get().sweeper
    storage = make_storage(sweeper.storage)
    if storage is None:
        log.warning("optuna: no storage configured, so trials cannot report to the study; pruning is off")
        return None
    study = optuna.load_study(study_name=sweeper.study_name, storage=storage, pruner=make_pruner(opt))
    if len(study.directions) > 1:  # optuna has no intermediate values (so no pruning) for several objectives
        log.info("optuna: %d objectives, so no per-epoch reports and no pruning", len(study.directions))
        return None
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(opt.trial_number))
    return OptunaPruning(optuna.trial.Trial(study, trial_id))
