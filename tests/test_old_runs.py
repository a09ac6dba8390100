"""Run directories and checkpoints written by version 0.1.0 (tests/fixtures/v0.1.0, made by the code before the
package was split into subpackages) still load: records, summaries, the report, resuming and evaluating."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from tinyimagenet_resnet.artifacts.records import (
    BaselinesRecord,
    EvalMetrics,
    InspectRecord,
    LRFindRecord,
    SplitSummary,
    TrainMetrics,
    read_metrics,
)
from tinyimagenet_resnet.sweeps.rows import collect
from tinyimagenet_resnet.training.checkpoint import CKPT_VERSION, load_checkpoint

from conftest import run_main

OLD = Path(__file__).parent / "fixtures" / "v0.1.0"


def old_run(kind_file: str) -> Path:
    (run,) = [p.parent for p in OLD.glob(f"outputs/*/*/{kind_file}")]
    return run


TRAIN = old_run("checkpoints/last.ckpt").parent
GRID = next(OLD.glob("multirun/*/*"))


def raw(run: Path, name: str) -> dict:
    return json.loads((run / name).read_text())


def test_old_records_read_back_with_the_same_numbers():
    m = TrainMetrics.read(TRAIN)
    old = raw(TRAIN, "metrics.json")
    assert isinstance(read_metrics(TRAIN), TrainMetrics) and m.status == old["status"] == "ok"
    assert m.best.epoch == 1 and m.best.val_accuracy == old["best"]["val/accuracy"]
    assert m.history[0].train_loss == old["history"][0]["train/loss"] and m.final.val_top5 == old["final"]["val/top5"]
    assert m.to_json()["history"] == old["history"]  # the same keys and values when written again

    ev = read_metrics(old_run("per_class_accuracy.csv"))
    assert (
        isinstance(ev, EvalMetrics)
        and ev.test.accuracy == raw(old_run("per_class_accuracy.csv"), "metrics.json")["test"]["accuracy"]
    )
    assert InspectRecord.read(old_run("inspect.json")).parameters > 0
    assert (
        LRFindRecord.read(old_run("lr_find.json")).suggested_lr
        == raw(old_run("lr_find.json"), "lr_find.json")["suggested_lr"]
    )
    assert BaselinesRecord.read(old_run("baselines.json")).val["n"] == 20
    assert SplitSummary.read(TRAIN).fingerprint == raw(TRAIN, "split.json")["fingerprint"]


def test_old_sweep_summarises_as_it_did():
    rows = collect(GRID)
    with open(GRID / "summary.csv") as f:
        old = f.read().splitlines()
    assert len(rows) == 2 and [r.job for r in rows] == [line.split(",")[1] for line in old[1:]]
    for r in rows:
        assert r.best_val_top1 == TrainMetrics.read(GRID / r.job).best.val_accuracy and r.status == "ok"


def test_old_checkpoint_loads_resumes_and_evaluates(tiny_data, tmp_path):
    ckpt = load_checkpoint(TRAIN / "checkpoints" / "last.ckpt")
    assert ckpt.get("version", 1) <= CKPT_VERSION
    run = tmp_path / "outputs" / "old" / TRAIN.name
    shutil.copytree(TRAIN, run)
    run_main([f"ckpt_path={run}/checkpoints/last.ckpt", f"data.path={tiny_data}", "trainer.epochs=2"], cwd=tmp_path)
    m = TrainMetrics.read(run)
    assert m.status == "ok" and m.epochs_run == 2
    assert m.history[0] == TrainMetrics.read(TRAIN).history[0]  # the old epoch is kept as it was
    new = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert new["version"] == CKPT_VERSION and new["config"]["optim"]["name"] == "sgd"

    run_main(["task=evaluate", f"ckpt_path={TRAIN}/checkpoints/last.ckpt", f"data.path={tiny_data}"], cwd=tmp_path)
    (ev,) = [p.parent for p in (tmp_path / "outputs").glob("*/*/per_class_accuracy.csv")]
    assert read_metrics(ev).epoch == 1


@pytest.mark.parametrize("lang", ["en"])
def test_report_builds_from_old_runs(tmp_path, lang):
    args = [
        "tinyimagenet-report",
        "--lang",
        lang,
        "--out",
        str(tmp_path / "r"),
        "--outputs",
        str(tmp_path / "none"),
        "--sweep",
        str(GRID),
    ]
    for kind, run in (
        ("train", TRAIN),
        ("evaluate", old_run("per_class_accuracy.csv")),
        ("inspect", old_run("inspect.json")),
        ("lr_find", old_run("lr_find.json")),
        ("baselines", old_run("baselines.json")),
    ):
        args += ["--run", f"{kind}={run}"]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r" / "REPORT.md").read_text()
    best = TrainMetrics.read(TRAIN).best.val_accuracy
    assert f"Best val top-1 **{best:.3g}**" in md and f"`{TRAIN}`" in md  # 3 significant figures
