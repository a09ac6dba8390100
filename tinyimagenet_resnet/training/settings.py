"""What the engine needs from the config, built once by the task: the Trainer reads no config node itself."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..data.dataset import IMAGE_SIZE


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    seed: int
    num_classes: int
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype; None = fp32
    channels_last: bool
    compile: bool
    label_smoothing: float
    log_every_n_steps: int
    val_every_n_epochs: int
    limit_train_batches: int | None
    progress_bar: bool
    started_at: float  # epoch seconds: when the command (or the sweep job) started; rows record time since then
    train_sizes: tuple[int, ...] = (IMAGE_SIZE,)  # progressive resizing: the train resolutions, in order...
    train_size_fractions: tuple[float, ...] = (1.0,)  # ...and the share of the optimiser steps spent at each
    ema_decay: float | None = None
    tta_flip: bool = False
    total_steps: int | None = None  # a budget plan's step count (None: epochs x batches per epoch)...
    steps_per_epoch: int | None = None  # ...and the steps of each of its epochs (None: the batches of an epoch)
    loss_scale: float = 65536.0  # fp16: the loss scaler's first scale
    progress_every_s: float = 30.0  # without a progress bar: a progress line every this many seconds of work

    @classmethod
    def from_config(
        cls,
        cfg,
        device: torch.device,
        amp_dtype,
        channels_last: bool,
        num_classes: int,
        progress_bar: bool,
        started_at: float,
        compile: bool = False,
    ) -> TrainSettings:
        """`compile` is trainer.compile resolved for the device (tasks/common.run_context)."""
        t = cfg.trainer
        return cls(
            epochs=int(t.epochs),
            seed=int(cfg.seed),
            num_classes=num_classes,
            device=device,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
            compile=compile,
            label_smoothing=float(t.label_smoothing),
            log_every_n_steps=int(t.log_every_n_steps),
            val_every_n_epochs=int(t.val_every_n_epochs),
            limit_train_batches=t.limit_train_batches,
            progress_bar=progress_bar,
            started_at=started_at,
            train_sizes=tuple(int(v) for v in t.train_sizes),
            train_size_fractions=tuple(float(v) for v in t.train_size_fractions),
            ema_decay=t.ema_decay,
            tta_flip=bool(t.tta_flip),
            loss_scale=float(t.loss_scale),
            progress_every_s=float(t.progress_every_s),
        )

    def replace(self, **changes) -> TrainSettings:
        return dataclasses.replace(self, **changes)
