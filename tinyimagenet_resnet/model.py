"""Residual network for 64x64 Tiny ImageNet with Dropout2d inside each block."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "gelu": nn.GELU,
    "selu": lambda: nn.SELU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"model.activation={name!r}: allowed {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class ResidualBlock(nn.Module):
    """Conv3x3 -> BN -> act -> Dropout2d -> Conv3x3 -> BN, plus shortcut, act after the sum."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float, activation: str, batch_norm: bool):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = _norm(c_out, batch_norm)
        self.act1 = make_activation(activation)
        self.drop = nn.Dropout2d(dropout)
        self.conv2 = conv3x3(c_out, c_out)
        self.bn2 = _norm(c_out, batch_norm)
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm(c_out, batch_norm)
            )
        else:
            self.shortcut = nn.Identity()
        self.act2 = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop(self.act1(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem (conv3x3 + BN + act, no pooling), three stages (strides 1/2/2), global pool, linear head."""

    def __init__(
        self,
        blocks: Sequence[int] = (2, 2, 2),
        widths: Sequence[int] = (64, 128, 256),
        dropout: float = 0.1,
        activation: str = "relu",
        batch_norm: bool = True,
        num_classes: int = 200,
        in_channels: int = 3,
    ):
        super().__init__()
        if len(blocks) != len(widths):
            raise ValueError(f"model.blocks={list(blocks)} and model.widths={list(widths)} must have the same length")
        self.stem = nn.Sequential(
            conv3x3(in_channels, widths[0]), _norm(widths[0], batch_norm), make_activation(activation)
        )
        stages = []
        c_in = widths[0]
        for i, (n, width) in enumerate(zip(blocks, widths, strict=True)):
            stride = 1 if i == 0 else 2
            layers = []
            for j in range(n):
                layers.append(ResidualBlock(c_in, width, stride if j == 0 else 1, dropout, activation, batch_norm))
                c_in = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))
        self._init_weights(activation)

    def _init_weights(self, activation: str) -> None:
        nonlinearity = "leaky_relu" if activation == "leaky_relu" else "relu"
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if activation == "selu":
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear")
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity=nonlinearity)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                # A small head keeps the initial logits near zero, so the first loss is ~ln(num_classes).
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def build_model(model_cfg, num_classes: int) -> ResNet:
    """Build the network from the `model` config node."""
    return ResNet(
        blocks=list(model_cfg.blocks),
        widths=list(model_cfg.widths),
        dropout=float(model_cfg.dropout),
        activation=str(model_cfg.activation),
        batch_norm=bool(model_cfg.batch_norm),
        num_classes=num_classes,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
