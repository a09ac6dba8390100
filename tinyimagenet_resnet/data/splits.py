"""Stratified, seeded train/test carving and subsets, with a machine-independent fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .. import compat
from ..artifacts.records import SplitSummary
from ..errors import ConfigError


@dataclass
class Split:
    """One split: indices into a raw split (`train` or `valid`) and their labels."""

    name: str
    source_split: str
    indices: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def take(self, positions) -> Split:
        """The images at `positions` of this split, as a split of the same name."""
        return Split(self.name, self.source_split, self.indices[positions], self.labels[positions])

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(self.source_split.encode())
        h.update(np.ascontiguousarray(self.indices, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]


def stratified_take(labels: np.ndarray, n_take: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (keep, take) with `take` a stratified sample of `n_take`.

    Uses the splitter behind `datasets.Dataset.train_test_split(stratify_by_column=...)` with the same
    `np.random.default_rng(seed)`, called on the label array directly (building a Dataset for it costs ~4 s on 100k)."""
    if n_take >= len(labels):
        return np.array([], dtype=np.int64), np.arange(len(labels))
    keep, take = compat.stratified_split_indices(
        np.asarray(labels), len(labels) - n_take, n_take, np.random.default_rng(seed)
    )
    return np.sort(np.asarray(keep, dtype=np.int64)), np.sort(np.asarray(take, dtype=np.int64))


def stratified_positions(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted positions of a stratified, seeded sample of `n` of `labels` (fewer classes than n: each class keeps
    its share)."""
    if n < len(np.unique(labels)):  # fewer images than classes: a plain seeded sample
        return np.sort(np.random.default_rng(seed).choice(len(labels), n, replace=False))
    return stratified_take(labels, n, seed)[1]


def _subset(split: Split, size, key: str, seed: int, stratify: bool = True) -> Split:
    if size is None:
        return split
    size = int(size)
    if not stratify:
        if size > len(split):
            raise ConfigError(
                f"{key}={size}: allowed null or an int in [1, {len(split)}] (the {split.name} split size)"
            )
        return split.take(np.sort(np.random.default_rng(seed).choice(len(split), size, replace=False)))
    n_classes = len(np.unique(split.labels))
    if size > len(split) or size < n_classes:
        raise ConfigError(
            f"{key}={size}: allowed null or an int in [{n_classes}, {len(split)}] "
            f"(at least one image per class of the {split.name} split, at most its size; "
            "data.stratify_subsets=false allows fewer)"
        )
    if size == len(split):
        return split
    return split.take(stratified_take(split.labels, size, seed)[1])


def carved_test_count(n_train: int, test_fraction: float) -> int:
    """How many of the hub's `train` images the test split takes."""
    return int(round(n_train * test_fraction))


def make_splits(train_labels: np.ndarray, valid_labels: np.ndarray, data_cfg, seed: int) -> dict[str, Split]:
    """val = hub `valid`; test = stratified `test_fraction` of hub `train`; train = the rest. Then optional subsets."""
    frac = float(data_cfg.test_fraction)
    n_test = carved_test_count(len(train_labels), frac)
    n_classes = len(np.unique(train_labels))
    if not 0 < frac < 1 or n_test < n_classes:
        raise ConfigError(
            f"data.test_fraction={frac}: allowed a fraction in (0, 1) giving at least one test image per class "
            f"({n_classes} classes, {len(train_labels)} train images)"
        )
    keep, take = stratified_take(train_labels, n_test, seed)
    splits = {
        "train": Split("train", "train", keep, train_labels[keep]),
        "val": Split("val", "valid", np.arange(len(valid_labels)), np.asarray(valid_labels)),
        "test": Split("test", "train", take, train_labels[take]),
    }
    for name, key in (("train", "train_subset"), ("val", "val_subset"), ("test", "test_subset")):
        splits[name] = _subset(splits[name], data_cfg[key], f"data.{key}", seed, bool(data_cfg.stratify_subsets))
    return splits


def split_summary(splits: dict[str, Split], source: str, seed: int, test_fraction: float) -> SplitSummary:
    return SplitSummary(
        source=source,
        seed=seed,
        test_fraction=test_fraction,
        sizes={k: len(v) for k, v in splits.items()},
        fingerprints={k: v.fingerprint() for k, v in splits.items()},
        fingerprint=hashlib.sha256("".join(v.fingerprint() for v in splits.values()).encode()).hexdigest()[:16],
    )
