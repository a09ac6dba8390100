"""`task=inspect`: data and model sanity checks written as JSON/CSV/PNG into the run dir (images also to TensorBoard).

Split sizes, class distribution per split, image modes and sizes, train mean/std, a grid of augmented samples
named by class, one batch's shape against the model input, the parameter count, the first-batch loss against
ln(num_classes) and a check that one backward gives every parameter a finite, non-zero gradient."""

from __future__ import annotations

import io
import logging
import math
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..artifacts import names
from ..artifacts.files import atomic_path, write_csv
from ..artifacts.records import InspectRecord
from ..data.classes import class_name
from ..data.dataset import IMAGE_SIZE
from ..errors import DataError
from ..model import count_parameters
from ..reporting import figures
from .common import make_model, open_tb, run_context, setup_data

log = logging.getLogger(__name__)


def image_headers(raw_split, indices: np.ndarray, split_name: str) -> tuple[Counter, Counter]:
    """Modes and sizes from the JPEG headers (no full decode)."""
    import datasets  # lazy: seconds of import, paid only where the raw data is read

    table = raw_split.cast_column("image", datasets.Image(decode=False)).select_columns(["image"])
    wanted = np.zeros(len(table), dtype=bool)
    wanted[indices] = True
    modes, sizes = Counter(), Counter()
    start = 0
    for batch in table.iter(batch_size=2000):
        cells = batch["image"]
        for offset, cell in enumerate(cells):
            if wanted[start + offset]:
                try:
                    with Image.open(io.BytesIO(cell["bytes"])) as img:
                        modes[img.mode] += 1
                        sizes[f"{img.size[0]}x{img.size[1]}"] += 1
                except Exception as exc:  # noqa: BLE001 - any decoder failure is a corrupt image
                    raise DataError(
                        f"corrupt image in split {split_name!r} at index {start + offset}: {type(exc).__name__}: {exc}"
                    ) from None
        start += len(cells)
    return modes, sizes


def channel_stats(dataset, n: int | None, seed: int) -> dict:
    """Per-channel mean/std of RGB pixels in [0, 1] over n train images (all when n is None)."""
    order = np.random.default_rng(seed).permutation(len(dataset))[: n or len(dataset)]
    total = np.zeros(3)
    total_sq = np.zeros(3)
    pixels = 0
    for i in order:
        arr = np.asarray(dataset.raw_image(int(i)), dtype=np.float64) / 255.0
        total += arr.sum((0, 1))
        total_sq += (arr**2).sum((0, 1))
        pixels += arr.shape[0] * arr.shape[1]
    mean = total / pixels
    std = np.sqrt(total_sq / pixels - mean**2)
    return {"images": int(len(order)), "mean": mean.round(4).tolist(), "std": std.round(4).tolist()}


def gradient_check(model, x, y) -> dict:
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x).float(), y)
    loss.backward()
    bad = [
        name
        for name, p in model.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all() or not bool(p.grad.abs().sum() > 0)
    ]
    return {
        "loss": float(loss.detach()),
        "parameters": sum(1 for _ in model.parameters()),
        "all_finite_and_nonzero": not bad,
        "bad_parameters": bad,
    }


def run(cfg) -> float:
    ctx = run_context(cfg)
    dm = setup_data(cfg, ctx.run_dir)
    tb = open_tb(ctx)
    out: dict = {"sizes": {k: len(v) for k, v in dm.splits.items()}, "split": dm.summary().to_json()}
    out["class_counts"] = class_distribution(dm, ctx.run_dir, tb)
    out.update(image_formats(dm))
    train_plain = dm.dataset("train", train_augment=False)
    out["train_stats"] = channel_stats(train_plain, cfg.inspect.stats_images, int(cfg.seed))
    out["train_stats"]["configured_mean"] = list(cfg.data.mean)
    out["train_stats"]["configured_std"] = list(cfg.data.std)

    model = make_model(cfg, dm.num_classes, ctx.device, ctx.channels_last)
    x, y = dm.sample_batch(ctx.device)  # a batch as training makes it (the configured pipeline)
    sample_grid(cfg, x, y, ctx.run_dir, tb)
    out["batch"] = batch_check(x, y)
    out["parameters"] = count_parameters(model)
    x, y = x.to(ctx.device), y.to(ctx.device)
    model.train()
    grads = gradient_check(model, x, y)
    out["initial_loss"] = {"loss": grads.pop("loss"), "ln_num_classes": math.log(dm.num_classes)}
    out["initial_loss"]["abs_diff"] = abs(out["initial_loss"]["loss"] - out["initial_loss"]["ln_num_classes"])
    out["gradients"] = grads
    tb.scalars({names.INITIAL_LOSS: out["initial_loss"]["loss"]}, 0)
    InspectRecord(**out).write(ctx.run_dir)
    tb.close()
    log_summary(cfg, out, dm.num_classes)
    return out["initial_loss"]["loss"]


def class_distribution(dm, run_dir: Path, tb) -> dict:
    """class_distribution.csv and its figure (PNG and TensorBoard); returns each split's min and max class count and
    its classes present."""
    counts = {k: np.bincount(v.labels, minlength=dm.num_classes) for k, v in dm.splits.items()}
    write_csv(
        run_dir / "class_distribution.csv",
        ["label", "name", *counts],
        ([c, class_name(c), *(int(counts[k][c]) for k in counts)] for c in range(dm.num_classes)),
    )
    fig = figures.class_distribution(counts)
    tb.figure("inspect/class_distribution", fig)
    figures.save(fig, run_dir / "class_distribution.png")
    return {
        k: {"min": int(c.min()), "max": int(c.max()), "classes_present": int((c > 0).sum())} for k, c in counts.items()
    }


def image_formats(dm) -> dict:
    """Image modes and sizes of each split (JPEG headers), and the share of grayscale images over all splits."""
    out: dict = {"image_modes": {}, "image_sizes": {}}
    for name, split in dm.splits.items():
        modes, sizes = image_headers(dm.raw[split.source_split], split.indices, split.source_split)
        out["image_modes"][name] = dict(modes)
        out["image_sizes"][name] = dict(sizes)
    n_all = sum(sum(m.values()) for m in out["image_modes"].values())
    n_gray = sum(m.get("L", 0) for m in out["image_modes"].values())
    out["grayscale_share"] = n_gray / max(n_all, 1)
    return out


def sample_grid(cfg, x: torch.Tensor, y: torch.Tensor, run_dir: Path, tb) -> None:
    """The first images of the batch, un-normalised and named by class: PNG, TensorBoard, and an .npz of the
    images (what the report's French edition draws)."""
    mean, std = torch.tensor(list(cfg.data.mean))[:, None, None], torch.tensor(list(cfg.data.std))[:, None, None]
    shown = x[: int(cfg.inspect.grid_images)].cpu()
    imgs = (shown * std + mean).permute(0, 2, 3, 1).numpy()
    labels = [int(label) for label in y[: len(shown)]]
    fig = figures.samples(imgs, labels, str(cfg.data.pipeline))
    tb.figure("inspect/augmented_samples", fig)
    figures.save(fig, run_dir / "augmented_samples.png")
    with atomic_path(run_dir / "augmented_samples.npz") as tmp, open(tmp, "wb") as f:  # the report's French one
        np.savez_compressed(f, images=(np.clip(imgs, 0, 1) * 255).astype(np.uint8), labels=np.array(labels))


def batch_check(x: torch.Tensor, y: torch.Tensor) -> dict:
    """One batch's shapes and statistics, and whether it is what the model takes."""
    return {
        "x_shape": list(x.shape),
        "x_dtype": str(x.dtype),
        "y_shape": list(y.shape),
        "x_mean": float(x.mean()),
        "x_std": float(x.std()),
        "model_input_shape": ["B", 3, IMAGE_SIZE, IMAGE_SIZE],
        "matches_model_input": list(x.shape[1:]) == [3, IMAGE_SIZE, IMAGE_SIZE],
    }


def log_summary(cfg, out: dict, num_classes: int) -> None:
    log.info(
        "Splits %s; grayscale %.2f%% of images; sizes %s",
        out["sizes"],
        100 * out["grayscale_share"],
        sorted({s for v in out["image_sizes"].values() for s in v}),
    )
    log.info(
        "Train mean %s std %s over %d images (configured %s / %s)",
        out["train_stats"]["mean"],
        out["train_stats"]["std"],
        out["train_stats"]["images"],
        list(cfg.data.mean),
        list(cfg.data.std),
    )
    log.info(
        "Batch %s %s -> model input (B, 3, %d, %d): %s; %s parameters",
        out["batch"]["x_shape"],
        out["batch"]["x_dtype"],
        IMAGE_SIZE,
        IMAGE_SIZE,
        "ok" if out["batch"]["matches_model_input"] else "MISMATCH",
        f"{out['parameters']:,}",
    )
    log.info(
        "Initial loss %.4f vs ln(%d) = %.4f; gradients finite and non-zero for all %d parameters: %s",
        out["initial_loss"]["loss"],
        num_classes,
        out["initial_loss"]["ln_num_classes"],
        out["gradients"]["parameters"],
        out["gradients"]["all_finite_and_nonzero"],
    )
