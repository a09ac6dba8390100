"""The protocol's time estimates: each step's planned work from the configs its jobs compose (the real Hydra
composition of the scale's overrides), the step time from an injected timer, and the revision as steps finish."""

import time
from pathlib import Path

import pytest

from tinyimagenet_resnet import STARTED_AT
from tinyimagenet_resnet.config.loader import compose_config
from tinyimagenet_resnet.sweeps.grid import grid_jobs
from tinyimagenet_resnet.tasks.protocol_scales import SCALES
from tinyimagenet_resnet.tasks.protocol_time import (
    FULL,
    StepWork,
    estimate,
    grid_configs,
    model_cost,
    plan_clock,
    split_sizes,
    subset,
    sweep_params,
    train_work,
    work_of,
)


def configs(name: str, scale: str, handoff=(), composed=None) -> list:
    """Each job's config, as the protocol composes them for their cost (`composed`: the jobs composed)."""
    args = [*SCALES[scale]["all"], *SCALES[scale][name], *handoff]

    def compose(job):
        (composed if composed is not None else []).append(job)
        return compose_config(job)

    return grid_configs(grid_jobs(sweep_params(name), [f"sweep={name}", *args]), compose)


def test_a_grids_work_counts_every_job_at_its_own_models_cost():
    composed = []
    lr_wd = configs("lr_wd", "smoke", ["optim.lr=1e-3,4e-3", "optim.weight_decay=0,1e-4"], composed)
    assert len(lr_wd) == 4 and len(composed) == 1  # LR and weight decay do not change a job's cost
    work = work_of("lr_wd", lr_wd)
    per_job = 25 + 500 / 3 / 64  # 1600 / 64 train steps, one validation of 500 images at a third the cost
    assert work.jobs == 4 and work.steps == pytest.approx(4 * per_job) and work.batch == 64
    composed = []
    bd = configs("blocks_dropout", "smoke", composed=composed)
    assert len(bd) == 4 and len(composed) == 2  # b111, b222 x p01, p03: the blocks change the cost
    cost = model_cost(((1, 1, 1), (16, 32, 64))), model_cost(((2, 2, 2), (16, 32, 64)))
    assert cost[0] < cost[1]
    assert work_of("blocks_dropout", bd).steps == pytest.approx(2 * per_job * (1 + cost[1] / cost[0]))
    # at cpu scale the grid's own YAML values are swept (none on the command line): b222, b333 x p01, p03
    assert sweep_params("blocks_dropout") == {"model/blocks": "b222,b333", "model/dropout": "p01,p03"}
    assert [tuple(c.model.blocks) for c in configs("blocks_dropout", "cpu")] == [(2, 2, 2)] * 2 + [(3, 3, 3)] * 2


def test_the_estimate_times_one_model_and_follows_the_finished_steps():
    calls = []

    def timer(model, batch):
        calls.append((model, batch))
        return 0.5

    small, big = ((2, 2, 2), (16, 32, 64)), ((3, 3, 3), (16, 32, 64))
    works = {
        "inspect": StepWork(0, small, 64, fixed_s=30),
        "overfit": StepWork(100, big, 32),
        "lr_find": StepWork(200, small, 64),
        "train": StepWork(400, small, 64),
    }
    clock = estimate(works, 2.0, timer)
    assert calls == [(small, 64)]  # the model of the step with the most work, timed once
    overfit = 100 * 0.5 * model_cost(big) / model_cost(small) / 2  # another model at half the batch
    assert clock.estimates == pytest.approx({"inspect": 32.0, "overfit": overfit + 2, "lr_find": 102.0, "train": 202.0})
    clock.actual["inspect"] = 90.0  # a slow first decode: fixed seconds, no train step to learn from
    assert clock.of("train") == pytest.approx(202.0)
    clock.actual["lr_find"] = 202.0  # its train steps took twice the timed ones
    assert clock.of("train") == pytest.approx(2 * 200 + 2) and clock.left(["overfit", "train"]) == pytest.approx(
        2 * overfit + 2 + 402
    )
    clock.actual["overfit"] = 1e6  # a ratio is kept within [1/3, 3]
    assert clock.of("train") == pytest.approx(3 * 200 + 2)


def test_a_forked_steps_start_up_leaves_out_the_imports_the_warm_server_did():
    def args(name):
        return [*SCALES["smoke"]["all"], *SCALES["smoke"][name]]

    calls = []

    def warm():  # the server's import seconds, asked for once the steps are composed
        calls.append(1)
        return 1e6

    clock = plan_clock(["baselines"], args, "cpu", "fp32", warm_imports_s=warm)
    assert calls == [1] and clock.fixed_s == {"baselines": pytest.approx(2.0 + 1.0)}  # at least 1 s a step
    own = time.time() - STARTED_AT  # this process's start-up so far, as the protocol's own
    clock = plan_clock(["baselines"], args, "cpu", "fp32", warm_imports_s=lambda: own - 3.0)
    assert clock.fixed_s["baselines"] == pytest.approx(2.0 + 3.0, abs=0.5)
    clock = plan_clock(["baselines"], args, "cpu", "fp32")  # new interpreters: the whole start-up, at least 2 s
    assert clock.fixed_s["baselines"] >= 2.0 + max(2.0, own)


def split_lengths(data_path, *overrides) -> dict[str, int]:
    """The splits the real datamodule carves from the labels of the parquet files the config reads (no image
    decoded)."""
    import pyarrow.parquet as pq

    from tinyimagenet_resnet.data.source import split_files, split_patterns
    from tinyimagenet_resnet.data.splits import make_splits

    cfg = compose_config([f"data.path={data_path}", *overrides])
    files = split_files(Path(data_path).resolve(), split_patterns(cfg.data.train_files, cfg.data.val_files))
    labels = {s: pq.read_table(f, columns=["label"]).column("label").to_numpy() for s, f in files.items()}
    splits = make_splits(labels["train"], labels["valid"], cfg.data, int(cfg.seed))
    return {name: len(split) for name, split in splits.items()}


def test_a_local_copy_is_estimated_at_its_own_size_not_tiny_imagenets(tiny_data, monkeypatch):
    # the 100-image fixture was estimated as 90k training images: "about 11 h 21 min" for a 90-second protocol
    cfg = compose_config([f"data.path={tiny_data}", "data.batch_size=16", "trainer.epochs=2"])
    assert split_sizes(cfg.data) == split_lengths(tiny_data) == {"train": 72, "val": 20, "test": 8}
    train, val = train_work(cfg)
    assert train == 2 * 5  # ceil(72 / 16) steps an epoch
    for args in (["data.test_fraction=0.25"], [f"data.train_files={tiny_data}/data/train-*"]):  # an absolute glob
        assert split_sizes(compose_config([f"data.path={tiny_data}", *args]).data) == split_lengths(tiny_data, *args)
    monkeypatch.chdir(tiny_data.parent)  # a relative data.path, read from the working folder as the steps read it
    assert split_sizes(compose_config([f"data.path={tiny_data.name}"]).data)["train"] == 72
    cfg = compose_config([f"data.path={tiny_data}", "data.train_subset=1000", "data.val_subset=5"])
    assert subset(cfg, "train_subset", "train") == 72 and subset(cfg, "val_subset", "val") == 5
    # the hub dataset, and a folder whose files cannot be read (the step then says why): Tiny ImageNet's sizes
    assert split_sizes(compose_config(["data.path=null"]).data) == FULL
    assert split_sizes(compose_config([f"data.path={tiny_data.parent / 'nowhere'}"]).data) == FULL


def test_a_one_shard_copy_is_estimated_at_one_shard(real_data):
    args = ["data.train_files=data/train-00000-*"]
    sizes = split_sizes(compose_config([f"data.path={real_data}", *args]).data)
    assert sizes == split_lengths(real_data, *args)
    assert sizes["train"] < FULL["train"] / 10  # 5,760 of a shard's 6,400, not 90,000
