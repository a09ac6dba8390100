"""The fast input pipeline: decoded uint8 images held on the training device (GPU when they fit), shuffled by
index permutation, batches taken as index slices and augmented per sample in batch (airbench style)."""

from __future__ import annotations

import math

import numpy as np
import torch

from .batch_augment import BatchAugment
from .sampler import EpochSampler


class DeviceLoader:
    """Iterates (x, y) batches already on `device`: x float (B, 3, 64, 64) normalized, y int64.

    Has the attributes the engine uses on a DataLoader: `sampler` (EpochSampler: set_epoch) and `generator`
    (the augmentation RNG, reseeded per epoch), so resume stays exact."""

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
        self.device = device
        storage = device if resident else torch.device("cpu")
        self.x = torch.from_numpy(np.array(images)).to(storage)  # read the memmap into memory once
        if not resident and device.type == "cuda":
            self.x = self.x.pin_memory()
        self.y = torch.tensor(np.asarray(labels), dtype=torch.long).to(storage)  # a copy: arrow arrays are read-only
        self.batch_size = batch_size
        self.sampler = EpochSampler(len(self.y), seed, shuffle)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.augment = BatchAugment(augment_cfg) if augment_cfg is not None and augment_cfg.enabled else None
        self.mean = torch.tensor(list(mean), device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(list(std), device=device).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def batch(self, idx: torch.Tensor):
        xb = self.x[idx].to(self.device, non_blocking=True)
        yb = self.y[idx].to(self.device, non_blocking=True)
        x = xb.permute(0, 3, 1, 2).float().div_(255.0)
        if self.augment is not None:
            x = self.augment(x, self.generator)
        return (x - self.mean) / self.std, yb

    def __iter__(self):
        order = self.sampler.order()[self.sampler.start :].to(self.x.device)
        for k in range(0, len(order), self.batch_size):
            yield self.batch(order[k : k + self.batch_size])
