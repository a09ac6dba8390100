"""The fast pipeline (decoded cache + per-sample augmentation in batch) against the torchvision reference."""

import multiprocessing as mp
from collections import Counter

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from tinyimagenet_resnet.config.loader import compose_config
from tinyimagenet_resnet.data import batch_augment as BA
from tinyimagenet_resnet.data.cache import decoded
from tinyimagenet_resnet.data.datamodule import DataModule

from test_data import data_cfg


def aug_cfg(**over):
    cfg = compose_config([]).data.augment
    for k, v in over.items():
        OmegaConf.update(cfg, k, v)
    return cfg


@pytest.mark.parametrize(
    "op,ref",
    [
        (BA._brightness, TF.adjust_brightness),
        (BA._contrast, TF.adjust_contrast),
        (BA._saturation, TF.adjust_saturation),
        (BA._hue, TF.adjust_hue),
    ],
)
def test_each_jitter_op_matches_torchvision_image_by_image(op, ref):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 64, 64, generator=g)
    factors = (
        torch.tensor([0.8, 0.9, 1.0, 1.1, 1.2, 0.95])
        if op is not BA._hue
        else torch.tensor([-0.2, -0.1, 0.0, 0.05, 0.15, 0.2])
    )
    out = op(x.clone(), factors if op is BA._hue else factors.view(-1, 1, 1, 1))
    for b in range(len(x)):
        torch.testing.assert_close(out[b], ref(x[b], float(factors[b])), atol=2e-5, rtol=1e-5)


def test_crop_scale_and_flip_rate_follow_the_reference_distributions():
    n = 20000
    aug = BA.BatchAugment(aug_cfg())
    _, params = aug.crop_flip_theta(n, torch.Generator().manual_seed(1), torch.device("cpu"))
    sides = Counter(params["crop_w"].int().tolist())
    torch.manual_seed(1)
    crop = v2.RandomResizedCrop(64, scale=(0.8, 1.0), ratio=(1.0, 1.0))
    ref_sides = (
        Counter(crop.make_params([torch.empty(3, 64, 64)])["width"] for _ in range(n))
        if hasattr(crop, "make_params")
        else Counter(
            v2.RandomResizedCrop.get_params(torch.empty(3, 64, 64), [0.8, 1.0], [1.0, 1.0])[3] for _ in range(n)
        )
    )
    assert set(sides) == set(ref_sides) == set(range(57, 65))
    for side in sides:  # same frequencies within sampling noise
        assert abs(sides[side] - ref_sides[side]) / n < 0.015, (side, sides[side], ref_sides[side])
    assert torch.equal(params["crop_w"], params["crop_h"])  # ratio 1: square crops
    assert abs(params["flip"].float().mean().item() - 0.5) < 0.015


def test_every_image_of_a_batch_gets_its_own_parameters():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, 64, 64, generator=g)
    batch = img.repeat(64, 1, 1, 1)
    out, params = BA.BatchAugment(aug_cfg())(batch.clone(), g, return_params=True)
    flat = out.flatten(1)
    assert torch.unique(flat, dim=0).shape[0] == 64  # 64 different results
    assert params["brightness"].std() > 0.05 and params["hue"].std() > 0.05
    # what we avoid: torchvision v2 on a batched tensor draws ONE parameter set for the whole batch
    torch.manual_seed(0)
    ref = v2.Compose(
        [v2.RandomResizedCrop(64, scale=(0.8, 1.0), ratio=(1.0, 1.0)), v2.ColorJitter(0.2, 0.2, 0.2, 0.2)]
    )(batch.clone())
    assert torch.unique(ref.flatten(1), dim=0).shape[0] == 1


def test_no_augmentation_is_the_identity():
    x = torch.rand(4, 3, 64, 64)
    out = BA.BatchAugment(aug_cfg(enabled=False))(x.clone(), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x)
    out = BA.BatchAugment(
        aug_cfg(**{"color_jitter.enabled": False, "hflip": 0.0, "random_resized_crop.scale": [1.0, 1.0]})
    )(x.clone(), torch.Generator())
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)  # a full-size crop samples pixel centres exactly


def test_a_flip_without_a_crop_mirrors_exactly_the_drawn_images_as_the_affine_path_would():
    x = torch.rand(64, 3, 64, 64)
    flip_only = BA.BatchAugment(aug_cfg(**{"color_jitter.enabled": False, "random_resized_crop.enabled": False}))
    out, params = flip_only(x.clone(), torch.Generator().manual_seed(3), return_params=True)
    flipped = params["flip"]
    assert 0 < int(flipped.sum()) < len(x)
    assert torch.equal(out[flipped], x[flipped].flip(3)) and torch.equal(out[~flipped], x[~flipped])
    # the affine resampling of the same draws gives the same pixels
    theta, _ = flip_only.crop_flip_theta(len(x), torch.Generator().manual_seed(3), x.device)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    resampled = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(resampled, out, atol=1e-5, rtol=0)


def test_fast_and_reference_batches_agree_statistically(tiny_data):
    fast = DataModule.setup(data_cfg(tiny_data, pipeline="fast", batch_size=72), seed=0)
    ref = DataModule.setup(data_cfg(tiny_data, pipeline="reference", batch_size=72), seed=0)
    device = torch.device("cpu")
    fl, rl = fast.train_loader(device), ref.train_loader(device)
    xs_f, xs_r = [], []
    for epoch in range(12):
        for loader, xs in ((fl, xs_f), (rl, xs_r)):
            xs.append(next(loader.epoch(epoch))[0])
    f, r = torch.cat(xs_f), torch.cat(xs_r)
    assert f.shape == r.shape == (12 * 72, 3, 64, 64)
    mf, mr = f.mean(dim=(0, 2, 3)), r.mean(dim=(0, 2, 3))
    sf, sr = f.std(dim=(0, 2, 3)), r.std(dim=(0, 2, 3))
    assert torch.allclose(mf, mr, atol=0.06), (mf, mr)
    assert torch.allclose(sf, sr, rtol=0.06), (sf, sr)
    # per-sample diversity: the spread of per-image means is alike
    assert abs(f.mean(dim=(2, 3)).std() - r.mean(dim=(2, 3)).std()) < 0.1
    # val batches (no random operation) are identical between the two pipelines
    vf = next(iter(fast.eval_loader("val", device)))[0]
    vr = next(iter(ref.eval_loader("val", device)))[0]
    torch.testing.assert_close(vf, vr, atol=1e-6, rtol=0)


def test_the_cache_holds_the_decoded_images_and_is_reused(tiny_data, tmp_path):
    dm = DataModule.setup(data_cfg(tiny_data), seed=0)
    split = dm.splits["train"]
    raw = dm.raw["train"]
    arr, built = decoded(raw, split, tmp_path)
    assert built and arr.shape == (72, 64, 64, 3) and arr.dtype == np.uint8
    plain = dm.dataset("train", train_augment=False)
    for i in (0, 3, 71):  # grayscale images are stored RGB-converted
        assert np.array_equal(arr[i], np.asarray(plain.raw_image(i)))
    again, built_again = decoded(raw, split, tmp_path)
    assert not built_again and np.array_equal(arr, again)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".lock", ".npy"]


def _build_in_child(args):
    path, cache_dir = args
    dm = DataModule.setup(data_cfg(path), seed=0)
    arr, built = decoded(dm.raw["train"], dm.splits["train"], cache_dir)
    return built, int(arr.astype(np.int64).sum())


def test_two_jobs_building_the_cache_at_once(tiny_data, tmp_path):
    with mp.get_context("spawn").Pool(2) as pool:
        results = pool.map(_build_in_child, [(tiny_data, tmp_path)] * 2)
    assert sorted(b for b, _ in results) == [False, True]  # built once
    assert results[0][1] == results[1][1]  # both read the same complete array
    assert not list(tmp_path.glob("*.tmp-*"))
