"""Load the raw Tiny ImageNet `train`/`valid` splits with Hugging Face `datasets`, from the hub or a local folder."""

from __future__ import annotations

import glob
import hashlib
import logging
import os
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
    files = split_patterns(train_files, val_files)
    for split, pattern in files.items():
        if not matching(root, pattern):
            key = "data.train_files" if split == "train" else "data.val_files"
            raise DataError(
                f"{key}={pattern!r}: no file under {root} matches; allowed: a glob relative to data.path, or absolute"
            )
    return files


def load_raw(data_cfg):
    """Return (a `datasets.DatasetDict` with `train` and `valid` splits (images still encoded), the source's name,
    the source's identity: '' for the hub, else a digest of the files that keys every cache built from them)."""
    import datasets  # lazy: seconds of import, paid only where the raw data is read

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
        source, identity = f"hub:{name}", ""
    else:
        root = Path(str(data_cfg.path)).expanduser().resolve()
        if not root.is_dir():
            raise DataError(f"data.path={str(data_cfg.path)!r}: no such folder ({root}); {LOCAL_HINT}")
        if not any(root.glob("data/*.parquet")) and not any(root.glob("*.parquet")):
            raise DataError(f"data.path={str(data_cfg.path)!r}: not a dataset folder (no parquet files); {LOCAL_HINT}")
        data_files = _data_files(root, data_cfg.train_files, data_cfg.val_files)
        check_files(root, data_files)
        identity = files_identity(root, data_files)
        # datasets keys its cache of a local folder on the folder's name and the files' times only: two folders of
        # the same name shared one cache, and the second trained on the first's data. One cache per identity.
        cache = Path(datasets.config.HF_DATASETS_CACHE) / "tinyimagenet_resnet" / identity

        def load(**kw):
            if data_files is None:
                return datasets.load_dataset(str(root), cache_dir=str(cache), **kw)
            files = {k: str(root / v) for k, v in data_files.items()}
            return datasets.load_dataset("parquet", data_files=files, cache_dir=str(cache), **kw)

        try:
            raw = load()
            if _stale(raw, root, data_files):
                log.warning("datasets' cache of %s does not match its parquet files; rebuilding it", root)
                raw = load(download_mode="force_redownload", verification_mode="no_checks")
        except Exception as exc:  # noqa: BLE001
            broken = unreadable_file(root, data_files)  # the footers were fine: find the file whose data is not
            if broken:
                raise DataError(broken) from exc
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"data.path={str(data_cfg.path)!r}: not a readable dataset ({type(exc).__name__}: {reason[:160]}); "
                f"{LOCAL_HINT}"
            ) from exc
        source = str(root)
    check_raw(raw, source, int(data_cfg.num_classes), root if data_cfg.path is not None else None, data_files)
    log.info("Loaded %s: train=%d valid=%d", source, len(raw["train"]), len(raw["valid"]))
    return raw, source, identity


def files_identity(root: Path, data_files: dict | None) -> str:
    """A digest of the dataset's files as this machine sees them: each file's absolute path, size, modification
    time and inode. Another folder, or a file written again, gives another identity (and new caches)."""
    h = hashlib.sha256()
    for split, files in sorted(split_files(root, data_files).items()):
        for f in files:
            st = os.stat(f)
            h.update(f"{split}\0{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
    return h.hexdigest()[:16]


DEFAULT_FILES = {"train": "data/train-*", "valid": "data/valid-*"}  # the zh-plus/tiny-imagenet layout


def split_patterns(train_files: str | None, val_files: str | None) -> dict[str, str]:
    """Each split's glob: data.train_files / data.val_files where given, else the zh-plus/tiny-imagenet layout's."""
    return {"train": train_files or DEFAULT_FILES["train"], "valid": val_files or DEFAULT_FILES["valid"]}


def split_files(root: Path, data_files: dict | None) -> dict[str, list[Path]]:
    """The parquet files of each split, in the order `datasets` concatenates them."""
    return {split: matching(root, pattern) for split, pattern in (data_files or DEFAULT_FILES).items()}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:120]}" if text else type(exc).__name__


def check_files(root: Path, data_files: dict | None) -> None:
    """Each parquet file of the dataset has a readable footer and the `image` and `label` columns; the file that
    does not is named in one line (before `datasets` tries to convert them all)."""
    import pyarrow.parquet as pq  # lazy: loaded with datasets, only where the raw data is read

    for split, files in split_files(root, data_files).items():
        rows = 0
        for f in files:
            try:
                names = pq.read_schema(f).names
                rows += pq.read_metadata(f).num_rows
            except Exception as exc:  # noqa: BLE001 - truncated, garbled or not parquet: the same advice
                raise DataError(
                    f"{f}: not a readable parquet file ({_first_line(exc)}); copy or download it again, or leave it "
                    "out with data.train_files / data.val_files"
                ) from None
            missing = [c for c in ("image", "label") if c not in names]
            if missing:
                raise DataError(
                    f"{f}: no {' and no '.join(repr(c) for c in missing)} column (its columns: "
                    f"{', '.join(names[:8])}); allowed: parquet files with the 'image' and 'label' columns of "
                    "zh-plus/tiny-imagenet"
                )
        if files and rows == 0:
            raise DataError(
                f"data.path={str(root)!r}: split {split!r} is empty ({', '.join(f.name for f in files)} hold no row); "
                "allowed: a split with images"
            )


def unreadable_file(root: Path, data_files: dict | None) -> str | None:
    """After `datasets` failed to convert the files: the first one whose data pyarrow cannot read, as one line."""
    import pyarrow.parquet as pq  # lazy: loaded with datasets, only where the raw data is read

    for files in split_files(root, data_files).values():
        for f in files:
            try:
                pq.read_table(f, columns=["label"])
                pq.ParquetFile(f).read_row_groups(range(pq.ParquetFile(f).num_row_groups), columns=["image"])
            except Exception as exc:  # noqa: BLE001
                return (
                    f"{f}: its data cannot be read ({_first_line(exc)}); copy or download it again, or leave it out "
                    "with data.train_files / data.val_files"
                )
    return None


def locate(root: Path | None, data_files: dict | None, split: str, index: int) -> str:
    """Where row `index` of a split comes from: ' (<file>, row <n>)', or '' when it cannot be told (the hub)."""
    if root is None:
        return ""
    import pyarrow.parquet as pq  # lazy: loaded with datasets, only where the raw data is read

    start = 0
    for f in split_files(root, data_files).get(split, []):
        rows = pq.read_metadata(f).num_rows
        if index < start + rows:
            return f" ({f}, row {index - start})"
        start += rows
    return ""


def _stale(raw, root: Path, data_files: dict | None) -> bool:
    """datasets keys the cache of a local folder on its name and the files' mtimes, so two folders of the same name
    (a regenerated copy, say) can share a stale cache. Compare row counts with the parquet footers (cheap)."""
    import pyarrow.parquet as pq  # lazy: loaded with datasets, only where the raw data is read

    for split, files in split_files(root, data_files).items():
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


def check_raw(raw, source: str, num_classes: int, root: Path | None = None, data_files: dict | None = None) -> None:
    """Refuse a dataset without the expected splits/columns, an empty split, or a label that is missing or outside
    0..num_classes-1 (naming the split, the row and, for a local copy, its file)."""
    import pyarrow.compute as pc  # lazy: loaded with datasets, only where the raw data is read

    for split in ("train", "valid"):
        if split not in raw:
            raise DataError(f"data.path={source!r}: split {split!r} missing (found {sorted(raw)}); {LOCAL_HINT}")
        missing = {"image", "label"} - set(raw[split].column_names)
        if missing:
            raise DataError(f"data.path={source!r}: split {split!r} lacks column(s) {sorted(missing)}")
        if len(raw[split]) == 0:
            raise DataError(f"data.path={source!r}: split {split!r} is empty; allowed: a split with images")
        column = raw[split].data.column("label")
        if column.null_count:
            i = int(pc.index(pc.is_null(column), True).as_py())
            raise DataError(
                f"label missing in split {split!r} at index {i}{locate(root, data_files, split, i)} "
                f"({column.null_count} rows without a label); allowed: an integer 0..{num_classes - 1} in every row"
            )
        labels = labels_of(raw[split])
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"label out of range in split {split!r} at index {i}{locate(root, data_files, split, i)}: "
                f"{int(labels[i])} ({len(bad)} bad labels); allowed 0..{num_classes - 1} "
                f"(data.num_classes={num_classes})"
            )
