"""Optimizers and (optional) LR schedulers from the `optim` and `scheduler` config nodes."""

from __future__ import annotations

import torch

from .errors import ConfigError

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("none", "cosine", "onecycle")


def build_optimizer(optim_cfg, params) -> torch.optim.Optimizer:
    name = optim_cfg.name
    lr, wd = float(optim_cfg.lr), float(optim_cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, betas=tuple(optim_cfg.betas))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, betas=tuple(optim_cfg.betas))
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, weight_decay=wd, momentum=float(optim_cfg.momentum), nesterov=bool(optim_cfg.nesterov)
        )
    raise ConfigError(f"optim.name={name!r}: allowed {list(OPTIMIZERS)}")


def build_scheduler(sched_cfg, optimizer, epochs: int, steps_per_epoch: int):
    """Returns (scheduler, interval) with interval 'step' or 'epoch'; (None, None) when off (the course default)."""
    name = sched_cfg.name
    if name == "none":
        return None, None
    if name == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs * steps_per_epoch, eta_min=float(sched_cfg.get("eta_min", 0.0))
        )
        return sched, "step"
    if name == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=max_lr,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            pct_start=float(sched_cfg.get("pct_start", 0.25)),
        )
        return sched, "step"
    raise ConfigError(f"scheduler.name={name!r}: allowed {list(SCHEDULERS)}")
