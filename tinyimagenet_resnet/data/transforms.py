"""The reference (per-image, torchvision) preprocessing and train-only augmentation."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from .dataset import IMAGE_SIZE  # crops are resized back to it


def eval_transform(data_cfg) -> v2.Compose:
    return v2.Compose(
        [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(data_cfg.mean), list(data_cfg.std))]
    )


def train_transform(data_cfg) -> v2.Compose:
    """RandomResizedCrop -> horizontal flip -> ColorJitter, each switchable, then the eval preprocessing."""
    aug = data_cfg.augment
    ops = []
    if aug.enabled:
        crop = aug.random_resized_crop
        if crop.enabled:
            ops.append(
                v2.RandomResizedCrop(IMAGE_SIZE, scale=tuple(crop.scale), ratio=tuple(crop.ratio), antialias=True)
            )
        if aug.hflip > 0:
            ops.append(v2.RandomHorizontalFlip(p=float(aug.hflip)))
        jit = aug.color_jitter
        if jit.enabled:
            ops.append(
                v2.ColorJitter(brightness=jit.brightness, contrast=jit.contrast, saturation=jit.saturation, hue=jit.hue)
            )
    return v2.Compose(ops + list(eval_transform(data_cfg).transforms))
