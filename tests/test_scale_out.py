"""Scale-out through the real engines: joblib, submitit (local), Ray, and Optuna workers sharing one study in a
journal file or on a real PostgreSQL server (`.ci/run` starts one and exports TIR_TEST_POSTGRES_URL)."""

import multiprocessing as mp
import os
import queue
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml

from tinyimagenet_resnet.artifacts.records import TrainMetrics

from conftest import TINY_ARGS, popen_main, run_main, summary_rows, tree_digest

SWEEP_ARGS = [*TINY_ARGS, "trainer.epochs=1", "data.train_subset=null", "optim.lr=1e-3,3e-3"]


def the_sweep(cwd: Path) -> Path:
    (day,) = (cwd / "multirun").iterdir()
    (sweep,) = day.iterdir()  # one folder per sweep: nothing else was left beside it
    return sweep


def assert_two_finished_jobs(sweep: Path):
    rows = summary_rows(sweep)
    assert sorted(r["job"] for r in rows) == ["0", "1"] and {r["status"] for r in rows} == {"ok"}
    assert {float(r["lr"]) for r in rows} == {1e-3, 3e-3}
    for job in ("0", "1"):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file() and (sweep / job / "metrics.json").is_file()


def test_joblib_runs_jobs_in_parallel_processes_and_a_rerun_skips_the_finished_ones(tiny_data, tmp_path):
    # one sweep for both contracts (loky starts a new interpreter per worker, ~10 s of imports a sweep); named, so
    # that the same command goes on in the same folder
    lrs = {"0": 1e-3, "1": 3e-3, "2": 1e-2}
    args = [f"data.path={tiny_data}", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "sweep_name=j"]
    args += [a for a in SWEEP_ARGS if not a.startswith("optim.lr=")] + ["optim.lr=1e-3,3e-3,1e-2"]
    run_main(args, cwd=tmp_path)
    sweep = tmp_path / "multirun" / "j"
    assert [p.name for p in (tmp_path / "multirun").iterdir()] == ["j"]  # nothing else was left beside it

    def assert_three_finished_jobs():
        rows = summary_rows(sweep)
        assert sorted(r["job"] for r in rows) == sorted(lrs)  # one row a job
        assert {r["job"]: float(r["lr"]) for r in rows} == lrs and {r["status"] for r in rows} == {"ok"}
        for job in lrs:
            assert (sweep / job / "checkpoints" / "last.ckpt").is_file() and (sweep / job / "metrics.json").is_file()

    assert_three_finished_jobs()
    cores = len(os.sched_getaffinity(0))
    for job in lrs:  # each job ran in a joblib worker process, which splits the cores between the two
        log = (sweep / job / "main.log").read_text()
        assert f"({max(1, cores // 2)} CPU threads)" in log
    # the same command again, as if job 1 had never started: jobs 0 and 2 are skipped and kept, job 1 runs
    shutil.rmtree(sweep / "1")
    kept = {j: tree_digest(sweep / j) for j in ("0", "2")}
    again = run_main(args, cwd=tmp_path)
    log = again.stdout + again.stderr
    assert "job 0 (optim.lr=0.001): finished earlier, skipped" in log
    assert "job 2 (optim.lr=0.01): finished earlier, skipped" in log and "job 1 (" not in log
    assert {j: tree_digest(sweep / j) for j in ("0", "2")} == kept
    assert TrainMetrics.read(sweep / "1").status == "ok"
    assert_three_finished_jobs()


def test_submitit_local_runs_two_jobs_and_keeps_its_files_in_the_sweep(tiny_data, tmp_path):
    run_main([f"data.path={tiny_data}", "-m", "hydra/launcher=submitit_local", *SWEEP_ARGS], cwd=tmp_path)
    sweep = the_sweep(tmp_path)
    assert_two_finished_jobs(sweep)
    # submitit's pickles and job logs sit in the sweep directory (one start time however often it is resolved)
    assert list((sweep / ".submitit").glob("*/*_result.pkl")), list((sweep / ".submitit").rglob("*"))


@pytest.mark.xdist_group("timing")  # waits on a clock or a server: the "timing" tests run one at a time
@pytest.mark.slow
def test_ray_runs_two_jobs_on_a_local_ray_instance(tiny_data, tmp_path):
    proc = run_main(
        [
            f"data.path={tiny_data}",
            "-m",
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
            *SWEEP_ARGS,
        ],
        cwd=tmp_path,
        env={"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert "Started a local Ray instance" in proc.stdout + proc.stderr
    assert_two_finished_jobs(the_sweep(tmp_path))


def test_a_launcher_whose_plugin_is_missing_names_its_extra(tmp_path):
    code = (
        "import sys, runpy, tinyimagenet_resnet.scale.launchers as l; l._schema = lambda name: None; "
        "sys.argv = ['main', '-m', 'hydra/launcher=ray']; runpy.run_module('tinyimagenet_resnet.main', "
        "run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: hydra/launcher='ray' needs its Hydra plugin: pip install -e \".[ray]\" (extras: joblib|slurm|ray)"
    )
    assert not (tmp_path / "multirun").exists()


def test_slurm_launcher_config_gives_the_sbatch_script_its_resources(tmp_path, monkeypatch):
    """No SLURM here: check what our config would submit, through submitit's own sbatch writer."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    proc = run_main(
        [
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.timeout_min=90",
            "hydra.launcher.mem_gb=16",
            "hydra.launcher.gpus_per_node=2",
            "--cfg",
            "hydra",
            "--package",
            "hydra.launcher",
        ],
        cwd=tmp_path,
    )
    launcher = yaml.safe_load(proc.stdout)  # the `hydra.launcher` node
    assert launcher["_target_"].endswith("SlurmLauncher") and launcher["cpus_per_task"] == 8
    # the launcher's own translation: generic keys as they are, the others prefixed with the cluster name
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    params = {
        k if k in base else f"slurm_{k}": v
        for k, v in launcher.items()
        if k not in ("_target_", "submitit_folder", "max_num_timeout")
    }
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "is srun installed?"
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(**params)
    script = executor._executor._make_submission_file_text("python -m x", "uid")
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=90",
        "#SBATCH --mem=16GB",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --ntasks-per-node=1",
    ):
        assert line in script, script


# ---- several Optuna workers, one study -------------------------------------------------------------------------


def postgres_url() -> str:
    url = os.environ.get("TIR_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("TIR_REQUIRE_POSTGRES") == "1":
            pytest.fail("TIR_REQUIRE_POSTGRES=1 but TIR_TEST_POSTGRES_URL is not set (.ci/run starts the server)")
        pytest.skip("no PostgreSQL server: set TIR_TEST_POSTGRES_URL (`.ci/postgres start DIR` prints one)")
    return url


@pytest.mark.xdist_group("timing")  # waits on a clock or a server: the "timing" tests run one at a time
@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_two_workers_finish_one_study_with_exactly_n_trials(tiny_data, tmp_path, backend):
    study_name = f"workers_{uuid.uuid4().hex[:8]}"
    url = f"journal:{tmp_path}/studies/{study_name}.journal" if backend == "journal" else postgres_url()
    n_trials = 6
    args = [
        f"data.path={tiny_data}",
        "sweep=optuna",
        *TINY_ARGS,
        "trainer.epochs=3",
        "data.train_subset=null",
        f"hydra.sweeper.storage={url}",
        f"hydra.sweeper.study_name={study_name}",
        f"hydra.sweeper.n_trials={n_trials}",
        "optuna.pruner=none",
        "optuna.poll_s=0.2",
    ]
    workers = [popen_main(args, tmp_path) for _ in range(2)]
    outputs = ["".join(w.communicate(timeout=600)) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n\n".join(o[-3000:] for o in outputs)

    from tinyimagenet_resnet.sweeps.storage import make_storage

    trials = optuna.load_study(study_name=study_name, storage=make_storage(url)).trials
    assert sorted(t.number for t in trials) == list(range(n_trials))  # exactly n_trials, no number twice
    assert all(t.state.name == "COMPLETE" for t in trials)
    ran_by = {t.user_attrs["worker"] for t in trials}
    assert len(ran_by) == 2, ran_by  # both workers took part
    sweep = tmp_path / "multirun" / "optuna" / study_name
    assert sorted(int(p.name) for p in sweep.iterdir() if p.name.isdigit()) == list(range(n_trials))
    rows = summary_rows(sweep)  # written by whichever worker finished last: every worker's trials
    assert sorted(int(r["job"]) for r in rows) == list(range(n_trials))
    by_job = {int(r["job"]): r for r in rows}
    assert all(float(by_job[t.number]["best_val_top1"]) == pytest.approx(t.value) for t in trials)

    # A worker on another machine: its run directories are not here, its trials are still in the summary.
    moved = sweep / "3"
    moved.rename(tmp_path / "elsewhere")
    run_main([sweep], cwd=tmp_path, module="tinyimagenet_resnet.sweeps.summary")
    again = {int(r["job"]): r for r in summary_rows(sweep)}
    assert sorted(again) == list(range(n_trials))
    assert {k: v for k, v in again[3].items() if k != "rank"} == {k: v for k, v in by_job[3].items() if k != "rank"}


@pytest.mark.xdist_group("timing")  # waits on a clock or a server: the "timing" tests run one at a time
@pytest.mark.filterwarnings("ignore:Heartbeat of storage", "ignore::optuna.exceptions.ExperimentalWarning")
def test_journal_storage_detects_the_trials_of_a_killed_worker(tmp_path):
    from tinyimagenet_resnet.sweeps.storage import make_storage
    from tinyimagenet_resnet.sweeps.study import mark_interrupted

    url = f"journal:{tmp_path}/s.journal"
    storage = make_storage(url, heartbeat_s=1, grace_s=1, stale_callback=mark_interrupted)
    study = optuna.create_study(study_name="s", storage=storage)
    alive, dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), study.ask()
    storage.record_heartbeat(alive._trial_id)
    storage.record_heartbeat(dead._trial_id)
    time.sleep(1.5)
    storage.record_heartbeat(alive._trial_id)  # only one of them is still beating
    # a second worker, with its own view of the journal, fails the stale trial and queues it again
    other = optuna.load_study(
        study_name="s", storage=make_storage(url, heartbeat_s=1, grace_s=1, stale_callback=mark_interrupted)
    )
    optuna.storages.fail_stale_trials(other)
    states = {t.number: t.state.name for t in other.trials}
    assert states == {alive.number: "RUNNING", dead.number: "FAIL", 2: "WAITING"}
    assert other.trials[2].user_attrs["retry_of"] == dead.number
    optuna.storages.fail_stale_trials(study)  # the first worker finds nothing more to do
    assert len(study.trials) == 3


# ---- GPU placement ----------------------------------------------------------------------------------------------


def _hold_a_slot(lock_dir, devices, jobs_per_gpu, got, release: Path):
    from tinyimagenet_resnet.scale.placement import lease_slot

    with lease_slot(devices, jobs_per_gpu, lock_dir=lock_dir, poll_s=0.05) as index:
        got.put(index)
        deadline = time.time() + 60
        while not release.exists() and time.time() < deadline:  # a file, not an mp.Event: one job gets killed
            time.sleep(0.05)


@pytest.mark.xdist_group("timing")  # waits on a clock or a server: the "timing" tests run one at a time
def test_jobs_spread_over_gpus_share_them_up_to_jobs_per_gpu_then_wait(tmp_path):
    ctx = mp.get_context("spawn")
    got, release = ctx.Queue(), tmp_path / "release"
    devices = ["GPU-aaaa", "GPU-bbbb"]
    procs = []

    def start():
        p = ctx.Process(target=_hold_a_slot, args=(tmp_path / "locks", devices, 2, got, release))
        p.start()
        procs.append(p)

    start()
    start()
    first_two = sorted(got.get(timeout=60) for _ in range(2))
    assert first_two == [0, 1]  # one per GPU before any GPU takes a second job
    start()
    start()
    assert sorted(first_two + [got.get(timeout=60) for _ in range(2)]) == [0, 0, 1, 1]
    start()  # a fifth job: every slot (2 GPUs x jobs_per_gpu=2) is taken, so it waits
    with pytest.raises(queue.Empty):
        got.get(timeout=1.0)
    procs[0].terminate()  # a job ends (even killed, its lock goes with it)
    procs[0].join()
    assert got.get(timeout=60) in (0, 1)
    release.touch()
    for p in procs[1:]:
        p.join(60)
        assert p.exitcode == 0
