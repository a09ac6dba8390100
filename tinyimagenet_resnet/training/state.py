"""Where training stands: `TrainState`, stored in every checkpoint and restored on resume, and `EpochSums`, the
running train loss and accuracy of the epoch in progress (kept on the device: no host sync a step)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..artifacts.records import Best, EpochRow, progress_from_json, progress_to_json


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


class EpochSums:
    """The train loss and correct predictions summed over the epoch so far, and the first global step whose loss
    was not finite (-1: none), all on the device; a resumed epoch starts from the sums its checkpoint holds."""

    def __init__(self, state: TrainState, device: torch.device):
        self.loss_sum = torch.full((), state.epoch_loss_sum, dtype=torch.float64, device=device)
        self.correct = torch.full((), state.epoch_correct, dtype=torch.long, device=device)
        self.seen = state.samples_into_epoch
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, step: int) -> None:
        """The batch of global step `step` (0-based), trained with this loss and these logits."""
        loss = loss.detach()
        bad = (self.first_bad < 0) & ~torch.isfinite(loss)
        self.first_bad = torch.where(bad, torch.full_like(self.first_bad, step), self.first_bad)
        self.loss_sum += loss.double() * y.numel()
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.seen += y.numel()

    def save_to(self, state: TrainState) -> None:
        """Into the state, for a checkpoint written mid-epoch."""
        state.epoch_loss_sum, state.epoch_correct = float(self.loss_sum), int(self.correct)

    def means(self) -> tuple[float, float]:
        """(mean train loss, train accuracy) of the epoch."""
        n = max(self.seen, 1)
        return float(self.loss_sum) / n, float(self.correct) / n
