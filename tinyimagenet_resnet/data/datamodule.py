"""Assemble the three splits and their DataLoaders from the `data` config."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..artifacts.records import SplitSummary
from .cache import decoded
from .dataset import ImageSplitDataset
from .device_loader import DeviceLoader
from .sampler import AUGMENT_STREAM, EpochOrder, epoch_seed
from .source import labels_of, load_raw
from .splits import Split, make_splits, split_summary, stratified_positions
from .transforms import eval_transform, train_transform

log = logging.getLogger(__name__)


@dataclass
class DataModule:
    cfg: object
    seed: int
    raw: object
    source: str
    splits: dict[str, Split]
    identity: str = ""  # the source files' digest (data/source.py): part of the decoded cache's key

    @classmethod
    def setup(cls, data_cfg, seed: int) -> DataModule:
        raw, source, identity = load_raw(data_cfg)
        splits = make_splits(labels_of(raw["train"]), labels_of(raw["valid"]), data_cfg, seed)
        dm = cls(data_cfg, seed, raw, source, splits, identity)
        summary = dm.summary()
        log.info("Splits: %s (fingerprint %s)", summary.sizes, summary.fingerprint)
        return dm

    @property
    def num_classes(self) -> int:
        return int(self.cfg.num_classes)

    def summary(self) -> SplitSummary:
        return split_summary(self.splits, self.source, self.seed, float(self.cfg.test_fraction))

    def write_summary(self, run_dir: Path) -> None:
        self.summary().write(run_dir)

    def dataset(self, name: str, train_augment: bool | None = None, positions=None) -> ImageSplitDataset:
        """Split `name` (or the images at `positions` of it) as a per-image torch Dataset."""
        augment = (name == "train") if train_augment is None else train_augment
        transform = train_transform(self.cfg) if augment else eval_transform(self.cfg)
        split = self.splits[name] if positions is None else self.splits[name].take(positions)
        return ImageSplitDataset(self.raw[split.source_split], split, transform)

    def _reference_loader(self, ds, batch_size: int, device: torch.device, shuffle: bool) -> ReferenceLoader:
        return ReferenceLoader(ds, batch_size, self.seed, int(self.cfg.num_workers), device.type == "cuda", shuffle)

    @property
    def fast(self) -> bool:
        return self.cfg.pipeline == "fast"

    def decoded(self, name: str):
        """The split decoded once into a cached uint8 (N, 64, 64, 3) memmap (see data/cache.py)."""
        split = self.splits[name]
        arr, _ = decoded(
            self.raw[split.source_split],
            split,
            self.cfg.cache_dir,
            threads=max(1, int(self.cfg.num_workers)),
            identity=self.identity,
        )
        return arr

    def _device_loader(self, name: str, device: torch.device, batch_size: int, train: bool, positions=None):
        images, labels = self.decoded(name), self.splits[name].labels
        if positions is not None:
            images, labels = images[positions], labels[positions]
        resident = self.cfg.device_resident
        if resident == "auto":
            resident = device.type != "cuda" or images.nbytes < 0.5 * torch.cuda.mem_get_info(device)[0]
        return DeviceLoader(
            images,
            labels,
            batch_size,
            device,
            self.seed,
            self.cfg.mean,
            self.cfg.std,
            self.cfg.augment if train else None,
            shuffle=train,
            resident=bool(resident),
        )

    def train_loader(self, device: torch.device):
        """Shuffled; `loader.epoch(e, skip)` yields the batches of epoch e (see sampler.EpochOrder)."""
        if self.fast:
            return self._device_loader("train", device, int(self.cfg.batch_size), train=True)
        return self._reference_loader(self.dataset("train"), int(self.cfg.batch_size), device, shuffle=True)

    def sample_batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """One augmented train batch made as training makes it (the configured pipeline, its augmentation and
        normalisation), from a seeded sample of data.batch_size train images: only those images are decoded (a
        check of the pipeline does not need the whole split's cache)."""
        split = self.splits["train"]
        n = min(int(self.cfg.batch_size), len(split))
        positions = np.sort(np.random.default_rng(self.seed).choice(len(split), n, replace=False))
        if not self.fast:
            return next(iter(self._reference_loader(self.dataset("train", positions=positions), n, device, True)))
        sample, c = split.take(positions), self.cfg
        images, _ = decoded(self.raw[sample.source_split], sample, c.cache_dir, threads=1, identity=self.identity)
        loader = DeviceLoader(images, sample.labels, n, device, self.seed, c.mean, c.std, c.augment, True, True)
        return next(iter(loader))

    def eval_loader(self, name: str, device: torch.device, subset: int | None = None):
        """Every image of split `name` in order (or a stratified, seeded `subset` of them), not augmented."""
        batch_size = int(self.cfg.eval_batch_size or self.cfg.batch_size)
        split = self.splits[name]
        positions = stratified_positions(split.labels, subset, self.seed) if subset and subset < len(split) else None
        if self.fast:
            return self._device_loader(name, device, batch_size, train=False, positions=positions)
        return self._reference_loader(self.dataset(name, positions=positions), batch_size, device, shuffle=False)


class _Batches:
    """An epoch's index batches as lists, taken one by one (a budgeted epoch's stream has no fixed end)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return (b.tolist() for b in self.batches)


class ReferenceLoader:
    """The per-image pipeline (PIL + torchvision in DataLoader workers) with the DeviceLoader's interface:
    `epoch(e, skip)` and `set_steps_per_epoch`. Worker RNGs are seeded per epoch, so the order of a resumed epoch
    is exact but its augmentation draws are not (the fast pipeline's are)."""

    def __init__(self, dataset, batch_size: int, seed: int, workers: int, pin: bool, shuffle: bool):
        self.dataset, self.batch_size, self.seed, self.workers, self.pin = dataset, batch_size, seed, workers, pin
        self.order = EpochOrder(len(dataset), batch_size, seed, shuffle)

    def __len__(self) -> int:
        return self.order.batches_per_epoch()

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    def set_steps_per_epoch(self, steps: int | None) -> None:
        self.order.steps_per_epoch = steps

    def epoch(self, epoch: int, skip: int = 0):
        batches = _Batches(self.order.epoch_indices(epoch, skip))
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch, AUGMENT_STREAM))
        return iter(
            torch.utils.data.DataLoader(
                self.dataset,
                batch_sampler=batches,
                num_workers=self.workers,
                pin_memory=self.pin,
                generator=generator,
                prefetch_factor=4 if self.workers > 0 else None,
            )
        )

    def __iter__(self):
        return self.epoch(0)
