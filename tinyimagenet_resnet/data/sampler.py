"""The order in which training sees the data, as a pure function of (seed, position): any batch of any epoch can be
recomputed, so a run resumes at any step with the same batches and the same augmentation draws.

Two shapes of "epoch" (one row of metrics, one validation, one checkpoint):
- a data epoch (`steps_per_epoch=None`): one pass over a fresh permutation, the last batch possibly partial;
- a fixed number of steps (`steps_per_epoch=S`, budgeted runs): epochs cut a continuous stream made of permutation
  after permutation, so a batch may span two passes and an epoch may be a fraction of a pass or several passes."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

# Offsets of the RNG streams derived from (seed, index): the sample order and the augmentation draws.
ORDER_STREAM = 0
AUGMENT_STREAM = 7


def epoch_seed(seed: int, index: int, stream: int = ORDER_STREAM) -> int:
    """The seed of one RNG stream at `index` (a data pass for ORDER_STREAM, a global batch for AUGMENT_STREAM)."""
    return seed * 1_000_003 + index + stream


class EpochOrder:
    """Sample indices per epoch and batch, for `n` samples in batches of `batch_size`."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True, steps_per_epoch: int | None = None):
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.steps_per_epoch = steps_per_epoch
        self._perms: dict[int, torch.Tensor] = {}

    def permutation(self, data_pass: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        if data_pass not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            g = torch.Generator().manual_seed(epoch_seed(self.seed, data_pass, ORDER_STREAM))
            self._perms[data_pass] = torch.randperm(self.n, generator=g)
        return self._perms[data_pass]

    def batches_per_epoch(self) -> int:
        return self.steps_per_epoch or math.ceil(self.n / self.batch_size)

    def first_batch(self, epoch: int) -> int:
        """The global index of the epoch's first batch (seeds its augmentation draws)."""
        return epoch * self.batches_per_epoch()

    def epoch_indices(self, epoch: int, skip_batches: int = 0) -> Iterator[torch.Tensor]:
        """The index tensor of each batch of `epoch`, from batch `skip_batches` on. With steps_per_epoch, the stream
        goes on past the epoch's planned end without a limit: the trainer stops taking batches where the epoch
        ends, which a re-planned time budget may move (the last epoch then runs longer or shorter)."""
        b = self.batch_size
        if self.steps_per_epoch is None:  # one data pass
            order = self.permutation(epoch)
            return iter([order[k : k + b] for k in range(skip_batches * b, self.n, b)])
        return self.stream(epoch * self.steps_per_epoch + skip_batches)

    def stream(self, first_batch: int, chunk: int = 32) -> Iterator[torch.Tensor]:
        """Index batches of the continuous stream (pass after pass) from global batch `first_batch` on."""
        b = self.batch_size
        start = first_batch
        while True:
            positions = torch.arange(start * b, (start + chunk) * b)
            passes, offsets = positions // self.n, positions % self.n
            flat = torch.empty_like(positions)
            for p in passes.unique().tolist():
                sel = passes == p
                flat[sel] = self.permutation(p)[offsets[sel]]
            yield from flat.split(b)
            start += chunk
