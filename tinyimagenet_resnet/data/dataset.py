"""A torch Dataset over one split of the raw HF dataset, decoding JPEG bytes with PIL."""

from __future__ import annotations

import io

import torch
from PIL import Image

from ..errors import DataError
from .splits import Split


def decode_image(cell: dict, split: str, index: int) -> Image.Image:
    """Decode one `image` cell ({bytes, path}) to RGB; grayscale (mode L) and others are converted."""
    try:
        data = cell.get("bytes") if isinstance(cell, dict) else None
        img = Image.open(io.BytesIO(data)) if data is not None else Image.open(cell["path"])
        img.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a corrupt image
        raise DataError(f"corrupt image in split {split!r} at index {index}: {type(exc).__name__}: {exc}") from None
    return img if img.mode == "RGB" else img.convert("RGB")


class ImageSplitDataset(torch.utils.data.Dataset):
    """Items are (transformed image, label) for the rows of `split.indices` in the raw HF split."""

    def __init__(self, raw_split, split: Split, transform):
        import datasets

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
