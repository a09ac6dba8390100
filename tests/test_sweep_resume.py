"""Sweeps that survive interruptions and never mix two experiments: a grid re-run into its folder skips its finished
jobs, continues the interrupted one from its last.ckpt and runs the rest (basic and joblib launchers, and the
protocol's grids); a failing job does not stop a grid; a changed grid or Optuna study is refused and changes
nothing; a re-run that adds nothing leaves every record as it was."""

import json
import signal
import time
from pathlib import Path

import optuna

from tinyimagenet_resnet.artifacts.records import TrainMetrics

from conftest import TINY_ARGS, csv_rows, one_error_line, popen_main, run_main, summary_rows, tree_digest

# one step per epoch, two epochs per job: a job killed after its first epoch has a last.ckpt to continue from
JOB = [*TINY_ARGS, "data.batch_size=72", "data.eval_batch_size=4", "trainer.progress_bar=false"]
GRID = ["-m", "optim.lr=1e-3,2e-3,3e-3,4e-3"]
TIMING = ("wall_time_s", "rank")  # keys that differ between two runs of the same job


def histories(sweep: Path) -> dict:
    """Each job's epochs (timing keys aside)."""
    out = {}
    for job in sorted(p for p in sweep.iterdir() if p.name.isdigit()):
        m = TrainMetrics.read(job)
        out[job.name] = [(r.epoch, r.step, r.train_loss, r.val_loss, r.val_accuracy) for r in m.history]
    return out


def rows(sweep: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in summary_rows(sweep)]


def test_a_grid_killed_in_its_third_job_continues_where_it_stopped(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", *JOB, *GRID, "sweep_name=g"]
    (tmp_path / "clean").mkdir()
    run_main(args, cwd=tmp_path / "clean")
    clean = tmp_path / "clean" / "multirun" / "g"

    killed = tmp_path / "killed"
    killed.mkdir()
    proc = popen_main(args, killed)
    third = killed / "multirun" / "g" / "2"
    deadline = time.time() + 120
    while time.time() < deadline:  # job 2 has recorded its first epoch (and written its last.ckpt)
        if (third / "metrics.json").is_file() and json.loads((third / "metrics.json").read_text())["epochs_run"] >= 1:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sweep = killed / "multirun" / "g"
    assert TrainMetrics.read(third).status == "running" and not (sweep / "3").exists()
    finished = {j: tree_digest(sweep / j) for j in ("0", "1")}

    again = run_main(args, cwd=killed)
    log = again.stdout + again.stderr
    assert "job 0 (optim.lr=0.001): finished earlier, skipped" in log
    assert "job 1 (optim.lr=0.002): finished earlier, skipped" in log
    assert f"job 2: continues from {third}/checkpoints/last.ckpt" in log
    assert {j: tree_digest(sweep / j) for j in ("0", "1")} == finished  # the finished jobs untouched
    assert histories(sweep) == histories(clean)  # job 2 continued bitwise, job 3 ran
    assert rows(sweep) == rows(clean)


def test_a_grid_that_adds_nothing_changes_nothing_and_a_changed_grid_is_refused(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", *JOB, "trainer.epochs=1", "-m", "optim.lr=1e-3,1e-2", "sweep_name=g"]
    run_main(args, cwd=tmp_path)
    sweep = tmp_path / "multirun" / "g"
    before = tree_digest(sweep)
    run_main(args, cwd=tmp_path)  # nothing to do: every job finished
    assert tree_digest(sweep) == before
    for changed, why in (
        (["optim.lr=1e-3,3e-3"], "optim.lr: 0.001,0.01 -> 0.001,0.003"),
        (["optim.lr=1e-3,1e-2", "trainer.epochs=2"], "trainer.epochs: 1 -> 2"),
    ):
        proc = run_main([*args[:-3], *changed[1:], "-m", changed[0], "sweep_name=g"], cwd=tmp_path, check=False)
        line = one_error_line(proc, "sweep_name=g", "holds another grid", why)
        assert "choose another sweep_name" in line
        assert tree_digest(sweep) == before


def test_a_failing_job_is_a_row_with_its_reason_and_the_grid_goes_on(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", *JOB, "trainer.epochs=1", "optim=sgd", "-m", "optim.lr=1e12,1e-3"]
    proc = run_main([*args, "sweep_name=d"], cwd=tmp_path, check=False)
    line = one_error_line(proc, "grid: 1 of 2 jobs failed (job 0 optim.lr=", "training diverged", code=1)
    assert "summary.md" in line
    by_job = {r["job"]: r for r in csv_rows(tmp_path / "multirun" / "d" / "summary.csv")}
    assert by_job["1"]["status"] == "ok" and by_job["0"]["status"] == "failed"
    assert "training diverged: non-finite loss" in by_job["0"]["error"] and by_job["1"]["error"] == ""
    assert "training diverged" in (tmp_path / "multirun" / "d" / "summary.md").read_text()


def test_ctrl_c_in_a_grid_prints_how_to_continue_it(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", *JOB, "trainer.epochs=400", "-m", "optim.lr=1e-3,2e-3"]
    proc = popen_main(args, tmp_path)
    deadline = time.time() + 120
    while not list(tmp_path.glob("multirun/*/*/0/metrics.json")) and time.time() < deadline:
        assert proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    command = err.strip().splitlines()[-1].strip()
    assert "during job 0; continue the grid with:" in err
    assert command.startswith("python -m tinyimagenet_resnet.main ") and "hydra.sweep.dir=" in command
    sweep = Path(command.split("hydra.sweep.dir=")[1].split()[0])
    assert TrainMetrics.read(sweep / "0").status == "interrupted" and not (sweep / "1").exists()


def test_a_grid_job_whose_checkpoint_is_corrupt_fails_in_one_line_and_the_others_are_kept(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", *JOB, "trainer.epochs=2", "-m", "optim.lr=1e-3,2e-3", "sweep_name=c"]
    run_main(args, cwd=tmp_path)
    sweep = tmp_path / "multirun" / "c"
    # job 1 as if it had been killed after its first epoch, with a checkpoint that got truncated
    metrics = json.loads((sweep / "1" / "metrics.json").read_text())
    metrics["status"] = "running"
    (sweep / "1" / "metrics.json").write_text(json.dumps(metrics))
    ckpt = sweep / "1" / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:3000])
    job0 = tree_digest(sweep / "0")
    proc = run_main(args, cwd=tmp_path, check=False)
    one_error_line(proc, "grid: 1 of 2 jobs failed (job 1", "unreadable checkpoint", code=1)
    assert tree_digest(sweep / "0") == job0


OPTUNA = ["sweep=optuna", "data.train_subset=null", "optuna.pruner=none", "hydra.sweeper.n_trials=1"]


def test_an_optuna_study_under_other_settings_is_refused_and_a_rerun_that_adds_nothing_changes_nothing(
    tiny_data, tmp_path
):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = [f"data.path={tiny_data}", *JOB, *OPTUNA, "trainer.epochs=1", f"hydra.sweeper.storage={storage}"]
    run_main(args, cwd=tmp_path)
    folder = tmp_path / "multirun" / "optuna" / "tinyimagenet_resnet"
    before, db = tree_digest(folder), (tmp_path / "study.db").read_bytes()
    run_main(args, cwd=tmp_path)  # its one trial is done: nothing to add
    assert tree_digest(folder) == before
    trials = optuna.load_study(study_name="tinyimagenet_resnet", storage=storage).trials
    assert len(trials) == 1
    for changed, why in (
        (["trainer.epochs=2"], "trainer.epochs: 1 -> 2"),
        (["optim.lr=tag(log, interval(1e-4, 1e-2))"], "search space of optim.lr"),
    ):
        proc = run_main([*args, *changed], cwd=tmp_path, check=False)
        line = one_error_line(proc, "study 'tinyimagenet_resnet'", "was run with other settings", why)
        assert "hydra.sweeper.study_name=<another name>" in line
        assert tree_digest(folder) == before and (tmp_path / "study.db").read_bytes() == db
