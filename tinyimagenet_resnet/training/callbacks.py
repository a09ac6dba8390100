"""What happens around the training loop, as named steps the Trainer calls: TensorBoard logging, checkpoints and
metrics.json, the run's progress. Sweeps add their own (Optuna pruning, sweeps/pruning.py), a time budget its
re-plans (training/replan.py). Callbacks run in list order."""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..artifacts import names
from ..artifacts.records import TrainMetrics
from ..artifacts.tensorboard import TBLogger
from ..data.dataset import IMAGE_SIZE
from ..progress import Progress, duration
from ..progress import log as progress_log
from . import checkpoint
from .engine import Trainer
from .resizing import steps_by_size


class Callback:
    def on_fit_start(self, trainer) -> None:
        """The loop starts (also when a run is resumed: `trainer.state` is where it resumes)."""

    def on_epoch_start(self, trainer, epoch: int) -> None:
        """Epoch `epoch` (0-based) starts, or continues after a resume."""

    def on_step(self, trainer, step: int) -> None:
        """After each optimiser step, with the global step count."""

    def on_total_steps(self, trainer, total: int) -> None:
        """A time-budgeted run was re-planned to `total` steps."""

    def on_initial_loss(self, trainer, loss: float) -> None:
        """The loss of the very first step (a sanity check against ln(num_classes))."""

    def on_log_step(self, trainer, step: int, loss: float) -> None:
        """Every `trainer.log_every_n_steps` steps, with the current step's loss."""

    def on_validation(self, trainer, final: bool, seconds: float) -> None:
        """After a validation (`final`: the run's last, on the whole val split), with the seconds it took."""

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
    """`best.ckpt` when val top-1 improved, `last.ckpt` after every epoch and on an interrupt; the trainer is told
    its last checkpoint (what an interrupted run names to resume from)."""

    def __init__(self, ckpt_dir: Path):
        self.ckpt_dir = Path(ckpt_dir)

    def on_epoch_end(self, trainer: Trainer, row):
        if trainer.state.best.epoch == row.epoch:
            checkpoint.save(trainer, self.ckpt_dir / "best.ckpt")
        trainer.last_checkpoint = checkpoint.save(trainer, self.ckpt_dir / "last.ckpt")

    def on_interrupt(self, trainer: Trainer):
        trainer.last_checkpoint = checkpoint.save(trainer, self.ckpt_dir / "last.ckpt")


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


FASTER_ON_A_CPU = (
    "experiment=cpu trainer.budget_minutes=60 (37.4% val top-1 in 60 min on a 2-core CPU with AVX512-BF16, "
    "BENCHMARKS.md), or task=protocol protocol.scale=smoke (every step of the course on small settings; README "
    "'Start here')"
)


class RunProgress(Callback):
    """The run's progress (a bar over all its steps, or a line every `every_s` seconds), and once the first steps
    are timed, the whole run's estimate; on a CPU, a run of more than an hour without a time budget gets one line
    naming the faster choices (it never changes what runs).

    The estimate and the ETA count what is left at what it costs here (`seconds_left`): each train size's steps at
    that size's step time (with progressive resizing, trainer.train_sizes), timed once the run has reached the size,
    else scaled from the last size timed by the pixel count (an upper bound: small images use the machine less well;
    on the 2-core EPYC of BENCHMARKS.md a 64 px step took 11x a 16 px one, not 16x); the validations left, at the
    time per image of the last one on the same split (interim or full), else a third of a train step per image at
    64 px; and each epoch's end (checkpoints, records) at its mean so far. A run's first steps, a size's first step
    and a step that a time budget's re-timing followed are not timed."""

    WARMUP, TIMED = 2, 5  # steps left out (start-up), then steps timed for the estimate

    def __init__(self, bar: bool, every_s: float, device: str = "", precision: str = ""):
        self.bar, self.every_s, self.device, self.precision = bar, every_s, device, precision
        self.progress: Progress | None = None
        self.first_step = 0
        self.mark: float | None = None  # when the last step ended (or the epoch started)
        self.skip = False  # the next step's time is not a step's (a budget re-plan ran after it)
        self.step_s: dict[int, list[float]] = {}  # size index -> [seconds, count] of its timed steps
        self.val_image_s: dict[bool, float] = {}  # final? -> seconds per image of the last validation on that split
        self.val_s = 0.0  # seconds of validation since the last step
        self.epoch_end_s = [0.0, 0]  # [seconds, count] of epoch ends (validation aside)

    def on_fit_start(self, trainer):
        self.first_step = trainer.state.global_step
        batch = getattr(trainer.train_loader, "batch_size", None)
        self.progress = Progress("train", trainer.total_steps, bar=self.bar, every_s=self.every_s,
                                 initial=self.first_step, images_per_unit=batch, clock=trainer.clock,
                                 eta=lambda: self.seconds_left(trainer))  # fmt: skip

    def on_epoch_start(self, trainer, epoch):
        now = trainer.clock()
        if self.mark is not None:  # the end of the epoch before (not after a resume): its records, its checkpoints
            self.epoch_end_s[0] += max(0.0, now - self.mark - self.val_s)
            self.epoch_end_s[1] += 1
        self.mark, self.val_s = now, 0.0  # ... which are not the next step's time
        if self.progress is not None:
            self.progress.set_detail(f"epoch {epoch + 1}/{trainer.s.epochs}")

    def on_step(self, trainer, step):
        now, i = trainer.clock(), trainer.state.size_index
        done = step - self.first_step
        timed = self.mark is not None and done > self.WARMUP and i in self.step_s and not self.skip
        if timed:  # not a size's first step either
            self.step_s[i][0] += now - self.mark
            self.step_s[i][1] += 1
        self.step_s.setdefault(i, [0.0, 0])
        self.mark, self.skip = now, False
        if self.progress is None:
            return
        self.progress.update(1)
        if done == self.WARMUP + self.TIMED and trainer.replanner is None:
            self.estimate(trainer)

    def on_validation(self, trainer, final, seconds):
        self.val_s += seconds
        n = trainer.val_loader_for(final).num_samples
        if n:
            self.val_image_s[final] = seconds / n

    def size_seconds(self, trainer) -> list[float] | None:
        """Seconds of a train step at each train size (see the class); None before a step is timed."""
        sizes = list(trainer.s.train_sizes)
        measured = {i: total / n for i, (total, n) in self.step_s.items() if n}
        if not measured:
            return None
        out = []
        for i, size in enumerate(sizes):
            j = i if i in measured else max((k for k in measured if k < i), default=min(measured))
            out.append(measured[j] * (size / sizes[j]) ** 2)
        return out

    def ends_left(self, trainer) -> list[bool]:
        """The epoch ends left, with whether each has the run's last (full) validation, by the engine's own rule:
        the last epoch's, or the one where a budget's plan ends the run."""
        s, ends = trainer.s, []
        for e in range(trainer.state.epoch, s.epochs):
            ends.append(e + 1 >= s.epochs or trainer.epoch_end(e) >= trainer.total_steps)
            if ends[-1]:
                break
        return ends

    def seconds_left(self, trainer) -> float | None:
        """The run's seconds left (see the class); None before a step is timed."""
        step_s = self.size_seconds(trainer)
        if step_s is None:
            return None
        s, state = trainer.s, trainer.state
        left = steps_by_size(state.global_step, trainer.total_steps, s.train_size_fractions, state.size_index)
        seconds = sum(n * t for n, t in zip(left, step_s, strict=True))
        last = max(i for i, (_, n) in self.step_s.items() if n)
        batch = getattr(trainer.train_loader, "batch_size", 1) or 1
        guess = step_s[last] * (IMAGE_SIZE / s.train_sizes[last]) ** 2 / batch / 3  # a forward pass, per image
        for e, final in zip(range(state.epoch, s.epochs), self.ends_left(trainer), strict=False):
            if final or (e + 1) % s.val_every_n_epochs == 0:
                image_s = self.val_image_s.get(final, self.val_image_s.get(not final, guess))
                seconds += trainer.val_loader_for(final).num_samples * image_s
        if self.epoch_end_s[1]:
            seconds += len(self.ends_left(trainer)) * self.epoch_end_s[0] / self.epoch_end_s[1]
        return seconds

    def on_total_steps(self, trainer, total):
        self.skip = True  # a budget's re-plan (and any re-timing) ran after this step: not a step's time
        if self.progress is not None:
            self.progress.set_total(total)

    def estimate(self, trainer) -> None:
        """The whole run from here: the seconds spent and the seconds left (`seconds_left`)."""
        s, step_s = trainer.s, self.size_seconds(trainer)
        if step_s is None:
            return
        step_s = step_s[trainer.state.size_index]
        total = self.seconds_left(trainer) + (trainer.clock() - trainer.fit_t0)
        progress_log.info(
            "%d epochs (%s steps): about %s on this machine (%s, %s, %.2f s/step%s), validations included",
            s.epochs,
            f"{trainer.total_steps:,}",
            duration(total),
            self.device,
            self.precision,
            step_s,
            f" at {s.train_sizes[trainer.state.size_index]} px, the larger sizes scaled by pixel count"
            if len(set(s.train_sizes)) > 1 else "",
        )  # fmt: skip
        if total > 3600 and self.device.startswith("cpu"):
            progress_log.warning(
                "this run will take about %s on this CPU; faster: %s. It goes on as asked.",
                duration(total),
                FASTER_ON_A_CPU,
            )

    def on_log_step(self, trainer, step, loss):
        if self.progress is not None:
            self.progress.set_postfix(loss=f"{loss:.3f}")

    def on_fit_end(self, trainer):
        if self.progress is not None:
            self.progress.close()
