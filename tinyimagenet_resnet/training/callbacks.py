"""What happens around the training loop, as named steps the Trainer calls: TensorBoard logging, checkpoints and
metrics.json. Sweeps add their own (Optuna pruning, sweeps/pruning.py). Callbacks run in list order."""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..artifacts import names
from ..artifacts.records import TrainMetrics
from ..artifacts.tensorboard import TBLogger
from . import checkpoint


class Callback:
    def on_initial_loss(self, trainer, loss: float) -> None:
        """The loss of the very first step (a sanity check against ln(num_classes))."""

    def on_log_step(self, trainer, step: int, loss: float) -> None:
        """Every `trainer.log_every_n_steps` steps, with the current step's loss."""

    def on_epoch_end(self, trainer, row) -> None:
        """After each epoch (validation included), with its EpochRow."""

    def on_interrupt(self, trainer) -> None:
        """SIGINT/SIGTERM: the loop stopped after the current step; the run will be resumed."""

    def on_fit_end(self, trainer) -> None:
        """The loop ended, whatever the reason: `trainer.state.status` says which (ok, failed, diverged, ...)."""


class TensorBoardLogging(Callback):
    """Scalars per step and per epoch; at the end, the run's HParams with its best metrics and the best checkpoint's
    path. Closes the writer. `tb` is the run's `Trackers` (TensorBoard and the other `logger` choices) or one
    TBLogger."""

    def __init__(
        self,
        tb: TBLogger,
        hparams: dict,
        in_sweep: bool = False,
        started_at: float | None = None,
        run_dir: Path | None = None,
    ):
        self.tb, self.hparams, self.in_sweep, self.started_at = tb, hparams, in_sweep, started_at
        self.run_dir = run_dir

    def on_initial_loss(self, trainer, loss):
        self.tb.scalars({names.INITIAL_LOSS: loss}, 0)

    def on_log_step(self, trainer, step, loss):
        self.tb.scalars({names.TRAIN_LOSS_STEP: loss}, step)

    def on_epoch_end(self, trainer, row):
        self.tb.scalars(row.scalars(), row.epoch)
        self.tb.flush()

    def on_fit_end(self, trainer):
        s = trainer.state
        if s.status != "interrupted":  # an interrupted run writes its session when it is resumed
            best = s.best
            self.tb.hparams(
                self.hparams,
                {
                    names.HP_BEST_VAL_ACC: max(best.val_accuracy or 0.0, 0.0),
                    names.HP_BEST_VAL_LOSS: best.val_loss if best.val_loss is not None else math.nan,
                    names.HP_EPOCHS_RUN: float(s.epoch),
                },
                status=s.status,
                start_time=self.started_at,
                with_experiment=not self.in_sweep,
            )
        best_ckpt = Path(self.run_dir) / "checkpoints" / "best.ckpt" if self.run_dir is not None else None
        if best_ckpt is not None and best_ckpt.is_file():
            self.tb.note("best_checkpoint", str(best_ckpt.resolve()))
        self.tb.close(s.status)


class Checkpointing(Callback):
    """`best.ckpt` when val top-1 improved, `last.ckpt` after every epoch and on an interrupt."""

    def __init__(self, ckpt_dir: Path):
        self.ckpt_dir = Path(ckpt_dir)
        self.last: Path | None = None

    def on_epoch_end(self, trainer, row):
        if trainer.state.best.epoch == row.epoch:
            checkpoint.save(trainer, self.ckpt_dir / "best.ckpt")
        self.last = checkpoint.save(trainer, self.ckpt_dir / "last.ckpt")

    def on_interrupt(self, trainer):
        self.last = checkpoint.save(trainer, self.ckpt_dir / "last.ckpt")


class MetricsFile(Callback):
    """`metrics.json` (artifacts.records.TrainMetrics) after every epoch, on an interrupt and at the end."""

    def __init__(self, run_dir: Path, num_classes: int, **extra):
        self.run_dir, self.num_classes, self.extra = Path(run_dir), num_classes, extra

    def write(self, trainer) -> None:
        s = trainer.state
        TrainMetrics(
            status=s.status,
            epochs_run=s.epoch,
            best=s.best,
            history=s.history,
            initial_loss=s.initial_loss,
            ln_num_classes=math.log(self.num_classes),
            wall_time_s=s.wall_time_s,
            plan=s.plan,
            actual={
                "wall_s": round(time.time() - trainer.s.started_at, 2),
                "steps": s.global_step,
                **({"skipped_steps": s.skipped_steps} if trainer.scaler.is_enabled() else {}),
            },
            **self.extra,
        ).write(self.run_dir)

    def on_epoch_end(self, trainer, row):
        self.write(trainer)

    def on_interrupt(self, trainer):
        self.write(trainer)

    def on_fit_end(self, trainer):
        self.write(trainer)
