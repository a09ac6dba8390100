"""Workflow tasks end to end on the tiny parquet fixture, files checked for content."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from tinyimagenet_resnet.training.lr_range import analyse, range_test

from conftest import TINY_ARGS, only_run_dir, read_scalars, run_main


def decodable_png(path):
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 200 and img.size[1] > 200
        return img.size


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_inspect_writes_the_sanity_checks(tiny_data, tmp_path):
    run_main([f"data.path={tiny_data}", "task=inspect", *TINY_ARGS], cwd=tmp_path)
    run = only_run_dir(tmp_path)
    out = json.loads((run / "inspect.json").read_text())
    assert out["sizes"] == {"train": 72, "val": 20, "test": 8}
    # the fixture stores every 10th image (i % 10 == 3) as grayscale: 2 of 20 per train class, 1 of 5 per val class
    assert out["image_modes"]["val"] == {"RGB": 16, "L": 4}
    assert sum(out["image_modes"]["train"].values()) == 72 and sum(out["image_modes"]["test"].values()) == 8
    assert out["image_modes"]["train"].get("L", 0) + out["image_modes"]["test"].get("L", 0) == 8
    assert math.isclose(out["grayscale_share"], 12 / 100)
    assert out["image_sizes"]["train"] == {"64x64": 72}
    assert all(0 < m < 1 for m in out["train_stats"]["mean"]) and all(0 < s < 0.5 for s in out["train_stats"]["std"])
    assert out["batch"]["x_shape"] == [16, 3, 64, 64] and out["batch"]["matches_model_input"]
    assert out["parameters"] == 32_472
    assert abs(out["initial_loss"]["loss"] - math.log(200)) < 0.3
    assert out["gradients"]["all_finite_and_nonzero"] and out["gradients"]["bad_parameters"] == []

    dist = rows(run / "class_distribution.csv")
    assert len(dist) == 200 and dist[0]["name"] == "goldfish"
    assert sum(int(r["train"]) for r in dist) == 72 and sum(int(r["test"]) for r in dist) == 8
    for png in ("class_distribution.png", "augmented_samples.png"):
        decodable_png(run / png)
    name = (run / "run_name.txt").read_text().strip()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / f"inspect-{name}"))
    acc.Reload()
    assert {"inspect/class_distribution", "inspect/augmented_samples"} <= set(acc.Tags()["images"])


def test_baselines(tiny_data, tmp_path):
    run_main([f"data.path={tiny_data}", "task=baselines", *TINY_ARGS], cwd=tmp_path)
    out = json.loads((only_run_dir(tmp_path) / "baselines.json").read_text())
    for split, n in (("val", 20), ("test", 8)):
        assert out[split]["n"] == n
        assert out[split]["majority_class"]["accuracy"] == 0.25  # 4 balanced classes in the fixture
        assert out[split]["uniform_random"]["expected_accuracy"] == 1 / 200
        assert math.isclose(out[split]["class_prior_random"]["expected_accuracy"], 0.25)


class Quadratic(torch.nn.Module):
    """f(w) = h/2 |w - w*|^2: SGD converges fastest at lr = 1/h and diverges beyond 2/h."""

    def __init__(self, dim=20):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return self.w


def test_range_test_suggests_a_sensible_lr_on_a_problem_with_a_known_good_lr():
    torch.manual_seed(0)
    h = 10.0  # best lr = 1/h = 0.1, divergence above 2/h = 0.2
    target = torch.randn(20) * 5
    model = Quadratic()
    before = model.w.detach().clone()

    def batches():
        while True:
            yield None, target + 0.05 * torch.randn(20)

    loss_fn = lambda out, y: 0.5 * h * ((out - y) ** 2).sum()  # noqa: E731
    made = []

    def make_optimizer(params, lr):
        opt = torch.optim.SGD(params, lr=lr)
        made.append(opt)
        return opt

    result = range_test(model, make_optimizer, batches(), loss_fn, min_lr=1e-5, max_lr=10, num_iters=120)
    assert result.stopped_early  # diverged past 2/h before reaching max_lr
    assert 1e-3 <= result.suggestion <= 0.2, result.suggestion
    low, high = result.window
    assert low < result.suggestion < high <= 0.5  # the EMA lags, so the window ends a little past 2/h
    assert torch.equal(model.w.detach(), before)  # the caller's model is untouched
    assert made[0].param_groups[0]["params"][0] is not model.w


def test_analyse_finds_steepest_descent_in_log_space():
    lrs = np.logspace(-6, 0, 61)
    smoothed = 5 - 2 / (1 + np.exp(-(np.log10(lrs) + 2.5) * 3))  # falls fastest at 10^-2.5
    smoothed[-8:] += np.linspace(0, 5, 8)  # divergence at the end
    suggestion, window = analyse(lrs, smoothed)
    assert math.isclose(math.log10(suggestion), -2.5, abs_tol=0.11)
    assert window[0] < suggestion < window[1]


def test_analyse_refuses_to_suggest_from_noise():
    rng = np.random.default_rng(0)
    lrs = np.logspace(-7, 0, 100)
    flat = 5.3 + np.cumsum(rng.normal(0, 0.002, 100))  # a loss that never really falls
    assert analyse(lrs, flat) == (None, None)
    falling = flat.copy()
    falling[40:60] -= np.linspace(0, 0.5, 20)  # one real descent among the noise
    falling[60:] -= 0.5
    suggestion, window = analyse(lrs, falling)
    assert lrs[38] <= window[0] < suggestion < window[1] <= lrs[61]


def test_analyse_ignores_the_non_finite_end_of_a_diverged_sweep():
    lrs = np.logspace(-5, 0, 100)
    smoothed = 5.3 - 0.3 / (1 + np.exp(-(np.log10(lrs) + 2.5) * 4))  # falls fastest at 10^-2.5
    finite = analyse(lrs[:90], smoothed[:90])
    for bad in (np.inf, np.nan):
        diverged = smoothed.copy()
        diverged[90:] = bad  # the sweep stopped on a non-finite loss
        assert analyse(lrs, diverged) == finite
    assert math.isclose(math.log10(finite[0]), -2.5, abs_tol=0.15)


def test_lr_find_task(tiny_data, tmp_path):
    run_main(
        [f"data.path={tiny_data}", "task=lr_find", *TINY_ARGS, "lr_find.num_iters=40", "lr_find.min_lr=1e-6"],
        cwd=tmp_path,
    )
    run = only_run_dir(tmp_path)
    out = json.loads((run / "lr_find.json").read_text())
    curve = rows(run / "lr_find.csv")
    assert len(curve) == out["iterations"] and 5 < len(curve) <= 40
    lrs = [float(r["lr"]) for r in curve]
    assert lrs == sorted(lrs) and math.isclose(lrs[0], 1e-6)
    assert math.isclose(lrs[1] / lrs[0], (1.0 / 1e-6) ** (1 / 39), rel_tol=1e-6)  # exponential schedule
    assert out["suggested_lr"] is not None and out["stable_window"][0] <= out["suggested_lr"] <= out["stable_window"][1]
    decodable_png(run / "lr_find.png")
    name = (run / "run_name.txt").read_text().strip()
    scalars = read_scalars(run / f"lr_find-{name}")
    assert len(scalars["lr_find/loss"]) == len(curve) and len(scalars["lr_find/lr"]) == len(curve)
    assert not (run / "checkpoints").exists()


@pytest.fixture
def trained_b333(trained_run):
    """The session's finished tiny training ([3,3,3], gelu, widths 16)."""
    return trained_run


def test_evaluate_rebuilds_the_model_from_the_checkpoint(tiny_data, tmp_path, trained_b333):
    # no model overrides repeated: the checkpoint's own config (b333, widths 16, gelu) is used
    run_main(
        [
            f"data.path={tiny_data}",
            "task=evaluate",
            f"ckpt_path={trained_b333}/checkpoints/best.ckpt",
            "data.num_workers=0",
        ],
        cwd=tmp_path,
    )
    run = only_run_dir(tmp_path)
    out = json.loads((run / "metrics.json").read_text())
    assert out["trained_config"]["blocks"] == [3, 3, 3] and out["trained_config"]["activation"] == "gelu"
    assert out["test"]["n"] == 8 and out["val"]["n"] == 20
    for split in ("val", "test"):
        assert 0 <= out[split]["accuracy"] <= out[split]["top5"] <= 1 and out[split]["loss"] > 0
    # val metrics equal those the training run recorded for that checkpoint's epoch
    trained = json.loads((trained_b333 / "metrics.json").read_text())
    assert math.isclose(out["val"]["accuracy"], trained["best"]["val/accuracy"])
    assert math.isclose(out["val"]["loss"], trained["best"]["val/loss"], rel_tol=1e-5)

    cm = np.load(run / "confusion_matrix.npy")
    assert cm.shape == (200, 200) and cm.sum() == 8
    assert math.isclose(np.trace(cm) / cm.sum(), out["test"]["accuracy"])
    per_class = rows(run / "per_class_accuracy.csv")
    assert len(per_class) == 200 and sum(int(r["support"]) for r in per_class) == 8
    assert per_class[2]["name"] == "bullfrog"
    confused = rows(run / "top_confusions.csv")
    assert sum(int(r["count"]) for r in confused) == cm.sum() - np.trace(cm)
    assert all(r["true_name"] and r["predicted_name"] for r in confused)
    decodable_png(run / "confusion_matrix.png")
    name = (run / "run_name.txt").read_text().strip()
    scalars = read_scalars(run / f"evaluate-{name}")
    assert math.isclose(scalars["test/accuracy"][0][1], out["test"]["accuracy"], abs_tol=1e-6)


def test_evaluate_refuses_bad_checkpoints_in_one_line(tiny_data, tmp_path, trained_b333):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    for ckpt, fragment in ((bad, "unreadable checkpoint"), (tmp_path / "none.ckpt", "no such file")):
        proc = run_main([f"data.path={tiny_data}", "task=evaluate", f"ckpt_path={ckpt}"], cwd=tmp_path, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith(f"error: ckpt_path='{ckpt}'") and fragment in proc.stderr
    mismatch = run_main(
        [
            f"data.path={tiny_data}",
            "task=evaluate",
            f"ckpt_path={trained_b333}/checkpoints/best.ckpt",
            "model/blocks=b222",
        ],
        cwd=tmp_path,
        check=False,
    )
    assert mismatch.returncode == 2 and "different architecture" in mismatch.stderr
    assert not list(tmp_path.glob("outputs/*/*"))


def test_overfit_small_drives_the_train_loss_down(tiny_data, tmp_path):
    # the experiment, shrunk: 16 images, 30 epochs, a narrower net and a higher lr
    run_main(
        [
            f"data.path={tiny_data}",
            "experiment=overfit_small",
            "model.widths=[16,16,16]",
            "data.num_workers=0",
            "data.train_subset=16",
            "data.val_subset=8",
            "trainer.epochs=30",
            "optim.lr=1e-2",
            "trainer.val_every_n_epochs=30",
        ],
        cwd=tmp_path,
    )
    run = only_run_dir(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    cfg = __import__("yaml").safe_load((run / ".hydra/config.yaml").read_text())
    assert cfg["model"]["blocks"] == [3, 3, 3] and cfg["data"]["augment"]["enabled"] is False
    assert cfg["optim"]["weight_decay"] == 0.0 and cfg["model"]["dropout"] == 0.1
    first, last = metrics["history"][0]["train/loss"], metrics["history"][-1]["train/loss"]
    assert last < first / 10, (first, last)
    assert [h["epoch"] for h in metrics["history"] if "val/accuracy" in h] == [30]
