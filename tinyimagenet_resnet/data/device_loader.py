"""The fast input pipeline: decoded uint8 images held on the training device (GPU when they fit), shuffled by
index permutation, batches taken as index slices and augmented per sample in batch (airbench style)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .batch_augment import BatchAugment
from .sampler import AUGMENT_STREAM, EpochOrder, epoch_seed


class DeviceLoader:
    """Batches (x, y) already on `device`: x float (B, 3, 64, 64) normalized, y int64.

    `epoch(e, skip)` yields the batches of epoch e from batch `skip` on. Order and augmentation draws are functions
    of (seed, position) only (sampler.EpochOrder; one generator seeded per batch), so a run resumed at any step sees
    exactly the batches it would have seen."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        device: torch.device,
        seed: int,
        mean,
        std,
        augment_cfg=None,
        shuffle: bool = True,
        resident: bool = True,
    ):
        self.device, self.seed = device, seed
        storage = device if resident else torch.device("cpu")
        self.x = torch.from_numpy(np.array(images)).to(storage)  # read the memmap into memory once
        if not resident and device.type == "cuda":
            self.x = self.x.pin_memory()
        self.y = torch.tensor(np.asarray(labels), dtype=torch.long).to(storage)  # a copy: arrow arrays are read-only
        self.batch_size = batch_size
        self.order = EpochOrder(len(self.y), batch_size, seed, shuffle)
        self.augment = BatchAugment(augment_cfg) if augment_cfg is not None and augment_cfg.enabled else None
        self.mean = torch.tensor(list(mean), device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(list(std), device=device).view(1, 3, 1, 1)

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.order.batches_per_epoch()

    @property
    def num_samples(self) -> int:
        return len(self.y)

    def set_steps_per_epoch(self, steps: int | None) -> None:
        """Epochs of `steps` batches cut from a continuous stream of passes (budgeted runs); None: one pass each."""
        self.order.steps_per_epoch = steps

    def batch(self, idx: torch.Tensor, global_batch: int):
        xb = self.x[idx].to(self.device, non_blocking=True)
        yb = self.y[idx].to(self.device, non_blocking=True)
        x = xb.permute(0, 3, 1, 2).float().div_(255.0)
        if self.augment is not None:
            g = torch.Generator(device=self.device)
            g.manual_seed(epoch_seed(self.seed, global_batch, AUGMENT_STREAM))
            x = self.augment(x, g)
        return (x - self.mean) / self.std, yb

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        first = self.order.first_batch(epoch) + skip
        for k, idx in enumerate(self.order.epoch_indices(epoch, skip)):
            yield self.batch(idx.to(self.x.device), first + k)

    def __iter__(self):
        return self.epoch(0)
