"""Load the raw Tiny ImageNet `train`/`valid` splits with Hugging Face `datasets`, from the hub or a local folder."""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import numpy as np

from .. import compat
from ..errors import DataError

log = logging.getLogger(__name__)

LOCAL_HINT = (
    "point data.path at a local copy in the zh-plus/tiny-imagenet layout "
    "(README.md + data/train-*.parquet + data/valid-*.parquet), e.g. data.path=../shared/tiny-imagenet"
)


def matching(root: Path, pattern: str) -> list[Path]:
    """Files matching a glob relative to `root`, or an absolute glob."""
    if Path(pattern).is_absolute():
        return sorted(Path(p) for p in glob.glob(pattern))
    return sorted(root.glob(pattern))


def _data_files(root: Path, train_files: str | None, val_files: str | None) -> dict | None:
    """Explicit split globs (relative to data.path, or absolute) when the user restricts the shards; None = the
    dataset's own."""
    if train_files is None and val_files is None:
        return None
    files = {"train": train_files or "data/train-*", "valid": val_files or "data/valid-*"}
    for split, pattern in files.items():
        if not matching(root, pattern):
            key = "data.train_files" if split == "train" else "data.val_files"
            raise DataError(
                f"{key}={pattern!r}: no file under {root} matches; allowed: a glob relative to data.path, or absolute"
            )
    return files


def load_raw(data_cfg):
    """Return a `datasets.DatasetDict` with `train` and `valid` splits (images still encoded)."""
    import datasets

    if data_cfg.path is None:
        name = data_cfg.hub_name
        try:
            raw = datasets.load_dataset(name)
        except Exception as exc:  # noqa: BLE001 - every failure here means "cannot reach the hub dataset"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"data.path=null: could not load the hub dataset {name!r} ({type(exc).__name__}: {reason[:160]}); "
                f"{LOCAL_HINT}"
            ) from exc
        source = f"hub:{name}"
    else:
        root = Path(str(data_cfg.path)).expanduser().resolve()
        if not root.is_dir():
            raise DataError(f"data.path={str(data_cfg.path)!r}: no such folder ({root}); {LOCAL_HINT}")
        if not any(root.glob("data/*.parquet")) and not any(root.glob("*.parquet")):
            raise DataError(f"data.path={str(data_cfg.path)!r}: not a dataset folder (no parquet files); {LOCAL_HINT}")
        data_files = _data_files(root, data_cfg.train_files, data_cfg.val_files)

        def load(**kw):
            if data_files is None:
                return datasets.load_dataset(str(root), **kw)
            return datasets.load_dataset("parquet", data_files={k: str(root / v) for k, v in data_files.items()}, **kw)

        try:
            raw = load()
            if _stale(raw, root, data_files):
                log.warning("datasets' cache of %s does not match its parquet files; rebuilding it", root)
                raw = load(download_mode="force_redownload", verification_mode="no_checks")
        except Exception as exc:  # noqa: BLE001
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"data.path={str(data_cfg.path)!r}: not a readable dataset ({type(exc).__name__}: {reason[:160]}); "
                f"{LOCAL_HINT}"
            ) from exc
        source = str(root)
    check_raw(raw, source, int(data_cfg.num_classes))
    log.info("Loaded %s: train=%d valid=%d", source, len(raw["train"]), len(raw["valid"]))
    return raw, source


def _stale(raw, root: Path, data_files: dict | None) -> bool:
    """datasets keys the cache of a local folder on its name and the files' mtimes, so two folders of the same name
    (a regenerated copy, say) can share a stale cache. Compare row counts with the parquet footers (cheap)."""
    import pyarrow.parquet as pq

    for split, pattern in (data_files or {"train": "data/train-*", "valid": "data/valid-*"}).items():
        files = matching(root, pattern)
        if files and split in raw and len(raw[split]) != sum(pq.read_metadata(f).num_rows for f in files):
            return True
    return False


def labels_of(raw_split) -> np.ndarray:
    """The label column as a numpy array, straight from Arrow (datasets' row formatters take ~10 s on 100k rows)."""
    column = raw_split.data.column("label")
    indices = compat.dataset_indices(raw_split)
    if indices is not None:  # a selected/shuffled view: map through its indices
        column = column.take(indices.column(0))
    return column.to_numpy()


def check_raw(raw, source: str, num_classes: int) -> None:
    """Refuse a dataset without the expected splits/columns or with labels outside 0..num_classes-1."""
    for split in ("train", "valid"):
        if split not in raw:
            raise DataError(f"data.path={source!r}: split {split!r} missing (found {sorted(raw)}); {LOCAL_HINT}")
        missing = {"image", "label"} - set(raw[split].column_names)
        if missing:
            raise DataError(f"data.path={source!r}: split {split!r} lacks column(s) {sorted(missing)}")
        labels = labels_of(raw[split])
        if len(labels) == 0:
            raise DataError(f"data.path={source!r}: split {split!r} is empty")
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if len(bad):
            raise DataError(
                f"label out of range in split {split!r} at index {int(bad[0])}: {int(labels[bad[0]])} "
                f"({len(bad)} bad labels); allowed 0..{num_classes - 1} (data.num_classes={num_classes})"
            )
