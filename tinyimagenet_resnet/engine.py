"""The training engine: epochs of optimisation and evaluation, checkpoints, TensorBoard, metrics.json, signals."""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoint import atomic_save
from .data.datamodule import set_train_epoch
from .errors import DivergedError
from .metrics import ClassificationMeter
from .runtime import autocast, get_rng_state, set_rng_state

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """Raised after SIGINT/SIGTERM once `last.ckpt` is written."""

    def __init__(self, signame: str, ckpt: Path):
        self.signame, self.ckpt = signame, ckpt
        super().__init__(f"{signame} received: wrote {ckpt}")


@dataclass
class TrainState:
    epoch: int = 0  # completed epochs
    global_step: int = 0
    samples_into_epoch: int = 0  # >0 only in a checkpoint written by an interrupt mid-epoch
    best: dict = field(default_factory=lambda: {"epoch": None, "val/accuracy": -1.0})
    history: list = field(default_factory=list)
    initial_loss: float | None = None
    status: str = "running"
    wall_time_s: float = 0.0


def to_device(batch, device: torch.device, channels_last: bool):
    x, y = batch
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def use_progress_bar(setting) -> bool:
    if setting == "auto":
        return sys.stderr.isatty()
    return bool(setting)


def progress(iterable, enabled: bool, **kw):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, leave=False, dynamic_ncols=True, **kw)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device, num_classes: int, amp_dtype=None, channels_last=True,
             show_progress=False, desc="eval") -> ClassificationMeter:
    """One pass over `loader` in eval mode; returns the filled meter (metrics, confusion matrix)."""
    was_training = model.training
    model.eval()
    meter = ClassificationMeter(num_classes, device)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    for batch in progress(loader, show_progress, desc=desc):
        x, y = to_device(batch, device, channels_last)
        with autocast(device, amp_dtype):
            logits = model(x)
        logits = logits.float()
        meter.update(logits, y, loss_fn(logits, y))
    model.train(was_training)
    return meter


class Trainer:
    def __init__(self, cfg, model, optimizer, scheduler, sched_interval, train_loader, val_loader, device,
                 run_dir: Path, tb, num_classes: int, amp_dtype=None, channels_last=False, epoch_callbacks=()):
        self.cfg, self.model, self.optimizer = cfg, model, optimizer
        self.scheduler, self.sched_interval = scheduler, sched_interval
        self.train_loader, self.val_loader = train_loader, val_loader
        self.device, self.run_dir, self.tb = device, Path(run_dir), tb
        self.num_classes, self.amp_dtype = num_classes, amp_dtype
        self.channels_last = channels_last
        self.show_progress = use_progress_bar(cfg.trainer.progress_bar)
        self.epoch_callbacks = list(epoch_callbacks)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=float(cfg.trainer.get("label_smoothing", 0.0)))
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        self.forward = torch.compile(model) if cfg.trainer.get("compile") else model
        self.state = TrainState()
        self.ckpt_extra: dict = {}  # e.g. the split fingerprints, stored in every checkpoint
        self.ckpt_dir = self.run_dir / "checkpoints"
        self._stop_signal: str | None = None

    # ---------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict:
        from omegaconf import OmegaConf

        return {
            "version": 1,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.state.epoch,
            "state": asdict(self.state),
            "metrics": self.state.history[-1] if self.state.history else {},
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "rng": get_rng_state(),
            **self.ckpt_extra,
        }

    def save(self, name: str) -> Path:
        path = self.ckpt_dir / name
        atomic_save(self.checkpoint(), path)
        return path

    def restore(self, ckpt: dict) -> None:
        """Continue exactly where `ckpt` stopped: weights, optimizer, epoch, best, history, RNG, TB step."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler"):
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = TrainState(**ckpt["state"])
        self.state.status = "running"
        set_rng_state(ckpt["rng"])
        log.info("Resumed at epoch %d (global step %d, best val top-1 %.4f)",
                 self.state.epoch, self.state.global_step, self.state.best["val/accuracy"])

    # ---------------------------------------------------------------- metrics.json
    def write_metrics(self, extra: dict | None = None) -> None:
        s = self.state
        data = {
            "status": s.status,
            "epochs_run": s.epoch,
            "best": s.best,
            "final": s.history[-1] if s.history else {},
            "initial_loss": s.initial_loss,
            "ln_num_classes": math.log(self.num_classes),
            "wall_time_s": round(s.wall_time_s, 3),
            "history": s.history,
        }
        data.update(extra or {})
        path = self.run_dir / "metrics.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)

    # ---------------------------------------------------------------- signals
    def _on_signal(self, signum, frame):  # noqa: ARG002
        if self._stop_signal is None:
            self._stop_signal = signal.Signals(signum).name
            log.warning("%s received: finishing the current step, then writing last.ckpt", self._stop_signal)

    def _install_signal_handlers(self):
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not in the main thread (e.g. some launchers): leave handlers as they are
                pass
        return previous

    # ---------------------------------------------------------------- loop
    def train_epoch(self, epoch: int) -> dict:
        self.model.train()
        loader = self.train_loader
        set_train_epoch(loader, int(self.cfg.seed), epoch, self.state.samples_into_epoch)
        limit = self.cfg.trainer.get("limit_train_batches")
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        log_every = int(self.cfg.trainer.log_every_n_steps)
        bar = progress(loader, self.show_progress, desc=f"epoch {epoch + 1}/{self.cfg.trainer.epochs}")
        for i, batch in enumerate(bar):
            if limit is not None and i >= int(limit):
                break
            x, y = to_device(batch, self.device, self.channels_last)
            with autocast(self.device, self.amp_dtype):
                logits = self.forward(x)
                loss = self.loss_fn(logits.float(), y)
            if self.state.initial_loss is None:
                self.state.initial_loss = float(loss.detach())
                self.tb.scalars({"sanity/initial_loss": self.state.initial_loss}, 0)
                log.info("Initial loss %.4f (ln %d = %.4f)", self.state.initial_loss, self.num_classes,
                         math.log(self.num_classes))
            # Record the first non-finite step on the device; checked without a per-step host sync.
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()),
                                    torch.full_like(first_bad, self.state.global_step), first_bad)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.sched_interval == "step":
                self.scheduler.step()
            self.state.global_step += 1
            loss_sum += loss.detach().double() * y.numel()
            correct += (logits.detach().argmax(1) == y).sum()
            seen += y.numel()
            self.state.samples_into_epoch += y.numel()
            if self.state.global_step % log_every == 0 or self._stop_signal:
                self._check_finite(first_bad, epoch)
                current = float(loss.detach())
                self.tb.scalars({"train/loss_step": current}, self.state.global_step)
                if self.show_progress:
                    bar.set_postfix(loss=f"{current:.3f}")
            if self._stop_signal:
                self._check_finite(first_bad, epoch)
                path = self.save("last.ckpt")
                self.state.status = "interrupted"
                self.write_metrics()
                raise Interrupted(self._stop_signal, path)
        self._check_finite(first_bad, epoch)
        self.state.samples_into_epoch = 0
        if self.sched_interval == "epoch":
            self.scheduler.step()
        n = max(seen, 1)
        return {"train/loss": float(loss_sum) / n, "train/accuracy": float(correct) / n}

    def _check_finite(self, first_bad: torch.Tensor, epoch: int) -> None:
        bad_step = int(first_bad)
        if bad_step >= 0:
            self.state.status = "diverged"
            self.write_metrics()
            raise DivergedError(epoch + 1, bad_step, float("nan"))

    def validate(self) -> dict:
        meter = evaluate(self.forward, self.val_loader, self.device, self.num_classes, self.amp_dtype,
                         self.channels_last, self.show_progress, desc="val")
        m = meter.compute()
        return {"val/loss": m["loss"], "val/accuracy": m["accuracy"], "val/top5": m["top5"],
                "val/f1_macro": m["f1_macro"]}

    def fit(self) -> TrainState:
        epochs = int(self.cfg.trainer.epochs)
        previous = self._install_signal_handlers()
        t_start = time.perf_counter() - self.state.wall_time_s
        try:
            while self.state.epoch < epochs:
                epoch = self.state.epoch
                t0 = time.perf_counter()
                train_m = self.train_epoch(epoch)
                every = int(self.cfg.trainer.get("val_every_n_epochs") or 1)
                validated = (epoch + 1) % every == 0 or epoch + 1 == epochs
                val_m = self.validate() if validated else {}
                lr = self.optimizer.param_groups[0]["lr"]
                row = {"epoch": epoch + 1, **train_m, **val_m, "lr": lr, "epoch_time_s": time.perf_counter() - t0}
                self.state.epoch += 1
                self.state.history.append(row)
                self.state.wall_time_s = time.perf_counter() - t_start
                self.tb.scalars({k: v for k, v in row.items() if "/" in k or k == "lr"}, epoch + 1)
                self.tb.flush()
                improved = validated and val_m["val/accuracy"] > self.state.best["val/accuracy"]
                if improved:
                    self.state.best = {"epoch": epoch + 1, **val_m}
                val_text = (f"val loss {val_m['val/loss']:.4f} top1 {val_m['val/accuracy']:.4f} "
                            f"top5 {val_m['val/top5']:.4f} f1 {val_m['val/f1_macro']:.4f}" if validated else "val -")
                log.info("epoch %d/%d  train loss %.4f acc %.4f | %s | lr %.3g | %.1fs%s", epoch + 1, epochs,
                         train_m["train/loss"], train_m["train/accuracy"], val_text, lr, row["epoch_time_s"],
                         "  *best*" if improved else "")
                if not math.isfinite(train_m["train/loss"]) or not all(math.isfinite(v) for v in val_m.values()):
                    self.state.status = "diverged"
                    self.write_metrics()
                    raise DivergedError(epoch + 1, self.state.global_step, val_m.get("val/loss", float("nan")))
                if improved:
                    self.save("best.ckpt")
                self.save("last.ckpt")
                self.write_metrics()
                for callback in self.epoch_callbacks:
                    callback(self, row)
            self.state.status = "ok"
            self.write_metrics()
            return self.state
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
