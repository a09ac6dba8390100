"""Decode a split once into a uint8 (N, 64, 64, 3) RGB array stored as a memory-mapped file, reused by every
later run and every job of a sweep. Keyed by the dataset fingerprint and the split indices; built under a file
lock and renamed into place, so concurrent jobs never see a torn file nor build it twice."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

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
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(split), SIZE, SIZE, 3))
    try:
        chunk = 2048
        bounds = [(s, min(s + chunk, len(split))) for s in range(0, len(split), chunk)]
        decode_chunk = functools.partial(_decode_into, arr, table, split)
        with ThreadPoolExecutor(max(1, threads)) as pool:  # PIL's JPEG decoder releases the GIL
            list(pool.map(lambda b: decode_chunk(*b), bounds))
        arr.flush()
        del arr
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def decoded(raw_split, split: Split, cache_dir: Path | None, threads: int = 2) -> tuple[np.ndarray, bool]:
    """The split's images as a read-only memmap (N, 64, 64, 3) uint8; returns (array, built_now)."""
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(raw_split._fingerprint, split)
    path = cache_dir / f"{key}.npy"
    built = False
    if not path.exists():
        with open(cache_dir / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a second job waits here, then finds the finished file
            if not path.exists():
                log.info("Decoding %d %s images once into %s", len(split), split.name, path)
                build(path, raw_split, split, threads)
                (cache_dir / f"{key}.json").write_text(json.dumps(
                    {"split": split.name, "source_split": split.source_split, "n": len(split),
                     "fingerprint": split.fingerprint(), "dataset_fingerprint": raw_split._fingerprint}))
                built = True
    arr = np.load(path, mmap_mode="r")
    if arr.shape != (len(split), SIZE, SIZE, 3):
        raise RuntimeError(f"decoded cache {path} has shape {arr.shape}, expected {(len(split), SIZE, SIZE, 3)}")
    return arr, built
