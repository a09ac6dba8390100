"""Multi-objective sweeps, several seeds per grid point, TensorBoard HParams of a sweep (read back through a real
TensorBoard server) and what optuna-dashboard reads from a study: real Hydra multiruns of the entry point on the tiny
fixture, in subprocesses, with real SQLite Optuna storages."""

import contextlib
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml

from tinyimagenet_resnet.artifacts.summary_row import SummaryRow
from tinyimagenet_resnet.sweeps.seeds import by_config

from conftest import TINY_ARGS, csv_rows, event_dir, read_session, run_main

SWEEP_ARGS = [*TINY_ARGS, "trainer.epochs=1", "data.train_subset=null"]


def only_sweep(cwd: Path) -> Path:
    (sweep,) = [p for p in (cwd / "multirun").glob("2*/*") if p.is_dir()]
    return sweep


def report(cwd: Path) -> str:
    run_main(["--out", "report"], cwd=cwd, module="tinyimagenet_resnet.reporting.report")
    return (cwd / "report" / "REPORT.md").read_text()


def test_pareto_sweep_lists_marks_and_plots_its_front(tiny_data, tmp_path):
    storage = f"sqlite:///{tmp_path}/pareto.db"
    run_main(
        [
            f"data.path={tiny_data}",
            "sweep=optuna_pareto",
            *SWEEP_ARGS,
            "hydra.sweeper.n_trials=4",
            f"hydra.sweeper.storage={storage}",
        ],
        cwd=tmp_path,
    )
    study = optuna.load_study(study_name="tinyimagenet_resnet_pareto", storage=storage)
    assert study.metric_names == ["val_top1", "params_m"]  # optuna-dashboard's names for the two objectives
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    folder = tmp_path / "multirun" / "optuna" / "tinyimagenet_resnet_pareto"
    for t in study.trials:
        assert t.state.name == "COMPLETE"
        metrics = json.loads((Path(t.user_attrs["run_dir"]) / "metrics.json").read_text())
        assert t.values == [metrics["best"]["val/accuracy"], metrics["params"] / 1e6]
        # one user attribute per value, numbers as numbers (sortable in optuna-dashboard)
        assert t.user_attrs["row.best_val_top1"] == t.values[0] and isinstance(t.user_attrs["row.epochs_run"], int)
        assert isinstance(t.user_attrs["row.wall_time_s"], float) and t.user_attrs["row.status"] == "ok"
    results = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    assert results["metric_names"] == ["val_top1", "params_m"]
    front = {t.number for t in study.best_trials}
    assert {s["trial"] for s in results["solutions"]} == front
    table = csv_rows(folder / "summary.csv")
    assert {"val_top1", "params_m", "pareto", "blocks"} <= set(table[0])
    assert {int(r["job"]) for r in table if r["pareto"] == "True"} == front
    assert "Pareto front" in (folder / "summary.md").read_text()
    assert (folder / "pareto.png").stat().st_size > 1000
    text = report(tmp_path)  # the report cites the front
    assert f"Pareto front ({len(front)} of 4 trials" in text and "figures/pareto_tinyimagenet_resnet_pareto.png" in text


def test_seeds_repeat_every_grid_point_and_the_summary_averages_them(tiny_data, tmp_path):
    run_main(["-m", f"data.path={tiny_data}", *SWEEP_ARGS, "model/dropout=p01,p03", "seeds=2", "seed=5"], cwd=tmp_path)
    sweep = only_sweep(tmp_path)
    jobs = [p for p in sweep.iterdir() if (p / "metrics.json").is_file()]
    assert len(jobs) == 4
    seeds = {}
    for job in jobs:
        cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        seeds.setdefault(cfg["model"]["dropout"], []).append(cfg["seed"])
    assert {k: sorted(v) for k, v in seeds.items()} == {0.1: [5, 6], 0.3: [5, 6]}
    groups = csv_rows(sweep / "summary_by_config.csv")
    assert [g["n"] for g in groups] == ["2", "2"]
    for g in groups:
        tops = [json.loads((sweep / j / "metrics.json").read_text())["best"]["val/accuracy"] for j in g["jobs"].split()]
        assert float(g["mean"]) == pytest.approx(statistics.fmean(tops))
        assert float(g["std"]) == pytest.approx(statistics.stdev(tops))
    assert float(groups[0]["mean"]) >= float(groups[1]["mean"])  # ranked by the mean
    md = (sweep / "summary.md").read_text()
    assert "By configuration, over seeds" in md and "`dropout=0.1`" in md
    assert "Mean ± std over seeds per configuration" in report(tmp_path)


def row(job, params, value, seed):
    return SummaryRow(job=job, run_name=str(params), best_val_top1=value, status="ok", params=params, seed=seed)


def test_configurations_whose_intervals_overlap_are_called_indistinguishable():
    close = [
        row(str(i), {"d": "a" if i < 3 else "b"}, v, i) for i, v in enumerate([0.50, 0.52, 0.51, 0.49, 0.51, 0.50])
    ]
    groups = by_config(close)
    assert [g["n"] for g in groups] == [3, 3] and groups[1]["tied_with_best"]
    apart = [
        row(str(i), {"d": "a" if i < 3 else "b"}, v, i) for i, v in enumerate([0.60, 0.61, 0.60, 0.40, 0.41, 0.40])
    ]
    groups = by_config(apart)
    assert groups[0]["configuration"] == "{'d': 'a'}" and not groups[1]["tied_with_best"]
    assert groups[0]["ci95_low"] < groups[0]["mean"] < groups[0]["ci95_high"]


def test_a_best_configuration_with_one_finished_seed_calls_nothing_worse():
    one = [row("0", {"d": "a"}, 0.60, 42), row("1", {"d": "a"}, None, 43)]
    one[1].status = "failed"
    two = [row("2", {"d": "b"}, 0.58, 42), row("3", {"d": "b"}, 0.59, 43)]
    groups = by_config(one + two)
    assert [(g["n"], g["seeds"]) for g in groups] == [(1, "42"), (2, "42 43")]
    assert groups[1]["tied_with_best"] is None  # not "worse": nothing can be said against an n=1 mean


def test_a_single_objective_other_than_top1_is_one_number():
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from tinyimagenet_resnet.tasks.train import objective_values

    state = SimpleNamespace(best=SimpleNamespace(val_accuracy=0.5), history=[SimpleNamespace(epoch_time_s=2.0)] * 2)
    cfg = OmegaConf.create({"optuna": {"objectives": ["epoch_s"]}})
    assert objective_values(cfg, state, 2_000_000) == 2.0
    cfg = OmegaConf.create({"optuna": {"objectives": ["val_top1", "params_m"]}})
    assert objective_values(cfg, state, 2_000_000) == [0.5, 2.0]
    assert objective_values(OmegaConf.create({"optuna": None}), state, 1) == 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tensorboard(logdir: Path, timeout=90):
    """A real TensorBoard server started on `logdir`; yields `query(path, body=None)`, which GETs (or POSTs `body`
    to) one route and waits until the server answers it with data."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port), "--bind_all"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def query(path: str, body: dict | None = None):
        deadline = time.time() + timeout
        while True:
            try:
                data = json.dumps(body).encode() if body is not None else None
                req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
                if data is not None:
                    req.add_header("Content-Type", "application/json")
                    req.add_header("X-TensorBoard-Feature-Flags", "{}")
                with urllib.request.urlopen(req, timeout=10) as r:
                    out = json.loads(r.read())
                if out:  # the server answers before it has read the event files
                    return out
            except OSError:
                pass
            if time.time() > deadline:
                raise AssertionError(f"no answer from TensorBoard on {path}")
            time.sleep(1)

    try:
        yield query
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.xdist_group("timing")  # waits on a clock or a server: the "timing" tests run one at a time
def test_a_grid_reads_well_in_tensorboard(tiny_data, tmp_path):
    run_main(
        ["-m", f"data.path={tiny_data}", *SWEEP_ARGS, "optim.lr=1e-3,3e-2", "model.batch_norm=true,false"],
        cwd=tmp_path,
    )
    sweep = only_sweep(tmp_path)
    with tensorboard(sweep) as query:  # one server, both routes
        runs = query("/data/runs")
        exp = query("/data/plugin/hparams/experiment", {"experimentName": ""})
    jobs = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").is_file())
    names = {f"{j}/{(sweep / j / 'run_name.txt').read_text().strip()}" for j in jobs}
    assert names <= set(runs) and "0/lr=0.001_bn=true" in names  # readable, no tensorboard/ infix
    infos = exp["hparamInfos"]
    # the swept columns first (TensorBoard orders by "differs", then by name, and shows the first few)
    assert [(h["name"], h["differs"]) for h in infos[:4]] == [
        ("batch_norm", True),
        ("lr", True),
        ("status", True),  # shown among the first columns, to filter pruned / failed runs out
        ("activation", False),
    ]
    assert infos[1]["type"] == "DATA_TYPE_FLOAT64" and infos[1]["domainDiscrete"] == [0.001, 0.03]
    assert infos[0]["type"] == "DATA_TYPE_BOOL" and sorted(infos[0]["domainDiscrete"]) == [False, True]
    status = next(h for h in infos if h["name"] == "status")
    assert "pruned" in status["domainDiscrete"] and status["type"] == "DATA_TYPE_STRING"
    assert {m["name"]["tag"] for m in exp["metricInfos"]} == {"val/best_accuracy", "val/best_loss", "val/epochs_run"}
    for j in jobs:
        hparams, end, columns = read_session(event_dir(sweep / j))
        assert end == "STATUS_SUCCESS" and hparams["status"] == "ok" and isinstance(hparams["batch_norm"], bool)
        assert columns is None  # a job of a sweep does not declare its own columns


def test_optuna_in_memory_on_this_app_with_its_search_space_in_tensorboard(tiny_data, tmp_path):
    proc = run_main(
        [
            f"data.path={tiny_data}",
            "sweep=optuna",
            *SWEEP_ARGS,
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.storage=null",
        ],
        cwd=tmp_path,
    )
    assert "hydra.sweeper.storage=null: the study lives in memory" in proc.stdout
    assert not list(tmp_path.rglob("*.db"))
    folder = tmp_path / "multirun" / "optuna" / "tinyimagenet_resnet"
    assert len(csv_rows(folder / "summary.csv")) == 2
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(folder))
    acc.Reload()
    exp = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/experiment"]
    ).experiment
    infos = {h.name: h for h in exp.hparam_infos}
    assert [h.name for h in exp.hparam_infos[:4]] == ["lr", "weight_decay", "blocks", "dropout"]
    assert (infos["lr"].domain_interval.min_value, infos["lr"].domain_interval.max_value) == (1e-5, 1e-1)
    assert sorted(v.string_value for v in infos["blocks"].domain_discrete.values) == ["222", "333"]
    assert infos["dropout"].HasField("domain_interval")
