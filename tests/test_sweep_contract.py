"""The Optuna sweeper keeps the contract of hydra-optuna-sweeper's own `OptunaSweeper` for ANY Hydra app (here a
two-function app written into the test's folder, not this package), while adding resume, heartbeats and pruning.
Every test runs a real Hydra multirun in a subprocess."""

import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import yaml

from conftest import summary_rows

OURS = "hydra.sweeper._target_=tinyimagenet_resnet.sweeps.optuna_sweeper.ResumableOptunaSweeper"

APP = """
import hydra
from tinyimagenet_resnet.sweeps.optuna_sweeper import register

register()  # what an app does to use this package's sweeper


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg):
    if cfg.fail_when is not None and cfg.x == cfg.fail_when:
        raise RuntimeError(f"cfg.x is {cfg.x}: this job fails on purpose")
    if cfg.nan_when is not None and cfg.x == cfg.nan_when:
        return float("nan")
    value = (cfg.x - 1) ** 2 + cfg.y ** 2
    return [value, cfg.x + cfg.y] if cfg.two_values else value


main()
"""

CONFIG = """
defaults:
  - override hydra/sweeper: optuna
x: 0
y: 0
fail_when: null
nan_when: null
two_values: false
hydra:
  sweeper:
    direction: minimize
    n_trials: 6
    sampler:
      seed: 7
    params:
      x: range(-2, 3)
      y: choice(-1, 0, 1)
"""


def write_app(root: Path) -> Path:
    (root / "conf").mkdir(parents=True)
    (root / "app.py").write_text(textwrap.dedent(APP))
    (root / "conf" / "config.yaml").write_text(textwrap.dedent(CONFIG))
    return root


def sweep(root: Path, *args, check=True):
    """A multirun of the app with our sweeper; (process, sweep folder)."""
    out = root / "sweep"
    proc = subprocess.run(
        [sys.executable, "app.py", "-m", OURS, f"hydra.sweep.dir={out}", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc, out


def stored_sweep(root: Path, study: str, *args, check=True):
    """A multirun whose study `study` lives in a SQLite file of `root`: (process, sweep folder, the study)."""
    storage = f"sqlite:///{root}/s.db"
    proc, out = sweep(root, f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={study}", *args, check=check)
    return proc, out, optuna.load_study(study_name=study, storage=storage)


def test_storage_null_runs_in_memory_with_a_warning(tmp_path):
    proc, out = sweep(write_app(tmp_path), "hydra.sweeper.storage=null")
    warnings = [ln for ln in proc.stdout.splitlines() if "storage=null" in ln]
    assert len(warnings) == 1 and "cannot be resumed" in warnings[0]
    results = yaml.safe_load((out / "optimization_results.yaml").read_text())
    assert results["trial_states"] == {"COMPLETE": 6} and results["storage"] is None
    assert results["best_value"] == min(float(r["value"]) for r in summary_rows(out))
    assert not list(tmp_path.rglob("*.db")) and not list(tmp_path.glob("None*"))


def test_an_app_without_an_optuna_node_gets_no_trial_number(tmp_path):
    """Our own app receives `optuna.trial_number=N` (for pruning); any other app composes as with the plugin."""
    _, out, _ = stored_sweep(write_app(tmp_path), "s")
    jobs = [p for p in out.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()]
    assert len(jobs) == 6
    for job in jobs:
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        assert {o.split("=")[0] for o in overrides} == {"x", "y"}


def test_the_summary_comes_from_overrides_and_return_values(tmp_path):
    _, out, study = stored_sweep(write_app(tmp_path), "s")
    table = summary_rows(out)
    assert list(table[0])[:5] == ["rank", "job", "run_name", "x", "y"] and "value" in table[0]
    assert "lr" not in table[0] and "best_val_top1" not in table[0]  # this package's columns only where they exist
    assert sorted(float(r["value"]) for r in table) == sorted(t.value for t in study.trials)
    values = [float(r["value"]) for r in table]
    assert values == sorted(values)  # direction: minimize, best first
    for r in table:
        assert float(r["value"]) == (int(r["x"]) - 1) ** 2 + int(r["y"]) ** 2 and r["status"] == "ok"
    assert "**Best:**" in (out / "summary.md").read_text()


def test_a_list_of_directions_gives_a_pareto_front(tmp_path):
    _, out, study = stored_sweep(
        write_app(tmp_path),
        "mo",
        "hydra.sweeper.direction=[minimize,maximize]",
        "two_values=true",
        "hydra.sweeper.n_trials=8",
    )
    assert len(study.directions) == 2 and all(t.state.name == "COMPLETE" for t in study.trials)
    results = yaml.safe_load((out / "optimization_results.yaml").read_text())
    front = results["solutions"]
    assert sorted(s["trial"] for s in front) == sorted(t.number for t in study.best_trials)
    for a in front:  # no member dominates another (minimize the first value, maximize the second)
        for b in front:
            assert not (
                a["values"][0] <= b["values"][0]
                and a["values"][1] >= b["values"][1]
                and a != b
                and (a["values"][0] < b["values"][0] or a["values"][1] > b["values"][1])
            )
    table = summary_rows(out)
    marked = {(int(r["x"]), int(r["y"])) for r in table if r["pareto"] == "True"}
    assert marked == {(s["params"]["x"], s["params"]["y"]) for s in front}
    for r in table:
        assert float(r["value_0"]) == (int(r["x"]) - 1) ** 2 + int(r["y"]) ** 2
        assert float(r["value_1"]) == int(r["x"]) + int(r["y"])
    assert (out / "pareto.png").stat().st_size > 1000


def test_the_grid_sampler_is_capped_to_its_grid(tmp_path):
    proc, _, study = stored_sweep(
        write_app(tmp_path),
        "grid",
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.n_trials=20",
        "x=choice(0,1)",
        "y=choice(-1,0,1)",
    )
    points = [(t.params["x"], t.params["y"]) for t in study.trials]
    assert len(points) == 6 and len(set(points)) == 6
    assert "capped to the 6 points of the grid" in proc.stdout


@pytest.mark.parametrize("rate", [0.5, 1.0])
def test_a_failed_jobs_error_reaches_stderr_when_it_stops_the_sweep(tmp_path, rate):
    proc, out, _ = stored_sweep(
        write_app(tmp_path),
        "f",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweeper.max_failure_rate={rate}",
        "x=choice(2)",
        "fail_when=2",
        check=False,
    )
    message = "RuntimeError: cfg.x is 2: this job fails on purpose"
    if rate < 1.0:
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
        assert "max_failure_rate=0.5" in line and message in line
    else:  # every failure tolerated: the job's error stays in the log and the study, not on stderr
        assert proc.returncode == 1 and message not in proc.stderr and message in proc.stdout
        (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
        assert "every trial of this run failed (4)" in line and "RuntimeError" in line
        assert {r["status"] for r in summary_rows(out)} == {"failed"}


def test_an_app_with_its_own_optuna_node_is_not_taken_for_this_package(tmp_path):
    """Only this package's `optuna` node (it has `trial_number`) receives a trial number."""
    root = write_app(tmp_path)
    with open(root / "conf" / "config.yaml", "a") as f:
        f.write("optuna:\n  n_startup: 3\nseeds: [0, 1]\n")  # an app's own keys, named like ours
    _, out, _ = stored_sweep(root, "o", "hydra.sweeper.n_trials=2")
    for job in (out / "0", out / "1"):
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        assert {o.split("=")[0] for o in overrides} == {"x", "y"}


def test_a_resumed_study_of_another_app_never_reuses_a_trial_folder(tmp_path):
    root = write_app(tmp_path)
    stored_sweep(root, "r", "hydra.sweeper.n_trials=3")
    _, out, study = stored_sweep(root, "r", "hydra.sweeper.n_trials=5")
    assert len(study.trials) == 5
    assert sorted(p.name for p in out.iterdir() if (p / ".hydra").is_dir()) == ["0", "1", "2", "3", "4"]
    for t in study.trials:  # each folder holds its own trial's job
        overrides = yaml.safe_load((out / str(t.number) / ".hydra" / "overrides.yaml").read_text())
        assert f"x={t.params['x']}" in overrides
    assert len(summary_rows(out)) == 5


def test_a_rejected_return_value_is_a_failed_trial_and_the_sweep_goes_on(tmp_path):
    proc, out, study = stored_sweep(
        write_app(tmp_path),
        "n",
        "x=choice(0,1)",
        "y=choice(0)",
        "nan_when=0",
        "hydra.sweeper.n_trials=4",
    )
    states = {t.params["x"]: t.state.name for t in study.trials}
    assert states == {0: "FAIL", 1: "COMPLETE"} and "non-finite return value" in proc.stdout
    assert {r["status"] for r in summary_rows(out)} == {"ok", "failed"}


def test_a_stored_study_with_other_directions_is_refused_in_one_line(tmp_path):
    root = write_app(tmp_path)
    stored_sweep(root, "d", "hydra.sweeper.n_trials=1")
    proc, _, _ = stored_sweep(root, "d", "hydra.sweeper.direction=[minimize,maximize]", "two_values=true", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert "study 'd'" in line and "was created with ['minimize']" in line
