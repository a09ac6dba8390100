"""Decode a split once into a uint8 (N, 64, 64, 3) RGB array stored as a memory-mapped file, reused by every
later run and every job of a sweep. Keyed by the dataset fingerprint and the split indices; built under a file
lock and renamed into place, so concurrent jobs never see a torn file nor build it twice."""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import compat
from ..artifacts.files import atomic_path, file_lock, read_json, write_json
from ..config.paths import default_cache_dir
from ..progress import Progress
from .dataset import IMAGE_SIZE as SIZE
from .dataset import decode_image
from .splits import Split

log = logging.getLogger(__name__)


def cache_key(raw_fingerprint: str, split: Split) -> str:
    h = hashlib.sha256()
    h.update(raw_fingerprint.encode())
    h.update(split.fingerprint().encode())
    return f"{split.source_split}-{len(split)}-{h.hexdigest()[:20]}"


def _decode_into(out: np.ndarray, table, split: Split, start: int, stop: int) -> None:
    for i in range(start, stop):
        j = int(split.indices[i])
        out[i] = np.asarray(decode_image(table[j]["image"], split.source_split, j), dtype=np.uint8)


def build(path: Path, raw_split, split: Split, threads: int) -> None:
    import datasets  # lazy: seconds of import, paid only where the raw data is read

    table = raw_split.cast_column("image", datasets.Image(decode=False)).select_columns(["image"])
    with atomic_path(path) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(split), SIZE, SIZE, 3))
        chunk = 2048
        bounds = [(s, min(s + chunk, len(split))) for s in range(0, len(split), chunk)]
        decode_chunk = functools.partial(_decode_into, arr, table, split)
        watch = Progress(f"decoding {split.name}", len(split), bar=False, unit="image", images_per_unit=1)
        lock = threading.Lock()

        def work(b):
            decode_chunk(*b)
            with lock:  # a line every 30 s of decoding (100k images take about a minute on 2 cores)
                watch.update(b[1] - b[0])

        with ThreadPoolExecutor(max(1, threads)) as pool:  # PIL's JPEG decoder releases the GIL
            list(pool.map(work, bounds))
        arr.flush()
        del arr


def _sample_positions(n: int, k: int = 16) -> list[int]:
    """Up to k positions spread over the array, first and last included: what the checksum covers."""
    return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(k)}) if n else []


def _digest(arr: np.ndarray) -> str:
    h = hashlib.sha256()
    for i in _sample_positions(len(arr)):
        h.update(np.ascontiguousarray(arr[i]).tobytes())
    return h.hexdigest()


def _damage(path: Path, meta_path: Path, n: int) -> str | None:
    """Why the cached file cannot be trusted, or None when its shape and checksum are right."""
    meta = read_json(meta_path) if meta_path.is_file() else None
    if not meta or "samples_sha256" not in meta:
        return "no checksum beside it"
    try:
        arr = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        return f"unreadable: {type(exc).__name__}"
    if arr.shape != (n, SIZE, SIZE, 3):
        return f"shape {arr.shape} instead of {(n, SIZE, SIZE, 3)}"
    if _digest(arr) != meta["samples_sha256"]:
        return "its images do not match the checksum written with them"
    return None


def decoded(
    raw_split, split: Split, cache_dir: Path | None, threads: int = 2, identity: str = ""
) -> tuple[np.ndarray, bool]:
    """The split's images as a read-only memmap (N, 64, 64, 3) uint8; returns (array, built_now). A cached file
    that is truncated, garbled or zeroed (its shape or the checksum of sampled images is wrong) is built again.
    `identity` (the source files' digest) is part of the key: datasets' own fingerprint is the same for two
    folders of the same name."""
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    dataset_fingerprint = compat.dataset_fingerprint(raw_split) + identity
    key = cache_key(dataset_fingerprint, split)
    path, meta_path = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    built = False
    if not path.exists() or _damage(path, meta_path, len(split)):
        with file_lock(cache_dir / f"{key}.lock"):  # a second job waits here, then finds the finished file
            damage = _damage(path, meta_path, len(split)) if path.exists() else None
            if damage:
                log.warning("Decoded cache %s cannot be used (%s): decoding the images again", path, damage)
            if not path.exists() or damage:
                log.info("Decoding %d %s images once into %s", len(split), split.name, path)
                build(path, raw_split, split, threads)
                write_json(
                    meta_path,
                    {
                        "split": split.name,
                        "source_split": split.source_split,
                        "n": len(split),
                        "fingerprint": split.fingerprint(),
                        "dataset_fingerprint": dataset_fingerprint,
                        "samples_sha256": _digest(np.load(path, mmap_mode="r")),
                    },
                )
                built = True
    return np.load(path, mmap_mode="r"), built
