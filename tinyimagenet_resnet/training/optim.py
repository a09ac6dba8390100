"""The optimizer and the LR schedule from the `optim` and `scheduler` config nodes (each schema dataclass in
config/schema.py builds its own torch object)."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf


def build_optimizer(optim_cfg, params) -> torch.optim.Optimizer:
    return OmegaConf.to_object(optim_cfg).build(params)


def build_scheduler(sched_cfg, optimizer: torch.optim.Optimizer, total_steps: int):
    """A per-step LR scheduler over `total_steps` optimiser steps, or None (`scheduler=none`, the course default)."""
    return OmegaConf.to_object(sched_cfg).build(optimizer, total_steps)
