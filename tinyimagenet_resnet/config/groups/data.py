"""The `data` group: where the images come from, the split, the batches and the augmentation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Union

from ..checks import (
    INT_GE1,
    OPT_INT_GE1,
    at_least,
    batch_size,
    in_range,
    listed,
    min_max_pair,
    n_items,
    non_negative,
    one_of,
    optional,
    positive,
    spec,
)
from ..choices import LRRule, Pipeline


@dataclass
class RandomResizedCropConfig:
    enabled: bool = spec("true|false")
    scale: List[float] = spec("[min, max] with 0 < min <= max <= 1", min_max_pair(0, 1))
    ratio: List[float] = spec("[min, max] with 0 < min <= max", min_max_pair(0, None))


@dataclass
class ColorJitterConfig:
    enabled: bool = spec("true|false")
    brightness: float = spec("a number >= 0", non_negative)
    contrast: float = spec("a number >= 0", non_negative)
    saturation: float = spec("a number >= 0", non_negative)
    hue: float = spec("a number in [0, 0.5]", in_range(0, 0.5, hi_open=False))


@dataclass
class AugmentConfig:
    enabled: bool = spec("true|false")
    hflip: float = spec("a probability in [0, 1]", in_range(0, 1, hi_open=False))
    random_resized_crop: RandomResizedCropConfig = field(default_factory=RandomResizedCropConfig)
    color_jitter: ColorJitterConfig = field(default_factory=ColorJitterConfig)


@dataclass
class AutoBatchConfig:
    """data.batch_size=auto: the largest batch that fits, halving from `max`; optim.lr is the LR for a batch of
    `lr_reference`, scaled to the batch found by `lr_rule`."""

    max: int = spec(*INT_GE1)
    lr_reference: int = spec(*INT_GE1)
    lr_rule: LRRule = spec(listed(LRRule))


@dataclass
class DataConfig:
    name: str = spec("a name")
    hub_name: str = spec("a hub dataset id, e.g. zh-plus/tiny-imagenet")
    path: str | None = spec("null (the hub) or a folder path")
    train_files: str | None = spec("null or a glob relative to data.path")
    val_files: str | None = spec("null or a glob relative to data.path")
    num_classes: int = spec("an integer >= 2", at_least(2))
    test_fraction: float = spec("a number in (0, 1)", in_range(0, 1, lo_open=True))
    train_subset: int | None = spec(*OPT_INT_GE1)
    val_subset: int | None = spec(*OPT_INT_GE1)
    test_subset: int | None = spec(*OPT_INT_GE1)
    stratify_subsets: bool = spec("true|false")
    batch_size: Union[int, str] = spec("an integer >= 1, or auto (the largest that fits: data.auto_batch)", batch_size)
    auto_batch: AutoBatchConfig = field(default_factory=AutoBatchConfig)
    eval_batch_size: int | None = spec("null (= data.batch_size) or an integer >= 1", optional(at_least(1)))
    pipeline: Pipeline = spec(listed(Pipeline))
    cache_dir: str | None = spec("null or a folder")
    device_resident: Union[bool, str] = spec("auto|true|false", one_of("auto", True, False))
    num_workers: int = spec("an integer >= 0", non_negative)
    mean: List[float] = spec("three numbers (one per RGB channel)", n_items(3, lambda x: True))
    std: List[float] = spec("three positive numbers (one per RGB channel)", n_items(3, positive))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
