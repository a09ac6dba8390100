"""A resumable epoch sampler: the order of epoch e depends only on (seed, e), and it can start mid-epoch."""

from __future__ import annotations

import torch

# Offsets of the per-epoch RNG streams derived from (seed, epoch): the sample order and the augmentation.
ORDER_STREAM = 0
AUGMENT_STREAM = 7


def epoch_seed(seed: int, epoch: int, stream: int = ORDER_STREAM) -> int:
    """The seed of one RNG stream of epoch `epoch`: depends only on (seed, epoch), so any epoch can be replayed."""
    return seed * 1_000_003 + epoch + stream


class EpochSampler(torch.utils.data.Sampler):
    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """`start` = number of samples of this epoch already consumed (resume after an interrupt)."""
        self.epoch, self.start = epoch, start

    def order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch, ORDER_STREAM))
        return torch.randperm(self.n, generator=g)

    def __iter__(self):
        return iter(self.order()[self.start :].tolist())

    def __len__(self) -> int:
        return self.n - self.start
