"""Reliability: one-line errors, exact resume after SIGKILL, atomic checkpoints, NaN guard, signals."""

import json
import os
import signal
import time

import pytest
import torch

from tinyimagenet_resnet.errors import CheckpointError
from tinyimagenet_resnet.training.checkpoint import atomic_save, load_checkpoint

from conftest import (
    TINY_ARGS,
    one_error_line,
    only_run_dir,
    popen_main,
    read_scalars,
    refusal,
    run_main,
    sigkill_after_epoch_1_and_resume,
    wait_for_epoch,
)

BAD_INPUTS = [
    (["model.blocks=[2,2]"], ["model.blocks=[2, 2]", "three positive integers"]),
    (["model.blocks=[2,0,2]"], ["model.blocks=[2, 0, 2]"]),
    (["model.dropout=1.0"], ["model.dropout=1.0", "[0, 1)"]),
    (["optim.lr=0"], ["optim.lr=0", "> 0"]),
    (["optim.weight_decay=-0.1"], ["optim.weight_decay=-0.1", ">= 0"]),
    (["model.activation=swish"], ["model.activation='swish'", "relu|gelu|selu|leaky_relu|elu"]),
    (["optim=rmsprop"], ["optim='rmsprop'", "adam|adamw|sgd"]),
    (["optim.name=rmsprop"], ["optim.name='rmsprop'"]),
    (["data.batch_size=0"], ["data.batch_size=0", ">= 1"]),
    (["trainer.epochs=0"], ["trainer.epochs=0", ">= 1"]),
]


@pytest.mark.parametrize("args,fragments", BAD_INPUTS, ids=[a[0] for a, _ in BAD_INPUTS])
def test_bad_config_fails_fast_with_one_line_and_leaves_nothing(args, fragments, tmp_path, tiny_data, monkeypatch):
    line = refusal([f"data.path={tiny_data}", *args], tmp_path, monkeypatch)  # the entry point's own pre-flight
    for fragment in fragments:
        assert fragment in line, line
    assert not list(tmp_path.glob("outputs/*/*")), "a failed run must leave no half-written run directory"


def test_a_config_refused_by_the_entry_point_is_one_line_exit_2_and_leaves_nothing(tmp_path, tiny_data):
    args, fragments = BAD_INPUTS[0]
    proc = run_main([f"data.path={tiny_data}", *args], cwd=tmp_path, check=False)
    one_error_line(proc, *fragments)
    assert not list(tmp_path.glob("outputs/*/*")), "a failed run must leave no half-written run directory"


def test_data_problems_give_one_line(tmp_path, tiny_data):
    one_error_line(
        run_main(["data.path=/no/such/folder"], cwd=tmp_path, check=False),
        "data.path='/no/such/folder'",
        "no such folder",
    )
    one_error_line(
        run_main([f"data.path={tiny_data}", "data.train_subset=1000"], cwd=tmp_path, check=False),
        "data.train_subset=1000",
        "[4, 72]",
    )
    one_error_line(
        run_main([f"data.path={tiny_data}", "data.train_subset=3"], cwd=tmp_path, check=False), "data.train_subset=3"
    )
    hub = run_main([], cwd=tmp_path, check=False, env={"HF_HUB_OFFLINE": "1"})
    one_error_line(hub, "zh-plus/tiny-imagenet", "data.path=")
    assert not list(tmp_path.glob("outputs/*/*"))


@pytest.mark.parametrize(
    "args",
    [["data.pipeline=fast"], ["data.pipeline=reference", "data.num_workers=1"], ["task=inspect"]],
    ids=["fast", "reference-worker", "inspect"],
)
def test_a_corrupt_image_stops_the_run_naming_split_and_index(args, tmp_path):
    from tiny_dataset import write_tiny_imagenet

    data = write_tiny_imagenet(tmp_path / "corrupt", n_train=10, n_val=2, corrupt_train_index=5)
    proc = run_main([f"data.path={data}", "seed=1", *TINY_ARGS, *args], cwd=tmp_path, check=False)
    line = one_error_line(proc, "corrupt image in split 'train' at index 5")
    assert line.startswith("error: corrupt image")


def test_full_error_env_still_shows_the_trace(tmp_path):
    proc = run_main(["model.dropout=2"], cwd=tmp_path, check=False, env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_bad_checkpoints_give_one_line(tmp_path, tiny_data, trained_run):
    base = [f"data.path={tiny_data}", *TINY_ARGS]
    one_error_line(
        run_main([*base, "ckpt_path=/no/such.ckpt"], cwd=tmp_path, check=False),
        "ckpt_path='/no/such.ckpt'",
        "no such file",
    )
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes((trained_run / "checkpoints/last.ckpt").read_bytes()[:5000])
    one_error_line(
        run_main([*base, f"ckpt_path={truncated}"], cwd=tmp_path, check=False), "unreadable checkpoint (truncated"
    )
    other = run_main(  # the session's trained run is a [3,3,3]
        [*base, "model/blocks=b222", f"ckpt_path={trained_run}/checkpoints/last.ckpt"], cwd=tmp_path, check=False
    )
    one_error_line(other, "different architecture", "blocks=[2, 2, 2]", "blocks=[3, 3, 3]")
    with pytest.raises(CheckpointError, match="not a tinyimagenet_resnet checkpoint"):
        torch.save({"weights": 1}, tmp_path / "foreign.ckpt")
        load_checkpoint(tmp_path / "foreign.ckpt")


def test_atomic_save_survives_a_crash_between_write_and_rename(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_save({"epoch": 1, "w": torch.arange(10)}, path)

    def crash(*_a, **_k):
        raise KeyboardInterrupt("power cut between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"epoch": 2, "w": torch.arange(10) * 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["epoch"] == 1  # the previous checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left behind


def test_atomic_save_survives_a_crash_while_writing(tmp_path, monkeypatch):
    path = tmp_path / "best.ckpt"
    atomic_save({"epoch": 1}, path)
    real_save = torch.save

    def half_write(obj, f, *a, **k):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_write)
    with pytest.raises(OSError):
        atomic_save({"epoch": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path, weights_only=False)["epoch"] == 1
    assert len(list(tmp_path.iterdir())) == 1


def test_nan_guard_stops_at_the_step_and_records_diverged(tmp_path, tiny_data):
    proc = run_main([f"data.path={tiny_data}", *TINY_ARGS, "optim=sgd", "optim.lr=1e12"], cwd=tmp_path, check=False)
    assert proc.returncode == 3
    out = proc.stdout + proc.stderr
    assert "training diverged: non-finite loss" in out and "at global step" in out and "Traceback" not in out
    metrics = json.loads((only_run_dir(tmp_path) / "metrics.json").read_text())
    assert metrics["status"] == "diverged"


RESUME_ARGS = ["model.widths=[16,32,64]", "data.batch_size=8", "data.num_workers=0", "trainer.epochs=4"]


def test_sigkilled_run_resumes_to_identical_weights_and_metrics(tmp_path, tiny_data):
    args = [f"data.path={tiny_data}", *RESUME_ARGS]
    clean_run, run, partial, killed = sigkill_after_epoch_1_and_resume(args, tmp_path)
    assert partial["status"] == "running" and partial["epochs_run"] < 4
    assert only_run_dir(killed) == run  # continued in its own directory

    a = json.loads((clean_run / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    assert b["status"] == "ok" and b["epochs_run"] == 4
    for ha, hb in zip(a["history"], b["history"], strict=True):
        for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/f1_macro"):
            assert ha[key] == hb[key], (key, ha, hb)
    assert a["best"] == b["best"]
    wa = torch.load(clean_run / "checkpoints/last.ckpt", weights_only=False)["model"]
    wb = torch.load(run / "checkpoints/last.ckpt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # TensorBoard continues at the right step: one value per epoch, no duplicates from the killed attempt
    name = (run / "run_name.txt").read_text().strip()
    assert [s for s, _ in read_scalars(run / f"train-{name}")["val/accuracy"]] == [1, 2, 3, 4]
    assert (run / ".hydra" / "config.yaml").is_file() and list((run / ".hydra").glob("resume-*/overrides.yaml"))


def test_sigterm_writes_last_ckpt_and_prints_the_resume_command(tmp_path, tiny_data):
    args = [f"data.path={tiny_data}", *RESUME_ARGS, "trainer.epochs=50"]
    proc = popen_main(args, tmp_path)
    run = wait_for_epoch(tmp_path, 1, proc)
    time.sleep(0.2)  # land mid-epoch
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert f"ckpt_path={run}/checkpoints/last.ckpt" in err
    ckpt = torch.load(run / "checkpoints/last.ckpt", weights_only=False)
    assert ckpt["state"]["status"] in ("running", "interrupted")
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    # the printed command continues the run (shortened to one more epoch)
    run_main(
        [f"ckpt_path={run}/checkpoints/last.ckpt", f"data.path={tiny_data}", f"trainer.epochs={ckpt['epoch'] + 1}"],
        cwd=tmp_path,
    )
    done = json.loads((run / "metrics.json").read_text())
    assert done["status"] == "ok" and done["epochs_run"] == ckpt["epoch"] + 1


def test_resume_true_continues_the_latest_matching_run(tmp_path, tiny_data):
    args = [f"data.path={tiny_data}", *RESUME_ARGS]
    proc = popen_main(args, tmp_path)
    run = wait_for_epoch(tmp_path, 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_main([*args, "resume=true"], cwd=tmp_path)
    assert only_run_dir(tmp_path) == run
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 4
    # other overrides: no interrupted run matches them, so resume=true starts a new run
    fresh = run_main([*args, "optim.lr=0.5", "resume=true"], cwd=tmp_path)
    assert "starting a new run" in fresh.stdout + fresh.stderr
    assert len(list(tmp_path.glob("outputs/*/*/metrics.json"))) == 2
