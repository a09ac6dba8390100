"""Sweeps through the real entry point: Hydra multiruns in subprocesses, a real SQLite Optuna storage."""

import json
import signal
import time
from pathlib import Path

import optuna
import yaml

from conftest import TINY_ARGS, event_dir, popen_main, read_session, run_main, summary_rows

SWEEP_ARGS = [*TINY_ARGS, "trainer.epochs=1", "data.train_subset=null"]


def sweep_dirs(cwd: Path):
    return sorted(p for p in (cwd / "multirun").glob("2*/*") if p.is_dir())


def jobs(sweep: Path):
    return sorted((p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def test_lr_wd_grid_without_dash_m_and_a_correct_summary(tiny_data, tmp_path):
    run_main(
        [f"data.path={tiny_data}", "sweep=lr_wd", *SWEEP_ARGS, "optim.lr=1e-3,3e-2", "optim.weight_decay=0,1e-4"],
        cwd=tmp_path,
    )
    (sweep,) = sweep_dirs(tmp_path)
    assert len(jobs(sweep)) == 4
    rows = summary_rows(sweep)
    assert len(rows) == 4
    tops = [float(r["best_val_top1"]) for r in rows]
    assert tops == sorted(tops, reverse=True)  # best first
    for r in rows:
        metrics = json.loads((sweep / r["job"] / "metrics.json").read_text())
        assert float(r["best_val_top1"]) == metrics["best"]["val/accuracy"]
        assert float(r["val_loss_at_best"]) == metrics["best"]["val/loss"]
        assert r["status"] == "ok" and r["epochs_run"] == "1"
        assert r["run_name"] == f"lr={float(r['lr']):.3g}_wd={float(r['weight_decay']):.3g}"
    assert {(float(r["lr"]), float(r["weight_decay"])) for r in rows} == {
        (1e-3, 0),
        (1e-3, 1e-4),
        (3e-2, 0),
        (3e-2, 1e-4),
    }
    md = (sweep / "summary.md").read_text()
    assert "| rank | job | run_name" in md and f"**Best:** `{rows[0]['run_name']}`" in md
    # the sweep's own overrides (both values of each swept key), then the best job's alone
    assert "The sweep's overrides: `" in md and "optim.lr=1e-3,3e-2 optim.weight_decay=0,1e-4" in md
    best = yaml.safe_load((sweep / rows[0]["job"] / ".hydra" / "overrides.yaml").read_text())
    assert f"The best job's own overrides (to run it alone): `{' '.join(best)}`" in md

    # the same table can be rebuilt for any sweep directory
    (sweep / "summary.md").unlink()
    (sweep / "summary.csv").unlink()
    out = run_main([sweep], cwd=tmp_path, module="tinyimagenet_resnet.sweeps.summary").stdout
    assert "4 runs" in out and summary_rows(sweep) == rows


def test_blocks_dropout_grid(tiny_data, tmp_path):
    run_main([f"data.path={tiny_data}", "sweep=blocks_dropout", *SWEEP_ARGS], cwd=tmp_path)
    (sweep,) = sweep_dirs(tmp_path)
    rows = summary_rows(sweep)
    assert {(r["blocks"], r["dropout"]) for r in rows} == {
        ("222", "0.1"),
        ("222", "0.3"),
        ("333", "0.1"),
        ("333", "0.3"),
    }
    assert {r["run_name"] for r in rows} == {
        "blocks=222_dropout=0.1",
        "blocks=222_dropout=0.3",
        "blocks=333_dropout=0.1",
        "blocks=333_dropout=0.3",
    }


def test_summarize_an_interrupted_sweep(tiny_data, tmp_path):
    run_main(["-m", f"data.path={tiny_data}", *SWEEP_ARGS, "model/dropout=p00,p01"], cwd=tmp_path)
    (sweep,) = sweep_dirs(tmp_path)
    (sweep / "1" / "metrics.json").unlink()  # as if job 1 had been killed before its first epoch ended
    run_main([sweep], cwd=tmp_path, module="tinyimagenet_resnet.sweeps.summary")
    rows = summary_rows(sweep)
    assert [r["status"] for r in rows] == ["ok", "failed"] and rows[1]["job"] == "1"
    bad = run_main([tmp_path / "nope"], cwd=tmp_path, check=False, module="tinyimagenet_resnet.sweeps.summary")
    assert bad.returncode == 2 and bad.stderr.startswith("error: sweep_dir=")


def study_dir(cwd: Path) -> Path:
    """An Optuna sweep writes into one folder per study, whichever worker or re-run ran the trial."""
    return cwd / "multirun" / "optuna" / "tinyimagenet_resnet"


def load_study(cwd: Path):
    return optuna.load_study(
        study_name="tinyimagenet_resnet", storage=f"sqlite:///{cwd}/multirun/optuna/tinyimagenet_resnet.db"
    )


def test_optuna_sweep_keeps_its_study_and_does_not_rerun_a_finished_one(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", "sweep=optuna", *SWEEP_ARGS, "trainer.epochs=2", "hydra.sweeper.n_trials=3"]
    run_main(args, cwd=tmp_path)
    assert (tmp_path / "multirun/optuna/tinyimagenet_resnet.db").is_file()
    study = load_study(tmp_path)
    assert len(study.trials) == 3 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    sweep = study_dir(tmp_path)
    assert not sweep_dirs(tmp_path)  # no dated folder beside it
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == study.best_value and results["best_params"] == study.best_params
    assert set(results["best_params"]) == {"optim.lr", "optim.weight_decay", "model/blocks", "model.dropout"}
    assert len(summary_rows(sweep)) == 3
    # each trial's job reported one intermediate value per epoch to its own trial
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)
    run_main(args, cwd=tmp_path)
    assert len(load_study(tmp_path).trials) == 3  # nothing more to do
    assert [j.name for j in jobs(sweep)] == ["0", "1", "2"] and len(summary_rows(sweep)) == 3


def test_killed_optuna_sweep_resumes_to_its_total(tiny_data, tmp_path):
    args = [
        f"data.path={tiny_data}",
        "sweep=optuna",
        *TINY_ARGS,
        "trainer.epochs=4",
        "data.train_subset=null",
        "hydra.sweeper.n_trials=4",
        "optuna.heartbeat_s=1",
        "optuna.grace_s=3",
        "optuna.poll_s=0.5",
        "optuna.pruner=none",
    ]
    proc = popen_main(args, tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if any(t.state.name == "COMPLETE" for t in load_study(tmp_path).trials):
                break
        except Exception:  # noqa: BLE001 - the study is not created yet
            pass
        assert proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)  # into the next trial
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.params for t in load_study(tmp_path).trials if t.state.name == "COMPLETE"}
    assert 1 <= len(before) < 4

    run_main(args, cwd=tmp_path)
    trials = load_study(tmp_path).trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4  # the study reached its total
    for number, params in before.items():  # finished trials were kept, not repeated
        assert trials[number].state.name == "COMPLETE" and trials[number].params == params
    assert sum(1 for t in complete if t.params in before.values()) == len(before)
    retries = [t for t in trials if "retry_of" in t.user_attrs]
    assert len(trials) == 4 + len(retries)  # nothing but the killed trial(s) was run twice
    for retry in retries:  # the killed trial is FAIL and was re-run with the same parameters
        killed = trials[retry.user_attrs["retry_of"]]
        assert killed.state.name == "FAIL" and retry.state.name == "COMPLETE" and retry.params == killed.params


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tiny_data, tmp_path):
    # a grid over three LRs, one of which diverges (NaN loss)
    proc = run_main(
        [
            f"data.path={tiny_data}",
            "sweep=optuna",
            *SWEEP_ARGS,
            "hydra/sweeper/sampler=grid",
            "optim=sgd",
            "optim.lr=choice(0.001,1e12,0.002)",
            "optim.weight_decay=0",
            "model/blocks=b222",
            "model.dropout=0.1",
            "hydra.sweeper.n_trials=3",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0
    trials = load_study(tmp_path).trials
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "COMPLETE", "FAIL"]
    failed = next(t for t in trials if t.state.name == "FAIL")
    assert failed.params["optim.lr"] == 1e12 and "DivergedError" in failed.user_attrs["error"]
    sweep = study_dir(tmp_path)
    rows = summary_rows(sweep)
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
    assert json.loads((sweep / rows[2]["job"] / "metrics.json").read_text())["status"] == "diverged"


def test_too_many_failures_stop_the_sweep(tiny_data, tmp_path):
    proc = run_main(
        [
            f"data.path={tiny_data}",
            "sweep=optuna",
            *SWEEP_ARGS,
            "optim=sgd",
            "optim.lr=choice(1e12,1e13)",
            "hydra.sweeper.n_trials=6",
            "hydra.sweeper.max_failure_rate=0.3",
        ],
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0 and "optuna sweep stopped: 2 failed trials" in proc.stdout + proc.stderr
    assert len(load_study(tmp_path).trials) == 2


def test_pruning_marks_hopeless_trials_pruned(tiny_data, tmp_path):
    run_main(
        [
            f"data.path={tiny_data}",
            "sweep=optuna",
            *SWEEP_ARGS,
            "trainer.epochs=3",
            "hydra.sweeper.n_trials=2",
            "optuna.pruner=threshold",
            "optuna.threshold=1.01",
            "optuna.n_warmup_steps=0",
        ],
        cwd=tmp_path,
    )
    trials = load_study(tmp_path).trials
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    assert all(list(t.intermediate_values) == [1] for t in trials)  # stopped after its first epoch
    sweep = study_dir(tmp_path)
    rows = summary_rows(sweep)
    assert [r["status"] for r in rows] == ["pruned", "pruned"] and {r["epochs_run"] for r in rows} == {"1"}
    # TensorBoard shows a pruned trial as pruned (its `status` column) and not as a success
    for job in jobs(sweep):
        hparams, end, columns = read_session(event_dir(job))
        assert hparams["status"] == "pruned" and end == "STATUS_FAILURE" and columns is None  # the study declares them
