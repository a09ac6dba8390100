"""Decode a split once into a uint8 (N, 64, 64, 3) RGB array stored as a memory-mapped file, reused by every
later run and every job of a sweep. Keyed by the dataset fingerprint and the split indices; built under a file
lock and renamed into place, so concurrent jobs never see a torn file nor build it twice."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import compat
from ..artifacts.files import atomic_path, file_lock, write_json
from .dataset import decode_image
from .splits import Split

log = logging.getLogger(__name__)

SIZE = 64


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinyimagenet_resnet"


def cache_key(raw_fingerprint: str, split: Split) -> str:
    h = hashlib.sha256()
    h.update(raw_fingerprint.encode())
    h.update(split.fingerprint().encode())
    return f"{split.source_split}-{len(split)}-{h.hexdigest()[:20]}"


def _decode_into(out: np.ndarray, table, split: Split, start: int, stop: int) -> None:
    for i in range(start, stop):
        j = int(split.indices[i])
        img = decode_image(table[j]["image"], split.source_split, j)
        if img.size != (SIZE, SIZE):
            img = img.resize((SIZE, SIZE))
        out[i] = np.asarray(img, dtype=np.uint8)


def build(path: Path, raw_split, split: Split, threads: int) -> None:
    import datasets

    table = raw_split.cast_column("image", datasets.Image(decode=False)).select_columns(["image"])
    with atomic_path(path) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(split), SIZE, SIZE, 3))
        chunk = 2048
        bounds = [(s, min(s + chunk, len(split))) for s in range(0, len(split), chunk)]
        decode_chunk = functools.partial(_decode_into, arr, table, split)
        with ThreadPoolExecutor(max(1, threads)) as pool:  # PIL's JPEG decoder releases the GIL
            list(pool.map(lambda b: decode_chunk(*b), bounds))
        arr.flush()
        del arr


def decoded(raw_split, split: Split, cache_dir: Path | None, threads: int = 2) -> tuple[np.ndarray, bool]:
    """The split's images as a read-only memmap (N, 64, 64, 3) uint8; returns (array, built_now)."""
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    dataset_fingerprint = compat.dataset_fingerprint(raw_split)
    key = cache_key(dataset_fingerprint, split)
    path = cache_dir / f"{key}.npy"
    built = False
    if not path.exists():
        with file_lock(cache_dir / f"{key}.lock"):  # a second job waits here, then finds the finished file
            if not path.exists():
                log.info("Decoding %d %s images once into %s", len(split), split.name, path)
                build(path, raw_split, split, threads)
                write_json(
                    cache_dir / f"{key}.json",
                    {
                        "split": split.name,
                        "source_split": split.source_split,
                        "n": len(split),
                        "fingerprint": split.fingerprint(),
                        "dataset_fingerprint": dataset_fingerprint,
                    },
                )
                built = True
    arr = np.load(path, mmap_mode="r")
    if arr.shape != (len(split), SIZE, SIZE, 3):
        raise RuntimeError(f"decoded cache {path} has shape {arr.shape}, expected {(len(split), SIZE, SIZE, 3)}")
    return arr, built
