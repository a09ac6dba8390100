"""The model of a run as a table: each layer, its output shape and its parameters, from one forward pass."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from ..data.dataset import IMAGE_SIZE
from ..model import build_model

# model keys added after 0.1.0, with the value every earlier run had
MODEL_DEFAULTS = {"activation": "relu", "batch_norm": True}


def architecture(model_cfg, num_classes: int) -> tuple[list, int]:
    model_cfg = {**MODEL_DEFAULTS, **model_cfg}  # runs of older versions lack the later keys
    model = build_model(OmegaConf.create(model_cfg), num_classes).eval()
    bn = " + BN" if model_cfg.get("batch_norm", True) else ""  # the text follows the config (batch_norm=false)
    act = str(model_cfg.get("activation", "relu"))
    rows, hooks = [], []
    named = (
        [("stem", model.stem)]
        + [(f"stage{s + 1}.block{b + 1}", blk) for s, stage in enumerate(model.stages) for b, blk in enumerate(stage)]
        + [("head", model.head)]
    )
    for name, module in named:

        def hook(m, i, o, name=name):
            desc = type(m).__name__ if name != "stem" else f"Conv3x3{bn} + {act}"
            if name.startswith("stage"):
                desc = (
                    f"ResidualBlock(Conv3x3{bn.replace(' + ', '-')}-{act}-Dropout2d({m.drop.p:g})-Conv3x3"
                    f"{bn.replace(' + ', '-')}, "
                    + ("1x1 conv shortcut" if isinstance(m.shortcut, torch.nn.Sequential) else "identity")
                    + ")"
                )
            elif name == "head":
                desc = "AdaptiveAvgPool2d(1) -> Flatten -> Linear"
            rows.append(  # the layer as code: Dropout2d(0.3) stays 0.3 in every language
                (
                    name,
                    f"`{desc}`",
                    "×".join(str(s) for s in o.shape[1:]),
                    f"{sum(p.numel() for p in m.parameters()):,}",
                )
            )

        hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE))
    for h in hooks:
        h.remove()
    return rows, sum(p.numel() for p in model.parameters())
