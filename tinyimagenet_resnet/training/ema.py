"""An exponential moving average of the weights (and BatchNorm statistics), evaluated instead of the raw weights.

The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so the average follows the fast early
changes of a short run instead of remembering the random initialisation."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, cur in zip(self.model.state_dict().values(), model.state_dict().values(), strict=True):
            if avg.is_floating_point():
                avg.lerp_(cur, 1.0 - d)
            else:  # BatchNorm's num_batches_tracked
                avg.copy_(cur)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
