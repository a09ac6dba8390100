"""The optimizer and the LR schedule from the `optim` and `scheduler` config nodes: a table from the optimizer
config's NAME to its torch class and its own arguments, and a per-step scheduler over a closed-form schedule
(training/schedules.py)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig

from ..compat import set_scheduler_last_lr
from .schedules import node_name, schedule_of


def _betas(cfg: DictConfig) -> dict:
    return {"betas": tuple(cfg.betas)}


def _momentum(cfg: DictConfig) -> dict:
    return {"momentum": cfg.momentum, "nesterov": cfg.nesterov}


# optim NAME -> (torch class, its arguments beyond lr and weight_decay)
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], Callable[[DictConfig], dict]]] = {
    "adamw": (torch.optim.AdamW, _betas),  # decoupled weight decay
    "adam": (torch.optim.Adam, _betas),  # L2 weight decay added to the gradient
    "sgd": (torch.optim.SGD, _momentum),
}


def build_optimizer(optim_cfg: DictConfig, params) -> torch.optim.Optimizer:
    cls, extra = OPTIMIZERS[node_name(optim_cfg)]
    return cls(params, lr=optim_cfg.lr, weight_decay=optim_cfg.weight_decay, **extra(optim_cfg))


def build_scheduler(sched_cfg: DictConfig, optimizer: torch.optim.Optimizer, total_steps: int):
    """A per-step LR scheduler over `total_steps` optimiser steps, or None (`scheduler=none`, the course default)."""
    lr_at = schedule_of(sched_cfg)
    return PlannedLR(optimizer, lr_at, total_steps) if lr_at is not None else None


class PlannedLR(torch.optim.lr_scheduler.LRScheduler):
    """The LR of each optimiser step from a closed form `lr_at(base_lr, step, total_steps)` (training/schedules.py).
    `total_steps` may change while the run goes on (`set_total_steps`: a time budget re-planned), and a resumed run
    jumps to its step (`jump_to`) instead of replaying the schedule."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr_at, total_steps: int):
        self.lr_at, self.total_steps = lr_at, int(total_steps)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [self.lr_at(base, self.last_epoch, self.total_steps) for base in self.base_lrs]

    def _apply(self) -> None:
        lrs = [self.lr_at(base, self.last_epoch, self.total_steps) for base in self.base_lrs]
        set_scheduler_last_lr(self, lrs)
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr

    def set_total_steps(self, total_steps: int) -> None:
        """A new length for the run: the LR of the current step follows the new schedule at once."""
        self.total_steps = int(total_steps)
        self._apply()

    def jump_to(self, step: int) -> None:
        """The LR of optimiser step `step` (a resumed run), with no replay."""
        self.last_epoch = int(step)
        self._apply()

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "total_steps": self.total_steps, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.total_steps = int(state_dict["total_steps"])
        self.jump_to(state_dict["last_epoch"])
