"""A batch on its way into the model: moved to the device (channels_last when asked) and, for progressive resizing,
resized to the train size of the step."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_device(batch, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) on `device`, copied without blocking; x in channels_last memory format when asked."""
    x, y = batch
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def resize(x: torch.Tensor, size: int, channels_last: bool) -> torch.Tensor:
    """A batch at `size`x`size` (antialiased bilinear), for progressive resizing; unchanged at its own size."""
    if x.shape[-1] == size:
        return x
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
