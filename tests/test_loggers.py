"""The `logger` group (TensorBoard, CSV, MLflow) read back through each tool's own reader, and the package on a
simulated Windows (no `fcntl`, no `resource`) under a path with a space and non-ASCII characters: real runs of the
entry point in subprocesses on the tiny fixture."""

import csv
import json
import os
from pathlib import Path

import pytest

from conftest import TINY_ARGS, only_run_dir, run_main

ARGS = [*TINY_ARGS, "trainer.epochs=2"]


def hidden(tmp_path: Path, *modules: str) -> dict:
    """An environment whose Python cannot import `modules` (a sitecustomize on PYTHONPATH blocks them)."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules))
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)}


def history(run: Path) -> list[dict]:
    return json.loads((run / "metrics.json").read_text())["history"]


def test_csv_beside_tensorboard_has_the_same_values(tiny_data, tmp_path):
    run_main([f"data.path={tiny_data}", *ARGS, "logger=[tensorboard,csv]"], cwd=tmp_path)
    run = only_run_dir(tmp_path)
    assert list((run / "train-default").glob("events.out.tfevents.*"))  # TensorBoard still there
    with open(run / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    val = [(int(r["step"]), float(r["value"])) for r in rows if r["tag"] == "val/accuracy"]
    assert val == [(h["epoch"], h["val/accuracy"]) for h in history(run)]
    summary = json.loads((run / "csv" / "hparams.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert summary["hparams"]["lr"] == metrics["hparams"]["lr"] and summary["status"] == "ok"
    assert summary["metrics"]["val/best_accuracy"] == metrics["best"]["val/accuracy"]
    assert Path(summary["best_checkpoint"]) == (run / "checkpoints" / "best.ckpt").resolve()


def test_csv_alone_writes_no_tensorboard_events(tiny_data, tmp_path):
    run_main([f"data.path={tiny_data}", *ARGS, "logger=csv"], cwd=tmp_path)
    run = only_run_dir(tmp_path)
    assert not list(run.rglob("events.out.tfevents.*")) and (run / "csv" / "metrics.csv").is_file()
    run_main(
        ["-m", f"data.path={tiny_data}", *ARGS, "trainer.epochs=1", "logger=csv", "optim.lr=0.001,0.03"], cwd=tmp_path
    )
    assert not list((tmp_path / "multirun").rglob("events.out.tfevents.*"))  # nor at the sweep level


@pytest.fixture
def mlflow():
    return pytest.importorskip("mlflow", reason='the mlflow extra is not installed (pip install -e ".[mlflow]")')


def test_mlflow_run_has_the_metrics_params_and_checkpoint(tiny_data, tmp_path, mlflow):
    run_main([f"data.path={tiny_data}", *ARGS, "logger=mlflow", "optim.lr=0.003"], cwd=tmp_path)
    run = only_run_dir(tmp_path)
    client = mlflow.tracking.MlflowClient(f"sqlite:///{run.parent / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("tinyimagenet_resnet").experiment_id])
    assert found.info.run_name == "lr=0.003" and found.info.status == "FINISHED"
    acc = [(m.step, m.value) for m in client.get_metric_history(found.info.run_id, "val/accuracy")]
    assert sorted(acc) == [(h["epoch"], h["val/accuracy"]) for h in history(run)]
    assert found.data.params["lr"] == "0.003" and found.data.params["blocks"] == "222"
    assert found.data.params["data.num_workers"] == "0"  # an int override stays an int (not "0.0")
    assert (
        found.data.metrics["val/best_accuracy"]
        == json.loads((run / "metrics.json").read_text())["best"]["val/accuracy"]
    )
    assert Path(found.data.tags["tir.best_checkpoint"]) == (run / "checkpoints" / "best.ckpt").resolve()
    assert not list(run.rglob("events.out.tfevents.*")) and not (tmp_path / "mlruns").exists()


def test_a_grid_is_one_mlflow_parent_with_a_child_per_job(tiny_data, tmp_path, mlflow):
    run_main(["-m", f"data.path={tiny_data}", *ARGS, "logger=mlflow", "optim.lr=0.001,0.03"], cwd=tmp_path)
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    client = mlflow.tracking.MlflowClient(f"sqlite:///{sweep / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tinyimagenet_resnet").experiment_id])
    parent = json.loads((sweep / "mlflow_parent.json").read_text())["run_id"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
    assert len(runs) == 3 and len(children) == 2
    assert sorted(r.data.params["lr"] for r in children) == ["0.001", "0.03"]
    for r in children:
        job = Path(r.data.tags["tir.run_dir"])
        assert (
            r.data.metrics["val/best_accuracy"]
            == json.loads((job / "metrics.json").read_text())["best"]["val/accuracy"]
        )


@pytest.mark.parametrize("multirun", [False, True])
def test_a_missing_extra_is_one_line_that_names_it(tiny_data, tmp_path, multirun):
    args = ["-m", "optim.lr=0.001,0.03"] if multirun else []
    proc = run_main(
        [*args, f"data.path={tiny_data}", *ARGS, "logger=mlflow"],
        cwd=tmp_path,
        check=False,
        env=hidden(tmp_path, "mlflow"),
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert 'pip install -e ".[mlflow]"' in line


def test_simulated_windows_under_a_path_with_a_space_and_accents(tiny_data, tmp_path):
    """No POSIX-only module on any path a user runs: a training, a 2-job grid and a 2-trial Optuna sweep with
    `fcntl` and `resource` unimportable, with the data, the outputs, the cache and the Optuna storage all under a
    folder named with a space and non-ASCII characters. (Its own cache: without fcntl, filelock falls back to lock
    files whose mere presence means "held", and a POSIX run leaves its lock files behind, as flock allows.)"""
    import shutil

    env = hidden(tmp_path, "fcntl", "resource")
    cwd = tmp_path / "mes expériences ü"
    data = cwd / "données tiny"
    shutil.copytree(tiny_data, data)
    # Hydra's override grammar needs quotes around a value with non-ASCII characters ("data.path='...'")
    args = [f"data.path='{data}'", f"data.cache_dir='{cwd / 'cache é'}'", *ARGS]
    run_main(args, cwd=cwd, env=env)
    run = only_run_dir(cwd)
    assert json.loads((run / "metrics.json").read_text())["status"] == "ok"
    assert list((cwd / "cache é").glob("*.npy"))
    run_main(["-m", *args, "trainer.epochs=1", "optim.lr=0.001,0.03"], cwd=cwd, env=env)
    (sweep,) = (cwd / "multirun").glob("2*/*")
    with open(sweep / "summary.csv") as f:
        assert {r["status"] for r in csv.DictReader(f)} == {"ok"}
    run_main(
        [*args, "sweep=optuna", "trainer.epochs=1", "data.train_subset=null", "hydra.sweeper.n_trials=2"],
        cwd=cwd,
        env=env,
    )
    assert (cwd / "multirun" / "optuna" / "tinyimagenet_resnet.db").is_file()
    with open(cwd / "multirun" / "optuna" / "tinyimagenet_resnet" / "summary.csv") as f:
        assert len(list(csv.DictReader(f))) == 2


def test_a_key_of_a_tracker_not_chosen_says_how_to_choose_it(tmp_path):
    proc = run_main(["logger.mlflow.experiment=mine"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert line == (
        "error: logger.mlflow.experiment: logger.mlflow is not part of this command's config; choose it first with "
        "logger=mlflow (or several: logger=[tensorboard,mlflow])"
    )
