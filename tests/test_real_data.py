"""A few hundred real training steps, and the smoke protocol's LR range test, on one shard of the real Tiny ImageNet
(skipped when it is absent)."""

import json
import math

import pytest

from conftest import only_run_dir, run_main


@pytest.mark.slow
def test_val_loss_drops_clearly_below_ln200_on_a_real_shard(real_data, tmp_path):
    # shard 0: ~31 images of each of the 200 classes; 4 epochs x 90 steps of 64 images = ~360 steps
    run_main(
        [
            f"data.path={real_data}",
            "data.train_files=data/train-00000-*",
            "data.val_files=data/valid-00000-*",
            "data.val_subset=1000",
            "model.widths=[16,32,64]",
            "data.batch_size=64",
            "trainer.epochs=4",
            "optim.lr=3e-3",
            "data.num_workers=1",
            # progressive resizing (experiment=cpu trains 70/20/10%): 60% of the steps at 16 px, 30% at 32, the last
            # 10% at 64, so the ~360 steps cost ~0.2 of 64-px steps; validation stays at 64 px. One run each, fp32 on
            # a 2-core AVX2 EPYC: [0.5,0.3,0.2] ended at a val loss of 5.068 (top-5 8.6%), these at 5.054 (9.8%) in
            # 2/3 of the time (BENCHMARKS.md, "Test suite", 2026-12-07)
            "trainer.train_sizes=[16,32,64]",
            "trainer.train_size_fractions=[0.6,0.3,0.1]",
            "trainer.val_every_n_epochs=4",  # one validation, at the end: what the assertions read
        ],
        cwd=tmp_path,
        timeout=900,
    )
    metrics = json.loads((only_run_dir(tmp_path) / "metrics.json").read_text())
    steps = sum(math.ceil(5760 / 64) for _ in metrics["history"])
    assert steps >= 300
    assert abs(metrics["initial_loss"] - math.log(200)) < 0.1
    final = metrics["final"]
    assert final["val/loss"] < math.log(200) - 0.15, final
    assert final["val/top5"] > 0.05, final  # chance is 2.5%


@pytest.mark.slow
def test_the_lr_range_test_suggests_an_lr_on_a_real_shard_at_the_smoke_protocols_settings(real_data, tmp_path):
    """The smoke scale's range test (its model, batch, 200 iterations from 1e-4 to 0.3) on one real shard (~3 min
    of one core in fp32). The full-width model at the defaults takes ~9 minutes: BENCHMARKS.md has its curves."""
    from tinyimagenet_resnet.tasks.protocol_scales import SCALES

    smoke = SCALES["smoke"]
    args = [
        "task=lr_find",
        f"data.path={real_data}",
        "data.train_files=data/train-00000-*",
        *smoke["all"],
        *(a for a in smoke["lr_find"] if not a.startswith("data.train_subset")),  # the shard is smaller
    ]
    run_main(args, cwd=tmp_path, timeout=900)
    [rec] = [json.loads(p.read_text()) for p in tmp_path.glob("outputs/*/*/lr_find.json")]
    assert rec["suggested_lr"] is not None, rec
    assert 1e-5 < rec["suggested_lr"] < 1.0
    low, high = rec["stable_window"]
    assert low <= rec["suggested_lr"] <= high
