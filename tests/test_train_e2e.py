"""The entry point as a user runs it: a subprocess on the tiny parquet fixture."""

import json
import math

import torch
import yaml

from tinyimagenet_resnet.model import build_model

from conftest import TINY_ARGS, event_dir, only_run_dir, popen_main, read_hparams, read_scalars, read_session, run_main

TAGS = {
    "train/loss",
    "train/accuracy",
    "val/loss",
    "val/accuracy",
    "val/top5",
    "val/f1_macro",
    "lr",
    "train/initial_loss",
}


def test_train_run_leaves_a_complete_run_directory(tiny_data, tmp_path):
    run_main(
        [f"data.path={tiny_data}", *TINY_ARGS, "model/blocks=b333", "model/dropout=p03", "optim=sgd", "optim.lr=0.05"],
        cwd=tmp_path,
    )
    run = only_run_dir(tmp_path)
    for name in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "main.log",
        "metrics.json",
        "split.json",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "run_name.txt",
    ):
        assert (run / name).is_file(), name
    cfg = yaml.safe_load((run / ".hydra/config.yaml").read_text())
    assert cfg["model"]["blocks"] == [3, 3, 3] and cfg["model"]["dropout"] == 0.3 and cfg["optim"]["name"] == "sgd"
    assert "4,376,584" not in (run / "main.log").read_text()  # widths overridden: count logged is the real one
    assert "parameters" in (run / "main.log").read_text()

    name = (run / "run_name.txt").read_text().strip()
    assert name == "optim=sgd_lr=0.05_blocks=333_dropout=0.3"
    scalars = read_scalars(run / f"train-{name}")
    assert TAGS <= set(scalars)
    assert [s for s, _ in scalars["val/accuracy"]] == [1, 2]
    assert abs(scalars["train/initial_loss"][0][1] - math.log(200)) < 0.5

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["epochs_run"] == 2
    best = max(h["val/accuracy"] for h in metrics["history"])
    assert metrics["best"]["val/accuracy"] == best
    assert (
        0 <= metrics["final"]["val/f1_macro"] <= 1 and metrics["final"]["val/top5"] >= metrics["final"]["val/accuracy"]
    )

    for ckpt_name in ("best.ckpt", "last.ckpt"):
        ckpt = torch.load(run / "checkpoints" / ckpt_name, map_location="cpu", weights_only=False)
        model = build_model(
            type(
                "C",
                (),
                {"blocks": [3, 3, 3], "widths": [16, 16, 16], "dropout": 0.3, "activation": "relu", "batch_norm": True},
            )(),
            200,
        )
        model.load_state_dict(ckpt["model"])
        assert ckpt["config"]["model"]["blocks"] == [3, 3, 3]
        assert {"model", "optimizer", "epoch", "metrics", "config", "rng"} <= set(ckpt)
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["epoch"] == 2
    best_ckpt = torch.load(run / "checkpoints/best.ckpt", weights_only=False)
    assert best_ckpt["metrics"]["val/accuracy"] == metrics["best"]["val/accuracy"]

    # HParams in the run's own event directory, named after task and run (no stray timestamped sub-folder), with
    # the run's own columns (a single run declares them), booleans as booleans and the end status
    assert event_dir(run) == run / f"train-{name}"
    assert not list(run.rglob("*/*/events.out.tfevents.*"))
    hparams, hmetrics = read_hparams(run / f"train-{name}")
    assert hparams["lr"] == 0.05 and hparams["optim"] == "sgd" and hparams["blocks"] == "333"
    assert hparams["dropout"] == 0.3 and hparams["epochs"] == 2 and hparams["batch_norm"] is True
    assert hparams["status"] == "ok"
    assert abs(hmetrics["val/best_accuracy"] - metrics["best"]["val/accuracy"]) < 1e-6  # float32 in TB
    assert hmetrics["val/epochs_run"] == 2
    _, end, columns = read_session(run / f"train-{name}")
    assert end == "STATUS_SUCCESS" and columns[:4] == ["lr", "weight_decay", "blocks", "dropout"]

    split = json.loads((run / "split.json").read_text())
    assert split["sizes"] == {"train": 72, "val": 20, "test": 8} and len(split["fingerprint"]) == 16


def test_same_seed_same_result(tiny_data, tmp_path):
    finals = []
    for i in range(2):
        cwd = tmp_path / str(i)
        cwd.mkdir()
        run_main([f"data.path={tiny_data}", *TINY_ARGS, "trainer.epochs=1"], cwd=cwd)
        finals.append(json.loads((only_run_dir(cwd) / "metrics.json").read_text())["final"])
    for key in ("train/loss", "val/loss", "val/accuracy"):
        assert finals[0][key] == finals[1][key]


def test_multirun_gives_each_job_its_own_directory(tiny_data, tmp_path):
    proc = run_main(
        [
            "-m",
            f"data.path={tiny_data}",
            *TINY_ARGS,
            "trainer.epochs=1",
            "model/blocks=b222,b333",
            "model/dropout=p01,p03",
        ],
        cwd=tmp_path,
    )
    sweeps = list((tmp_path / "multirun").glob("*/*"))
    assert len(sweeps) == 1, proc.stdout
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1", "2", "3"]
    names = set()
    for job in jobs:
        assert (job / "checkpoints/best.ckpt").is_file() and (job / "metrics.json").is_file()
        name = (job / "run_name.txt").read_text().strip()
        names.add(name)
        assert event_dir(job) == job / name  # TensorBoard shows `<job>/<run name>`
    assert names == {
        "blocks=222_dropout=0.1",
        "blocks=222_dropout=0.3",
        "blocks=333_dropout=0.1",
        "blocks=333_dropout=0.3",
    }


def test_two_runs_started_together_never_share_a_directory(tmp_path):
    args = ["--cfg", "all", "--resolve", "-p", "hydra.run.dir"]
    procs = [popen_main(args, tmp_path) for _ in range(3)]
    outs = {p.communicate()[0].strip() for p in procs}
    assert len(outs) == 3 and all(o.startswith("outputs/") for o in outs), outs
