"""One pass of a model over a loader in eval mode: the filled ClassificationMeter (metrics, confusion matrix), with
optional test-time augmentation (the mirror image) and progress."""

from __future__ import annotations

import torch
from torch import nn

from ..progress import Progress
from .batch import to_device
from .metrics import ClassificationMeter
from .runtime import autocast


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    *,
    device: torch.device,
    num_classes: int,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = True,
    show_progress: bool = False,
    desc: str = "eval",
    flip: bool = False,
    max_batches: int | None = None,
    progress_every_s: float | None = None,
) -> ClassificationMeter:
    """One pass over `loader` in eval mode; returns the filled meter (metrics, confusion matrix). `flip` averages
    the logits of each image and its mirror image (test-time augmentation). Progress: a bar (`show_progress`), or
    a line every `progress_every_s` seconds (None: none)."""
    was_training = model.training
    model.eval()
    meter = ClassificationMeter(num_classes, device)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    n = len(loader) if max_batches is None else min(len(loader), max_batches)
    watch = None
    if show_progress or progress_every_s is not None:
        watch = Progress(desc, n, bar=show_progress, every_s=progress_every_s or 30.0, unit="batch",
                         images_per_unit=getattr(loader, "batch_size", None))  # fmt: skip
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        if watch is not None and i:
            watch.update(1)
        x, y = to_device(batch, device, channels_last)
        with autocast(device, amp_dtype):
            logits = _logits(model, x, flip, channels_last)
        meter.update(logits, y, loss_fn(logits, y))
    if watch is not None:
        watch.close()
    model.train(was_training)
    return meter


def _logits(model: nn.Module, x: torch.Tensor, flip: bool, channels_last: bool) -> torch.Tensor:
    """The model's logits in float32; with `flip`, averaged with those of the mirror images."""
    logits = model(x).float()
    if not flip:
        return logits
    mirrored = x.flip(3)
    if channels_last:
        mirrored = mirrored.contiguous(memory_format=torch.channels_last)
    return (logits + model(mirrored).float()) / 2
