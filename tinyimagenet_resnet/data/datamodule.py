"""Assemble the three splits and their DataLoaders from the `data` config."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..artifacts.records import SplitSummary
from .cache import decoded
from .dataset import ImageSplitDataset
from .device_loader import DeviceLoader
from .sampler import AUGMENT_STREAM, EpochSampler, epoch_seed
from .source import labels_of, load_raw
from .splits import Split, make_splits, split_summary
from .transforms import eval_transform, train_transform

log = logging.getLogger(__name__)


@dataclass
class DataModule:
    cfg: object
    seed: int
    raw: object
    source: str
    splits: dict[str, Split]

    @classmethod
    def setup(cls, data_cfg, seed: int) -> DataModule:
        raw, source = load_raw(data_cfg)
        splits = make_splits(labels_of(raw["train"]), labels_of(raw["valid"]), data_cfg, seed)
        dm = cls(data_cfg, seed, raw, source, splits)
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

    def dataset(self, name: str, train_augment: bool | None = None) -> ImageSplitDataset:
        augment = (name == "train") if train_augment is None else train_augment
        transform = train_transform(self.cfg) if augment else eval_transform(self.cfg)
        split = self.splits[name]
        return ImageSplitDataset(self.raw[split.source_split], split, transform)

    def _loader(self, ds, batch_size: int, sampler, device: torch.device, shuffle_seed: int | None = None):
        workers = int(self.cfg.num_workers)
        generator = torch.Generator().manual_seed(shuffle_seed) if shuffle_seed is not None else None
        return torch.utils.data.DataLoader(
            ds,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            generator=generator,
            persistent_workers=False,
            prefetch_factor=4 if workers > 0 else None,
        )

    @property
    def fast(self) -> bool:
        return self.cfg.pipeline == "fast"

    def decoded(self, name: str):
        """The split decoded once into a cached uint8 (N, 64, 64, 3) memmap (see data/cache.py)."""
        split = self.splits[name]
        arr, _ = decoded(
            self.raw[split.source_split], split, self.cfg.cache_dir, threads=max(1, int(self.cfg.num_workers))
        )
        return arr

    def _device_loader(self, name: str, device: torch.device, batch_size: int, train: bool) -> DeviceLoader:
        images = self.decoded(name)
        resident = self.cfg.device_resident
        if resident == "auto":
            resident = device.type != "cuda" or images.nbytes < 0.5 * torch.cuda.mem_get_info(device)[0]
        return DeviceLoader(
            images,
            self.splits[name].labels,
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
        """Shuffled by an EpochSampler (`loader.sampler.set_epoch`); `loader.generator` seeds the augmentation
        (fast pipeline) or the worker RNGs (reference pipeline)."""
        if self.fast:
            return self._device_loader("train", device, int(self.cfg.batch_size), train=True)
        ds = self.dataset("train")
        sampler = EpochSampler(len(ds), self.seed)
        return self._loader(ds, int(self.cfg.batch_size), sampler, device, shuffle_seed=self.seed)

    def eval_loader(self, name: str, device: torch.device):
        batch_size = int(self.cfg.eval_batch_size or self.cfg.batch_size)
        if self.fast:
            return self._device_loader(name, device, batch_size, train=False)
        ds = self.dataset(name)
        sampler = EpochSampler(len(ds), self.seed, shuffle=False)
        return self._loader(ds, batch_size, sampler, device)


def set_train_epoch(loader, seed: int, epoch: int, start: int = 0) -> None:
    """Make epoch `epoch` of a train loader depend only on (seed, epoch): sample order and worker RNG seeds."""
    loader.sampler.set_epoch(epoch, start)
    if loader.generator is not None:
        loader.generator.manual_seed(epoch_seed(seed, epoch, AUGMENT_STREAM))
