"""A torch Dataset over one split of the raw HF dataset, decoding JPEG bytes with PIL."""

from __future__ import annotations

import io
import logging

import torch
from PIL import Image

from ..errors import DataError
from .splits import Split

log = logging.getLogger(__name__)
IMAGE_SIZE = 64  # Tiny ImageNet's images: every pipeline, validation and test work at this size
_resized: set[str] = set()  # the splits whose first resized image was logged (one warning per split)


def decode_image(cell: dict, split: str, index: int) -> Image.Image:
    """Decode one `image` cell ({bytes, path}) to a 64x64 RGB image: grayscale (mode L) and other modes are
    converted; an image of another size is resized (bilinear), with one warning per split, so that a stray image
    does not stop a run after an epoch (README "Data")."""
    try:
        data = cell.get("bytes") if isinstance(cell, dict) else None
        img = Image.open(io.BytesIO(data)) if data is not None else Image.open(cell["path"])
        img.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a corrupt image
        raise DataError(f"corrupt image in split {split!r} at index {index}: {type(exc).__name__}: {exc}") from None
    if img.mode != "RGB":
        img = img.convert("RGB")
    if img.size != (IMAGE_SIZE, IMAGE_SIZE):
        if split not in _resized:
            _resized.add(split)
            log.warning(
                "split %r, index %d: a %dx%d image, resized to %dx%d (any other image of another size in this split "
                "is resized too)",
                split,
                index,
                *img.size,
                IMAGE_SIZE,
                IMAGE_SIZE,
            )
        img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    return img


class ImageSplitDataset(torch.utils.data.Dataset):
    """Items are (transformed image, label) for the rows of `split.indices` in the raw HF split."""

    def __init__(self, raw_split, split: Split, transform):
        import datasets  # lazy: seconds of import, paid only where the raw data is read

        self.table = raw_split.cast_column("image", datasets.Image(decode=False)).select_columns(["image"])
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split)

    def raw_image(self, i: int) -> Image.Image:
        j = int(self.split.indices[i])
        return decode_image(self.table[j]["image"], self.split.source_split, j)

    def __getitem__(self, i: int):
        return self.transform(self.raw_image(i)), int(self.split.labels[i])
