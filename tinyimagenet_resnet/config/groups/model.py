"""The `model` group: the ResNet's depth, widths, dropout, activation and normalisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from ..checks import in_range, listed, n_items, one_of, positive, spec
from ..choices import ACTIVATIONS
from ..paths import group_options


@dataclass
class ModelConfig:
    name: str = spec("resnet", one_of("resnet"))
    blocks: List[int] = spec(
        lambda: f"three positive integers, e.g. [2,2,2] (or model/blocks={group_options('model/blocks')})",
        n_items(3, positive),
    )
    widths: List[int] = spec("three positive integers, e.g. [64,128,256]", n_items(3, positive))
    dropout: float = spec(
        lambda: f"a number in [0, 1) (or model/dropout={group_options('model/dropout')})", in_range(0, 1)
    )
    activation: str = spec(listed(ACTIVATIONS), lambda v: v in ACTIVATIONS)
    batch_norm: bool = spec("true|false")
