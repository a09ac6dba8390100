"""Write a tiny Tiny-ImageNet look-alike in the exact on-disk layout of `zh-plus/tiny-imagenet` (README + parquet)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: valid
    path: data/valid-*
---
# tiny fixture in the zh-plus/tiny-imagenet layout
"""


def _jpeg(rng: np.random.Generator, label: int, gray: bool) -> bytes:
    """A learnable image: a class-specific colour and stripe orientation plus noise."""
    base = np.array([(label * 53) % 256, (label * 97) % 256, (label * 151) % 256], dtype=np.float32)
    yy, xx = np.mgrid[0:64, 0:64]
    stripes = np.sin((xx if label % 2 else yy) * (0.2 + 0.1 * (label % 4)))[..., None] * 60
    arr = np.clip(base + stripes + rng.normal(0, 20, (64, 64, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    if gray:
        img = img.convert("L")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_tiny_imagenet(
    root: Path,
    classes=(0, 1, 2, 3),
    n_train: int = 20,
    n_val: int = 5,
    num_classes: int = 200,
    seed: int = 0,
    corrupt_train_index: int | None = None,
    bad_label: int | None = None,
) -> Path:
    import datasets

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(CARD)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[f"n{i:08d}" for i in range(num_classes)])}
    )
    for split, n in (("train", n_train), ("valid", n_val)):
        images, labels = [], []
        for i in range(n):
            for c in classes:
                images.append({"bytes": _jpeg(rng, c, gray=(i % 10 == 3)), "path": None})
                labels.append(c)
        if split == "train" and corrupt_train_index is not None:
            images[corrupt_train_index] = {"bytes": b"\xff\xd8\xff\xe0 not really a jpeg", "path": None}
        if split == "train" and bad_label is not None:
            features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
            labels[0] = bad_label
        ds = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
        ds.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


if __name__ == "__main__":
    import sys

    print(write_tiny_imagenet(Path(sys.argv[1])))
