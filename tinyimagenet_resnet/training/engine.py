"""The training engine: epochs of optimisation and validation, in the order they happen. What surrounds the loop
(TensorBoard, checkpoints, metrics.json, progress, pruning, a time budget's re-plans) is a list of callbacks called
on named hooks (training/callbacks.py, training/replan.py); a checkpoint's format is in training/checkpoint.py."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .. import compat
from ..artifacts.records import EpochRow, SplitMetrics
from ..errors import DivergedError, Interrupted
from .batch import resize, to_device
from .ema import EMA
from .evaluation import evaluate
from .resizing import size_index
from .runtime import autocast, set_rng_state
from .settings import TrainSettings
from .state import EpochSums, TrainState

log = logging.getLogger(__name__)


class Trainer:
    def __init__(
        self,
        *,
        settings: TrainSettings,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler=None,
        train_loader,
        val_loader,
        callbacks=(),
        checkpoint_meta: dict | None = None,
        interim_val_loader=None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        """`scheduler`: a per-step LR scheduler (training/optim.py: PlannedLR) or None. `checkpoint_meta` goes into
        every checkpoint as is (the resolved config, the split summary). `interim_val_loader`, when given, validates
        every epoch but the last (a subset of val: cheaper). `clock` is where step, validation and budget times come
        from (seconds; a test injects its own)."""
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
        self.replanner = None  # a time-budgeted run's Replanner (training/replan.py: apply_plan sets it)
        self.last_checkpoint: Path | None = None  # the latest last.ckpt written (the checkpointing callback's)
        self.fit_t0: float | None = None  # the clock at the start of the training time so far (resumes included)
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None  # the train batch in hand (x, y)
        self._stop_signal: str | None = None

    def _emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def restore(self, ckpt: dict) -> None:
        """Weights, optimizer, scheduler, scaler, epoch, best, history, RNG states: continue exactly where `ckpt`
        (training/checkpoint.py) stopped."""
        self.model.load_state_dict(ckpt["model"])
        state = TrainState.from_json(ckpt["state"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None:
            # The schedule's closed form at the checkpoint's step, over the run's length now: exact for the same
            # length, and an extended run (trainer.epochs raised) gets the LR of its new, longer schedule.
            self.scheduler.jump_to(min(state.global_step, self.total_steps - 1))
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])
        self.state = state
        self.state.status = "running"
        set_rng_state(ckpt["rng"])
        best = self.state.best
        log.info(
            "Resumed at epoch %d (global step %d, best val top-1 %s)",
            self.state.epoch,
            self.state.global_step,
            f"{best.val_accuracy:.4f}" if best.epoch else "-",
        )

    # ---------------------------------------------------------------- the schedule of a run
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
        """The global step at which `epoch` ends: every epoch but the last after its steps (a budget plan's, else
        the batches of an epoch); the last with the run, wherever a budget's re-plan moved the end."""
        if epoch + 1 >= self.s.epochs:
            return self.total_steps
        return min((epoch + 1) * (self.s.steps_per_epoch or self.batches_per_epoch()), self.total_steps)

    def phase_at(self, step: int) -> int:
        """The index in trainer.train_sizes of the train resolution at global step `step` (progressive resizing);
        never back to an earlier phase than already reached (a re-planned budget moves the bounds)."""
        return size_index(step, self.total_steps, self.s.train_size_fractions, self.state.size_index)

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
        """Optimise over one epoch, from where a resume left it; returns (mean train loss, train accuracy)."""
        s, state = self.s, self.state
        self.model.train()
        sums = EpochSums(state, s.device)
        # mid-epoch after a resume: skip the batches already trained on (their sums are in `sums`)
        batches = self.train_loader.epoch(epoch, state.samples_into_epoch // self.train_loader.batch_size)
        self._emit("on_epoch_start", epoch)
        while state.global_step < self.epoch_end(epoch):
            x, y = self.batch = to_device(next(batches), s.device, s.channels_last)
            loss, logits = self._sized_step(x, y)
            sums.add(loss, logits, y, state.global_step)
            state.global_step += 1
            state.samples_into_epoch += y.numel()
            if self.scheduler is not None and state.global_step < self.total_steps:
                self.scheduler.step()  # not after the last step: the schedule ends on it
            self._emit("on_step", state.global_step)
            if state.global_step % s.log_every_n_steps == 0 or self._stop_signal:
                self._log_step(sums, epoch, loss)
            if self._stop_signal:
                sums.save_to(state)
                self._interrupt()
        self._end_epoch(sums, epoch)
        return sums.means()

    def _sized_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step at the train size of this point of the run; the very first step's loss is reported."""
        state = self.state
        state.size_index = self.phase_at(state.global_step)
        loss, logits = self.step(resize(x, self.s.train_sizes[state.size_index], self.s.channels_last), y)
        if state.initial_loss is None:
            state.initial_loss = float(loss.detach())
            n = self.s.num_classes
            log.info("Initial loss %.4f (ln %d = %.4f)", state.initial_loss, n, math.log(n))
            self._emit("on_initial_loss", state.initial_loss)
        return loss, logits

    def _log_step(self, sums: EpochSums, epoch: int, loss: torch.Tensor) -> None:
        """Every log_every_n_steps (and on a stop): the host syncs to check the losses and count skipped steps."""
        self._check_finite(sums.first_bad, epoch)
        self._count_skipped()
        self._emit("on_log_step", self.state.global_step, float(loss.detach()))

    def _end_epoch(self, sums: EpochSums, epoch: int) -> None:
        """Checks at the end of the epoch's steps; the next epoch starts with no sums."""
        state = self.state
        self._check_finite(sums.first_bad, epoch)
        if self._count_skipped():
            log.info(
                "fp16: the loss scaler has skipped %d step(s) with inf/NaN gradients so far (scale now %g)",
                state.skipped_steps,
                self.scaler.get_scale(),
            )
        state.samples_into_epoch, state.epoch_loss_sum, state.epoch_correct = 0, 0.0, 0

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
        self.state.wall_time_s = self.clock() - self.fit_t0  # a resumed budget counts this epoch's time
        self._emit("on_interrupt")
        raise Interrupted(self._stop_signal, self.last_checkpoint)

    def _check_finite(self, first_bad: torch.Tensor, epoch: int) -> None:
        bad_step = int(first_bad)
        if bad_step >= 0:
            self.state.status = "diverged"
            raise DivergedError(epoch + 1, bad_step, float("nan"))

    # ---------------------------------------------------------------- validation
    def eval_model(self) -> nn.Module:
        """What validation and the checkpoints' evaluation use: the weight average when trainer.ema_decay is set."""
        return self.ema.model if self.ema is not None else self.forward

    def val_loader_for(self, final: bool):
        """The full val split for the final validation, the interim subset (when set) before it."""
        return self.val_loader if final or self.interim_val_loader is None else self.interim_val_loader

    def validate(self, final: bool = True, max_batches: int | None = None) -> SplitMetrics:
        s = self.s
        meter = evaluate(
            self.eval_model(),
            self.val_loader_for(final),
            device=s.device,
            num_classes=s.num_classes,
            amp_dtype=s.amp_dtype,
            channels_last=s.channels_last,
            show_progress=s.progress_bar and max_batches is None,
            desc="val",
            flip=s.tta_flip,
            max_batches=max_batches,
            progress_every_s=s.progress_every_s if max_batches is None else None,
        )
        return meter.compute()

    def _validate_epoch(self, epoch: int, final: bool) -> SplitMetrics | None:
        """The epoch's validation, when one is due (every val_every_n_epochs, and the last); hooks get its time."""
        if not final and (epoch + 1) % self.s.val_every_n_epochs != 0:
            return None
        t_val = self.clock()
        n = self.val_loader_for(final).num_samples
        log.info("epoch %d/%d: validating on %s images", epoch + 1, self.s.epochs, f"{n:,}")
        val = self.validate(final)
        self._emit("on_validation", final, self.clock() - t_val)
        return val

    # ---------------------------------------------------------------- the loop
    def unfinished(self) -> bool:
        """An epoch is still to train or to validate. A run stopped on the last step of an epoch has trained it
        (`samples_into_epoch` > 0, even at the run's last step) but not validated or recorded it: a resume does."""
        s = self.state
        return s.epoch < self.s.epochs and (s.global_step < self.total_steps or s.samples_into_epoch > 0)

    def fit(self) -> TrainState:
        self.fit_t0 = self.clock() - self.state.wall_time_s
        self._emit("on_fit_start")
        try:
            with self._signals_stop_after_the_step():
                while self.unfinished():
                    self._run_epoch(self.state.epoch)
                    if self._stop_signal and self.unfinished():  # a signal during validation: stop at the epoch's end
                        self._interrupt()
            self.state.status = "ok"
            return self.state
        except BaseException:
            if self.state.status == "running":
                self.state.status = "failed"
            raise
        finally:
            self.state.wall_time_s = self.clock() - self.fit_t0
            self._emit("on_fit_end")

    def _run_epoch(self, epoch: int) -> None:
        """Train, validate when due, record the row (new best or not), check it is finite, then the epoch's hooks."""
        t0 = self.clock()
        train_loss, train_acc = self.train_epoch(epoch)
        final = epoch + 1 >= self.s.epochs or self.state.global_step >= self.total_steps
        val = self._validate_epoch(epoch, final)
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
        self.state.wall_time_s = self.clock() - self.fit_t0
        self._log_epoch(row, improved)
        if not row.finite():
            self.state.status = "diverged"
            raise DivergedError(
                row.epoch, self.state.global_step, row.val_loss if row.val_loss is not None else math.nan
            )
        self._emit("on_epoch_end", row)

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
