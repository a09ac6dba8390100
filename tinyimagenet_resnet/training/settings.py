"""What the engine needs from the config, built once by the task: the Trainer reads no config node itself."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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

    @classmethod
    def from_config(
        cls, cfg, device: torch.device, amp_dtype, channels_last: bool, num_classes: int, progress_bar: bool
    ) -> TrainSettings:
        t = cfg.trainer
        return cls(
            epochs=int(t.epochs),
            seed=int(cfg.seed),
            num_classes=num_classes,
            device=device,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
            compile=bool(t.compile),
            label_smoothing=float(t.label_smoothing),
            log_every_n_steps=int(t.log_every_n_steps),
            val_every_n_epochs=int(t.val_every_n_epochs),
            limit_train_batches=t.limit_train_batches,
            progress_bar=progress_bar,
        )
