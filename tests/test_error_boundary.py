"""One error boundary for everything the entry point and the console commands run: values with no meaning
(infinities, NaN), a grid of no job, storages and trackers that cannot be opened, the protocol's own keys, and
errors nobody foresaw. Each is one line, a non-zero exit, no traceback, and nothing created."""

import socket
import sqlite3
import subprocess

import pytest
from test_faults import injected

from conftest import TINY_ARGS, one_error_line, refusal, run_main

SMALL = [*TINY_ARGS, "trainer.epochs=1", "trainer.progress_bar=false"]
OPTUNA = ["sweep=optuna", "data.train_subset=null", "optuna.pruner=none", "hydra.sweeper.n_trials=1"]

NOT_FINITE = [
    (["optim.lr=inf"], "optim.lr=inf: allowed a number > 0, finite (not inf or nan)"),
    (["optim.weight_decay=nan"], "optim.weight_decay=nan"),
    (["data.mean=[0.5,inf,0.5]"], "data.mean=[0.5, inf, 0.5]"),
    (["trainer.label_smoothing=-inf"], "trainer.label_smoothing=-inf"),
    (["data.augment.color_jitter.brightness=inf"], "brightness=inf"),
]


@pytest.mark.parametrize("args,fragment", NOT_FINITE, ids=[a[0] for a, _ in NOT_FINITE])
def test_a_value_that_is_not_finite_is_refused_before_any_work(args, fragment, tiny_data, tmp_path, monkeypatch):
    line = refusal([f"data.path={tiny_data}", *args], tmp_path, monkeypatch)
    assert fragment in line, line


def test_an_infinite_lr_in_a_grid_is_refused_before_its_first_job(tiny_data, tmp_path):
    proc = run_main(["-m", f"data.path={tiny_data}", *SMALL, "optim.lr=inf,1e-3"], cwd=tmp_path, check=False)
    one_error_line(proc, "optim.lr=inf", "finite")
    assert not (tmp_path / "multirun").exists()


EMPTY = [("optim.lr=range(0)", "no job"), ("optim.lr=range(5,1)", "no job"), ("model.dropout=choice()", "empty choice")]


@pytest.mark.parametrize("sweep,why", EMPTY, ids=[s for s, _ in EMPTY])
def test_a_grid_of_no_job_is_one_line(sweep, why, tiny_data, tmp_path, monkeypatch):
    line = refusal(["-m", f"data.path={tiny_data}", *SMALL, sweep], tmp_path, monkeypatch)
    assert line.startswith(f"error: {sweep}: ") and why in line, line


def test_a_grid_of_no_job_exits_2_and_leaves_nothing(tiny_data, tmp_path):
    proc = run_main(["-m", f"data.path={tiny_data}", *SMALL, "optim.lr=range(0)"], cwd=tmp_path, check=False)
    one_error_line(proc, "optim.lr=range(0)", "no job")
    assert not (tmp_path / "multirun").exists()


def test_the_protocols_own_keys_are_one_line_also_where_they_make_a_multirun(tiny_data, tmp_path):
    for clash in ("sweep=lr_wd", "experiment=cpu", "resume=true"):
        proc = run_main(["task=protocol", "protocol.scale=smoke", f"data.path={tiny_data}", clash], tmp_path, False)
        one_error_line(proc, clash, "task=protocol chooses")
    assert not (tmp_path / "protocol").exists() and not (tmp_path / "multirun").exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again once the socket is


def storages(tmp_path):
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("my notes, not a database\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    port = closed_port()
    return {
        "not a database": (f"sqlite:///{not_a_db}", ["is not an SQLite database"]),
        "a folder that cannot be made": (f"sqlite:///{a_file}/study.db", ["hydra.sweeper.storage", "a-file"]),
        "no server": (f"postgresql://u@127.0.0.1:{port}/db", ["cannot connect", f"127.0.0.1:{port}"]),
        "no driver": (f"mysql://u@127.0.0.1:{port}/db", ["database driver is not installed"]),
        "not a journal": (f"journal:{not_a_db}", ["is not an Optuna journal"]),
    }


@pytest.mark.parametrize(
    "case", ["not a database", "a folder that cannot be made", "no server", "no driver", "not a journal"]
)
def test_a_storage_that_cannot_be_opened_is_one_line_before_any_trial(case, tiny_data, tmp_path):
    url, fragments = storages(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_main([f"data.path={tiny_data}", *SMALL, *OPTUNA, f"hydra.sweeper.storage={url}"], tmp_path, False)
    one_error_line(proc, *fragments, code=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no multirun/, no study file


def trackers(tmp_path):
    damaged = tmp_path / "mlflow.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)  # a header and nothing behind it
    port = closed_port()
    return {
        "a file store": (f"file://{tmp_path}/mlruns", ["file stores", "sqlite:///"]),
        "a plain folder": (str(tmp_path / "mlruns"), ["file stores"]),
        "an unknown scheme": ("ftp://example.org/mlflow", ["does not know the scheme 'ftp'"]),
        "no server": (f"http://127.0.0.1:{port}", ["the server does not answer", "mlflow server"]),
        "a damaged database": (f"sqlite:///{damaged}", ["mlflow.db", "unreadable"]),
    }


@pytest.mark.parametrize(
    "case", ["a file store", "a plain folder", "an unknown scheme", "no server", "a damaged database"]
)
def test_a_tracking_uri_mlflow_rejects_is_one_line_before_any_work(case, tiny_data, tmp_path):
    pytest.importorskip("mlflow")
    uri, fragments = trackers(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [f"data.path={tiny_data}", *SMALL, "logger=mlflow", f"logger.mlflow.tracking_uri={uri}"]
    proc = run_main(args, cwd=tmp_path, check=False)
    one_error_line(proc, "logger.mlflow.tracking_uri=", *fragments, code=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no outputs/, no mlruns/


def test_the_damaged_database_case_is_really_unreadable_by_sqlite(tmp_path):
    damaged = tmp_path / "mlflow.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(damaged).execute("SELECT count(*) FROM sqlite_master").fetchone()


BUG = (
    "import tinyimagenet_resnet.training.metrics as m\n"
    "def broken(self):\n"
    "    raise ZeroDivisionError('a bug nobody foresaw')\n"
    "m.ClassificationMeter.compute = broken"
)


def test_an_unexpected_error_is_one_line_naming_the_log_that_holds_its_traceback(tiny_data, tmp_path):
    proc = injected(BUG, [f"data.path={tiny_data}", *SMALL], tmp_path)
    line = one_error_line(proc, "unexpected ZeroDivisionError during task=train", "a bug nobody foresaw", code=1)
    assert "HYDRA_FULL_ERROR=1" in line and "in engine.py:" in line and "(validate)" in line  # where it surfaced
    log = line.split("the traceback is in ")[1].split(" (HYDRA_FULL_ERROR")[0]
    text = open(log, encoding="utf-8").read()
    assert "Traceback (most recent call last)" in text and "ZeroDivisionError: a bug nobody foresaw" in text
    assert log.endswith("main.log")


def test_hydra_full_error_shows_the_unexpected_traceback(tiny_data, tmp_path):
    launcher = f"import os; os.environ['HYDRA_FULL_ERROR'] = '1'\n{BUG}"
    proc = injected(launcher, [f"data.path={tiny_data}", *SMALL], tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "a bug nobody foresaw" in proc.stderr


def test_a_console_command_s_unexpected_error_is_one_line_too(tmp_path):
    code = (
        "import sys, tinyimagenet_resnet.sweeps.summary as s\n"
        "def broken(*a, **k):\n"
        "    raise KeyError('a bug nobody foresaw')\n"
        "s.write_summary = broken\n"
        f"sys.argv = ['tinyimagenet-summarize', {str(tmp_path)!r}]\n"
        "from tinyimagenet_resnet.cli import summarize\n"
        "summarize()"
    )
    proc = subprocess.run(["python", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    line = one_error_line(proc, "unexpected KeyError during summary", "the traceback is in", code=1)
    log = line.split("the traceback is in ")[1].split(" (HYDRA_FULL_ERROR")[0]
    assert "KeyError: 'a bug nobody foresaw'" in open(log, encoding="utf-8").read()
