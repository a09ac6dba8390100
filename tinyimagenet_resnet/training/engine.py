"""The training engine: epochs of optimisation and validation, in the order they happen. What surrounds the loop
(TensorBoard, checkpoints, metrics.json, pruning) is a list of callbacks (training/callbacks.py); checkpoint
assembly and restore are in training/checkpoint.py; the plan of a time-budgeted run in training/budget.py."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .. import compat
from ..artifacts.records import Best, EpochRow, SplitMetrics, progress_from_json, progress_to_json
from ..errors import DivergedError, Interrupted
from . import checkpoint
from .budget import Replanner, remeasure, size_index
from .ema import EMA
from .metrics import ClassificationMeter
from .progress import Progress
from .runtime import autocast
from .settings import TrainSettings

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Where training stands; stored in every checkpoint (`state`) and restored on resume."""

    epoch: int = 0  # completed epochs
    global_step: int = 0
    samples_into_epoch: int = 0  # > 0 only in a checkpoint written by an interrupt mid-epoch...
    epoch_loss_sum: float = 0.0  # ...with the train loss and accuracy sums of that epoch's first part
    epoch_correct: int = 0
    best: Best = field(default_factory=Best)
    history: list[EpochRow] = field(default_factory=list)
    initial_loss: float | None = None
    status: str = "running"
    wall_time_s: float = 0.0
    plan: dict | None = None  # the BudgetPlan of a time-budgeted run (training/budget.py), kept on resume
    size_index: int = 0  # progressive resizing: the index in train_sizes of the latest phase reached
    skipped_steps: int = 0  # fp16: optimiser steps the loss scaler skipped (inf/NaN gradients), counted so far

    def record(self, row: EpochRow) -> bool:
        """Append a finished epoch; True when it is the new best (val top-1)."""
        self.epoch = row.epoch
        self.history.append(row)
        if self.best.beaten_by(row):
            self.best = Best.of(row)
            return True
        return False

    def to_json(self) -> dict:
        return progress_to_json(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainState:
        return progress_from_json(cls, data)


def to_device(batch, device: torch.device, channels_last: bool):
    x, y = batch
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def resize(x: torch.Tensor, size: int, channels_last: bool) -> torch.Tensor:
    """A batch at `size`x`size` (antialiased bilinear), for progressive resizing; unchanged at its own size."""
    if x.shape[-1] == size:
        return x
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def use_progress_bar(setting) -> bool:
    """`trainer.progress_bar`: auto = a bar on an interactive terminal, else progress lines (training/progress.py)."""
    if setting == "auto":
        return sys.stderr.isatty()
    return bool(setting)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    device,
    num_classes: int,
    amp_dtype=None,
    channels_last=True,
    show_progress=False,
    desc="eval",
    flip: bool = False,
    max_batches: int | None = None,
    progress_every_s: float | None = None,
) -> ClassificationMeter:
    """One pass over `loader` in eval mode; returns the filled meter (metrics, confusion matrix). `flip` averages
    the logits of each image and its mirror image (test-time augmentation). Progress: a bar (`show_progress`), or
    a line every `progress_every_s` seconds (None: none)."""
    was_training = model.training
    model.eval()
    meter = ClassificationMeter(num_classes, device)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    n = len(loader) if max_batches is None else min(len(loader), max_batches)
    watch = None
    if show_progress or progress_every_s is not None:
        watch = Progress(desc, n, bar=show_progress, every_s=progress_every_s or 30.0, unit="batch",
                         images_per_unit=getattr(loader, "batch_size", None))  # fmt: skip
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        if watch is not None and i:
            watch.update(1)
        x, y = to_device(batch, device, channels_last)
        with autocast(device, amp_dtype):
            logits = model(x).float()
            if flip:
                mirrored = x.flip(3)
                if channels_last:
                    mirrored = mirrored.contiguous(memory_format=torch.channels_last)
                logits = (logits + model(mirrored).float()) / 2
        meter.update(logits, y, loss_fn(logits, y))
    if watch is not None:
        watch.close()
    model.train(was_training)
    return meter


class Trainer:
    def __init__(
        self,
        settings: TrainSettings,
        model: nn.Module,
        optimizer,
        scheduler,
        train_loader,
        val_loader,
        callbacks=(),
        checkpoint_meta: dict | None = None,
        interim_val_loader=None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        """`checkpoint_meta` goes into every checkpoint as is (the resolved config, the split summary).
        `interim_val_loader`, when given, validates every epoch but the last (a subset of val: cheaper). `clock`
        is where step, validation and budget times come from (seconds; a test injects its own)."""
        self.clock = clock
        self.s, self.model, self.optimizer, self.scheduler = settings, model, optimizer, scheduler
        self.train_loader, self.val_loader, self.interim_val_loader = train_loader, val_loader, interim_val_loader
        self.callbacks = list(callbacks)
        self.checkpoint_meta = dict(checkpoint_meta or {})
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
        self.scaler = torch.amp.GradScaler(
            settings.device.type, init_scale=settings.loss_scale, enabled=settings.amp_dtype == torch.float16
        )
        self._skipped = None  # fp16: steps the scaler skipped since the last count, on the device (no sync a step)
        self.forward = torch.compile(model) if settings.compile else model
        self.ema = EMA(model, settings.ema_decay) if settings.ema_decay else None
        self.state = TrainState()
        self.replanner: Replanner | None = None  # a time-budgeted run's (apply_plan)
        self._fit_t0: float | None = None  # the clock at the start of the training time so far (resumes included)
        self._stop_signal: str | None = None
        self._batch = None  # the train batch in hand (x, y)

    def _emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def restore(self, ckpt: dict) -> None:
        """Continue exactly where `ckpt` stopped (training/checkpoint.py)."""
        checkpoint.restore(self, ckpt)
        best = self.state.best
        log.info(
            "Resumed at epoch %d (global step %d, best val top-1 %s)",
            self.state.epoch,
            self.state.global_step,
            f"{best.val_accuracy:.4f}" if best.epoch else "-",
        )

    # ---------------------------------------------------------------- the schedule of a run
    def apply_plan(self, plan) -> None:
        """Run the steps of a time budget's plan (training/budget.py) in its epochs, revising it as the run goes."""
        self.s = self.s.replace(total_steps=plan.total_steps, epochs=plan.epochs)
        self.train_loader.set_steps_per_epoch(plan.steps_per_epoch)
        self.state.plan = plan.to_json()
        self.replanner = Replanner(
            plan, self.s.train_sizes, self.s.train_size_fractions, retime=self._retime, clock=self.clock
        )

    def _retime(self, current: int, ahead: list[int]) -> dict[int, float]:
        """Seconds per step at these train sizes, timed now on the batch in hand (a budget's re-plan asks)."""
        x, y = self._batch
        return remeasure(self, x, y, current, ahead)

    def set_total_steps(self, total: int) -> None:
        """A new length for a running budgeted run: the schedule and the train sizes follow it from this step."""
        self.s = self.s.replace(total_steps=total)
        if self.scheduler is not None:
            self.scheduler.set_total_steps(total)
        self._emit("on_total_steps", total)

    def batches_per_epoch(self) -> int:
        n = len(self.train_loader)
        return min(n, self.s.limit_train_batches) if self.s.limit_train_batches else n

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the whole run: the budget plan's, else epochs x batches per epoch."""
        return self.s.total_steps or self.s.epochs * self.batches_per_epoch()

    def epoch_end(self, epoch: int) -> int:
        """The global step at which `epoch` ends. A budgeted run cuts its epochs from one stream of steps, and its
        last epoch ends with the run, wherever a re-plan moved the end."""
        if self.replanner is not None:
            spe = self.replanner.plan.steps_per_epoch
            return self.total_steps if epoch + 1 >= self.s.epochs else min((epoch + 1) * spe, self.total_steps)
        return min(epoch * self.batches_per_epoch() + self.batches_per_epoch(), self.total_steps)

    def phase_at(self, step: int) -> int:
        """The index in trainer.train_sizes of the train resolution at global step `step` (progressive resizing);
        never back to an earlier phase than already reached (a re-planned budget moves the bounds)."""
        return size_index(step, self.total_steps, self.s.train_size_fractions, self.state.size_index)

    def resize(self, x: torch.Tensor, size: int) -> torch.Tensor:
        return resize(x, size, self.s.channels_last)

    # ---------------------------------------------------------------- signals
    def _on_signal(self, signum, frame):
        if self._stop_signal is None:
            self._stop_signal = signal.Signals(signum).name
            log.warning("%s received: finishing the current step, then writing last.ckpt", self._stop_signal)

    @contextlib.contextmanager
    def _signals_stop_after_the_step(self):
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not in the main thread (e.g. some launchers): leave handlers as they are
                pass
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # ---------------------------------------------------------------- one step, one epoch
    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on a batch (the LR schedule is stepped by the caller); returns (loss, logits)."""
        with autocast(self.s.device, self.s.amp_dtype):
            logits = self.forward(x)
            loss = self.loss_fn(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        before = compat.grad_scaler_scale(self.scaler)
        before = before.clone() if before is not None else None
        self.scaler.update()
        if before is not None:  # the scale falls exactly when the step was skipped (inf or NaN gradients)
            fell = (compat.grad_scaler_scale(self.scaler) < before).long()
            self._skipped = fell if self._skipped is None else self._skipped + fell
        if self.ema is not None:
            self.ema.update(self.model)
        return loss, logits

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """Optimise over one epoch; returns (mean train loss, train accuracy)."""
        s, state = self.s, self.state
        self.model.train()
        # mid-epoch after a resume: skip the batches already trained on, and go on from their sums
        skip = state.samples_into_epoch // self.train_loader.batch_size
        if self.replanner is None:  # an epoch of the data (or of limit_train_batches), as planned from its start
            end = state.global_step + min(self.batches_per_epoch() - skip, self.total_steps - state.global_step)
        loss_sum = torch.full((), state.epoch_loss_sum, dtype=torch.float64, device=s.device)
        correct = torch.full((), state.epoch_correct, dtype=torch.long, device=s.device)
        seen = state.samples_into_epoch
        first_bad = torch.full((), -1, dtype=torch.long, device=s.device)
        batches = self.train_loader.epoch(epoch, skip)
        self._emit("on_epoch_start", epoch)
        mark = self.clock()
        while state.global_step < (end if self.replanner is None else self.epoch_end(epoch)):
            x, y = self._batch = to_device(next(batches), s.device, s.channels_last)
            state.size_index = self.phase_at(state.global_step)
            size = s.train_sizes[state.size_index]
            loss, logits = self.step(self.resize(x, size), y)
            if state.initial_loss is None:
                state.initial_loss = float(loss.detach())
                log.info("Initial loss %.4f (ln %d = %.4f)", state.initial_loss, s.num_classes, math.log(s.num_classes))
                self._emit("on_initial_loss", state.initial_loss)
            # Record the first non-finite step on the device; checked without a per-step host sync.
            first_bad = torch.where(
                (first_bad < 0) & ~torch.isfinite(loss.detach()),
                torch.full_like(first_bad, state.global_step),
                first_bad,
            )
            state.global_step += 1
            if self.replanner is not None:
                now = self.clock()
                self.replanner.add_step(size, now - mark)
                mark = now
                if self.replanner.due(state.global_step):
                    self.set_total_steps(
                        self.replanner.replan(state.global_step, epoch, self.elapsed_budget_s(), state.size_index)
                    )
                    state.plan = self.replanner.plan.to_json()
                    mark = self.clock()  # a re-plan (and a re-timing) is not a train step's time
            if self.scheduler is not None and state.global_step < self.total_steps:
                self.scheduler.step()  # not after the last step: the schedule ends on it
            loss_sum += loss.detach().double() * y.numel()
            correct += (logits.detach().argmax(1) == y).sum()
            seen += y.numel()
            state.samples_into_epoch += y.numel()
            self._emit("on_step", state.global_step)
            if state.global_step % s.log_every_n_steps == 0 or self._stop_signal:
                self._check_finite(first_bad, epoch)
                self._count_skipped()
                self._emit("on_log_step", state.global_step, float(loss.detach()))
            if self._stop_signal:
                state.epoch_loss_sum, state.epoch_correct = float(loss_sum), int(correct)
                self._interrupt()
        self._check_finite(first_bad, epoch)
        if self._count_skipped():
            log.info(
                "fp16: the loss scaler has skipped %d step(s) with inf/NaN gradients so far (scale now %g)",
                state.skipped_steps,
                self.scaler.get_scale(),
            )
        state.samples_into_epoch, state.epoch_loss_sum, state.epoch_correct = 0, 0.0, 0
        n = max(seen, 1)
        return float(loss_sum) / n, float(correct) / n

    def _count_skipped(self) -> int:
        """Move the device's count of skipped fp16 steps into the state; returns how many were new."""
        if self._skipped is None:
            return 0
        new = int(self._skipped)
        self.state.skipped_steps += new
        self._skipped = None
        return new

    def _interrupt(self):
        """Stop on SIGINT/SIGTERM: last.ckpt (and metrics.json) as the run stands, then Interrupted."""
        self.state.status = "interrupted"
        self.state.wall_time_s = self.clock() - self._fit_t0  # a resumed budget counts this epoch's time
        self._emit("on_interrupt")
        ckpt = next((cb.last for cb in self.callbacks if getattr(cb, "last", None)), None)
        raise Interrupted(self._stop_signal, ckpt)

    def elapsed_budget_s(self) -> float:
        """Seconds of a budgeted run's budget spent: its start-up and calibration, then its training time (across
        resumes; the time a run spent stopped does not count)."""
        return self.replanner.plan.planned_at_s + self.clock() - self._fit_t0

    def _check_finite(self, first_bad: torch.Tensor, epoch: int) -> None:
        bad_step = int(first_bad)
        if bad_step >= 0:
            self.state.status = "diverged"
            raise DivergedError(epoch + 1, bad_step, float("nan"))

    def eval_model(self) -> nn.Module:
        """What validation and the checkpoints' evaluation use: the weight average when trainer.ema_decay is set."""
        return self.ema.model if self.ema is not None else self.forward

    def _val_loader(self, final: bool):
        """The full val split for the final validation, the interim subset (when set) before it."""
        return self.val_loader if final or self.interim_val_loader is None else self.interim_val_loader

    def validate(self, final: bool = True, max_batches: int | None = None) -> SplitMetrics:
        s = self.s
        meter = evaluate(
            self.eval_model(),
            self._val_loader(final),
            s.device,
            s.num_classes,
            s.amp_dtype,
            s.channels_last,
            s.progress_bar and max_batches is None,
            desc="val",
            flip=s.tta_flip,
            max_batches=max_batches,
            progress_every_s=s.progress_every_s if max_batches is None else None,
        )
        return meter.compute()

    def unfinished(self) -> bool:
        """An epoch is still to train or to validate. A run stopped on the last step of an epoch has trained it
        (`samples_into_epoch` > 0, even at the run's last step) but not validated or recorded it: a resume does."""
        s = self.state
        return s.epoch < self.s.epochs and (s.global_step < self.total_steps or s.samples_into_epoch > 0)

    def _last_epoch(self, epoch: int) -> bool:
        return epoch + 1 >= self.s.epochs or self.state.global_step >= self.total_steps

    # ---------------------------------------------------------------- the loop
    def fit(self) -> TrainState:
        t_start = self._fit_t0 = self.clock() - self.state.wall_time_s
        self._emit("on_fit_start")
        try:
            with self._signals_stop_after_the_step():
                while self.unfinished():
                    epoch, t0 = self.state.epoch, self.clock()
                    train_loss, train_acc = self.train_epoch(epoch)
                    final = self._last_epoch(epoch)
                    t_val = self.clock()
                    val = None
                    if final or (epoch + 1) % self.s.val_every_n_epochs == 0:
                        n = self._val_loader(final).num_samples
                        log.info("epoch %d/%d: validating on %s images", epoch + 1, self.s.epochs, f"{n:,}")
                        val = self.validate(final)
                    if self.replanner is not None and val is not None:
                        self.replanner.add_validation(final, self.clock() - t_val)
                    row = EpochRow(
                        epoch + 1,
                        train_loss,
                        train_acc,
                        self.optimizer.param_groups[0]["lr"],
                        self.clock() - t0,
                        step=self.state.global_step,
                        wall_s=round(time.time() - self.s.started_at, 3),
                        train_size=self.s.train_sizes[self.state.size_index],
                    ).with_val(val)
                    improved = self.state.record(row)
                    self.state.wall_time_s = self.clock() - t_start
                    self._log_epoch(row, improved)
                    if not row.finite():
                        self.state.status = "diverged"
                        raise DivergedError(
                            row.epoch, self.state.global_step, row.val_loss if row.val_loss is not None else math.nan
                        )
                    self._emit("on_epoch_end", row)
                    if self._stop_signal and self.unfinished():  # a signal during validation: stop at the epoch's end
                        self._interrupt()
            self.state.status = "ok"
            return self.state
        except BaseException:
            if self.state.status == "running":
                self.state.status = "failed"
            raise
        finally:
            self.state.wall_time_s = self.clock() - t_start
            self._emit("on_fit_end")

    def _log_epoch(self, row: EpochRow, improved: bool) -> None:
        val = (
            f"val loss {row.val_loss:.4f} top1 {row.val_accuracy:.4f} top5 {row.val_top5:.4f} f1 {row.val_f1_macro:.4f}"
            + (f" ({row.val_images} images)" if row.val_images else "")
            if row.validated
            else "val -"
        )
        log.info(
            "epoch %d/%d  train loss %.4f acc %.4f | %s | lr %.3g | %.1fs%s",
            row.epoch,
            self.s.epochs,
            row.train_loss,
            row.train_accuracy,
            val,
            row.lr,
            row.epoch_time_s,
            "  *best*" if improved else "",
        )
