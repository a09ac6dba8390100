"""Per-sample augmentation applied to a whole batch on its device (GPU or CPU tensors).

Same distributions as the reference torchvision pipeline (RandomResizedCrop -> horizontal flip -> ColorJitter),
but every image draws its own parameters; torchvision v2 transforms on a batched tensor draw ONE set for the
batch. Crop and flip are one affine `grid_sample` per image (a flip without a crop, an index flip); the jitter
factors are (B,1,1,1) tensors applied in a random order per image, as ColorJitter does; the hue shift is
torchvision's HSV round trip in fused form.
Differences: crop sides are rounded like torchvision's, but a crop that would not fit is clamped instead of
re-drawn (never happens with ratio (1, 1)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .dataset import IMAGE_SIZE

GRAY = (0.2989, 0.587, 0.114)


def _uniform(lo: float, hi: float, n: int, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def grayscale(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (GRAY[0] * r + GRAY[1] * g + GRAY[2] * b).unsqueeze(1)


def _brightness(x, f):
    return (x * f).clamp(0.0, 1.0)


def _contrast(x, f):
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return (f * x + (1.0 - f) * mean).clamp(0.0, 1.0)


def _saturation(x, f):
    return (f * x + (1.0 - f) * grayscale(x)).clamp(0.0, 1.0)


def _hue(x, f):
    """torchvision's adjust_hue (RGB -> HSV, shift H, HSV -> RGB) fused: V = max and chroma C = max - min are
    unchanged by a hue shift, and each output channel is V - C * clamp(min(k, 4 - k), 0, 1) with
    k = (n + 6H') mod 6 for n = 5, 3, 1 (the branchless form of the piecewise HSV -> RGB)."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    c = maxc - minc
    div = torch.where(c > 0, c, torch.ones_like(c))
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h6 = torch.remainder(torch.fmod(h / 6.0 + 1.0, 1.0) + f.view(-1, 1, 1), 1.0) * 6.0
    out = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(h6 + n, 6.0)
        out.append(maxc - c * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return torch.stack(out, dim=1)


_JITTER_OPS = (_brightness, _contrast, _saturation, _hue)


class BatchAugment:
    """Callable on a float batch (B, 3, 64, 64) in [0, 1]; returns the augmented batch (still in [0, 1])."""

    def __init__(self, augment_cfg, size: int = IMAGE_SIZE):
        self.cfg, self.size = augment_cfg, size

    def crop_flip_theta(self, n: int, g: torch.Generator, device) -> tuple[torch.Tensor, dict]:
        crop, size = self.cfg.random_resized_crop, self.size
        if self.cfg.enabled and crop.enabled:
            area = _uniform(float(crop.scale[0]), float(crop.scale[1]), n, g, device) * size * size
            log_r = _uniform(math.log(crop.ratio[0]), math.log(crop.ratio[1]), n, g, device)
            aspect = torch.exp(log_r)
            w = torch.round(torch.sqrt(area * aspect)).clamp(1, size)
            h = torch.round(torch.sqrt(area / aspect)).clamp(1, size)
            # integer top-left corners, uniform like torch.randint(0, size - side + 1)
            j = torch.floor(torch.rand(n, generator=g, device=device) * (size - w + 1))
            i = torch.floor(torch.rand(n, generator=g, device=device) * (size - h + 1))
        else:
            w = h = torch.full((n,), float(size), device=device)
            i = j = torch.zeros(n, device=device)
        p = float(self.cfg.hflip) if self.cfg.enabled else 0.0
        flip = torch.rand(n, generator=g, device=device) < p
        sign = torch.where(flip, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3, device=device)
        theta[:, 0, 0] = sign * w / size
        theta[:, 0, 2] = (2 * j + w) / size - 1
        theta[:, 1, 1] = h / size
        theta[:, 1, 2] = (2 * i + h) / size - 1
        return theta, {"crop_w": w, "crop_h": h, "flip": flip}

    def __call__(self, x: torch.Tensor, g: torch.Generator, return_params: bool = False):
        n, device = x.shape[0], x.device
        theta, params = self.crop_flip_theta(n, g, device)
        if self.cfg.enabled:
            if self.cfg.random_resized_crop.enabled:
                grid = F.affine_grid(theta, list(x.shape), align_corners=False)
                x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
            else:  # a mirror alone is an index flip: the affine resampling would give the same pixels, slower
                x = torch.where(params["flip"].view(-1, 1, 1, 1), x.flip(3), x)
            jit = self.cfg.color_jitter
            if jit.enabled:
                factors = [
                    _uniform(max(0.0, 1 - jit.brightness), 1 + jit.brightness, n, g, device),
                    _uniform(max(0.0, 1 - jit.contrast), 1 + jit.contrast, n, g, device),
                    _uniform(max(0.0, 1 - jit.saturation), 1 + jit.saturation, n, g, device),
                    _uniform(-jit.hue, jit.hue, n, g, device),
                ]
                amounts = (jit.brightness, jit.contrast, jit.saturation, jit.hue)
                order = torch.argsort(torch.rand(n, 4, generator=g, device=device), dim=1)  # per-image op order
                for position in range(4):
                    for op_index, op in enumerate(_JITTER_OPS):
                        if amounts[op_index] == 0:  # torchvision skips a jitter whose amount is 0
                            continue
                        sel = (order[:, position] == op_index).nonzero().squeeze(1)
                        if sel.numel():
                            f = factors[op_index][sel]
                            x[sel] = op(x[sel], f if op_index == 3 else f.view(-1, 1, 1, 1))
                params.update(zip(("brightness", "contrast", "saturation", "hue"), factors, strict=True))
        return (x, params) if return_params else x
