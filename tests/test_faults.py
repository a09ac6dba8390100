"""Faults and bad input: Optuna results are never lost or misreported, environment faults
are one line, failures leave no stray run folder, every key is validated, and a grid fails before its first job.
Faults the test machine cannot produce for real (a full disk, a read-only folder for root) are injected into the
subprocess at the point where the operating system would report them."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from tinyimagenet_resnet.artifacts.records import TrainMetrics

from conftest import TINY_ARGS, one_error_line, only_run_dir, popen_main, refusal, run_main, tree_digest

SMALL = [*TINY_ARGS, "trainer.epochs=1", "trainer.progress_bar=false"]
OPTUNA = ["sweep=optuna", "data.train_subset=null", "optuna.pruner=none", "hydra.sweeper.n_trials=2"]


def injected(code: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The entry point with `code` run first (a fault injected where the operating system would raise it)."""
    launcher = (
        f"import sys, runpy\n{code}\nsys.argv = ['main', *{list(map(str, args))!r}]\n"
        "runpy.run_module('tinyimagenet_resnet.main', run_name='__main__')"
    )
    return subprocess.run([sys.executable, "-c", launcher], cwd=cwd, capture_output=True, text=True)


# -------------------------------------------------------------------------------- item 5: Optuna results
def test_a_new_storage_under_the_same_study_name_never_touches_earlier_trial_folders(tiny_data, tmp_path):
    base = [f"data.path={tiny_data}", *SMALL, *OPTUNA, "hydra.sweeper.study_name=s"]
    run_main([*base, "hydra.sweeper.storage=sqlite:///a.db"], cwd=tmp_path)
    first = tmp_path / "multirun" / "optuna" / "s"
    before = tree_digest(first)
    assert {"0", "1"} <= {p.name for p in first.iterdir()}
    run_main([*base, "hydra.sweeper.storage=sqlite:///b.db"], cwd=tmp_path)
    assert tree_digest(first) == before  # not one file of the first study changed
    (second,) = [p for p in (tmp_path / "multirun" / "optuna").iterdir() if p.name.startswith("s@")]
    assert {"0", "1", "summary.md", "optimization_results.yaml"} <= {p.name for p in second.iterdir()}


def test_failed_trials_exit_non_zero_keep_the_summary_and_do_not_count_toward_n_trials(tiny_data, tmp_path):
    base = [
        f"data.path={tiny_data}",
        *SMALL,
        *OPTUNA,
        "hydra.sweeper.study_name=f",
        "optim=sgd",
        "hydra.sweeper.max_failure_rate=1.0",
    ]
    proc = run_main([*base, "optim.lr=1e12"], cwd=tmp_path, check=False)  # lr=1e12 diverges: every trial fails
    line = one_error_line(proc, code=1)
    # one run makes n_trials attempts at most (it never retries what just failed), and says they all failed
    assert line.startswith("error: optuna sweep: every trial of this run failed (2)") and "DivergedError" in line
    folder = tmp_path / "multirun" / "optuna" / "f"
    assert (folder / "summary.md").is_file() and (folder / "optimization_results.yaml").is_file()
    storage = f"sqlite:///{folder}.db"
    assert {t.state.name for t in optuna.load_study(study_name="f", storage=storage).trials} == {"FAIL"}
    # the cause fixed, the same study runs its n_trials anew: the failed ones did not count
    run_main([*base, "optim.lr=0.01"], cwd=tmp_path)
    states = [t.state.name for t in optuna.load_study(study_name="f", storage=storage).trials]
    assert states.count("COMPLETE") == 2


def test_a_sweep_where_every_trial_failed_exits_non_zero(tiny_data, tmp_path):
    proc = run_main(
        [
            f"data.path={tiny_data}",
            *SMALL,
            *OPTUNA,
            "optim=sgd",
            "hydra.sweeper.study_name=g",
            "optim.lr=1e12",
            "hydra.sweeper.max_failure_rate=0.0",
        ],
        cwd=tmp_path,
        check=False,
    )
    assert one_error_line(proc, code=1).startswith("error: optuna sweep stopped: 1 failed trial")


# -------------------------------------------------------------------------------- item 6: environment faults
def test_a_device_that_does_not_exist_fails_before_any_data_is_loaded(tiny_data, tmp_path):
    proc = run_main([f"data.path={tiny_data}", *SMALL, "trainer.device=cuda:7"], cwd=tmp_path, check=False)
    line = one_error_line(proc, code=1)
    assert line.startswith("error: trainer.device='cuda:7': this machine has") and "allowed: auto|cpu" in line
    assert "Loaded" not in proc.stdout and not list(tmp_path.glob("outputs/*/*"))


def test_a_damaged_decoded_cache_is_decoded_again(tiny_data, tmp_path):
    cache = tmp_path / "cache"
    args = [f"data.path={tiny_data}", *SMALL, f"data.cache_dir={cache}"]
    run_main(args, cwd=tmp_path)
    good = TrainMetrics.read(only_run_dir(tmp_path)).final
    good = (good.train_loss, good.val_loss, good.val_accuracy)
    (train_file,) = [p for p in cache.glob("train-*.npy")]
    size = train_file.stat().st_size
    for damage in ("truncate", "zeros"):
        if damage == "truncate":
            train_file.write_bytes(train_file.read_bytes()[: size // 2])
        else:
            arr = np.load(train_file, mmap_mode="r+")
            arr[:] = 0
            arr.flush()
            del arr
        cwd = tmp_path / damage
        cwd.mkdir()
        proc = run_main(args, cwd=cwd)
        assert "cannot be used" in proc.stdout + proc.stderr
        final = TrainMetrics.read(only_run_dir(cwd)).final
        assert (final.train_loss, final.val_loss, final.val_accuracy) == good  # on the real images again
        assert train_file.stat().st_size == size


def test_an_absolute_shard_glob_works(tiny_data, tmp_path):
    run_main([f"data.path={tiny_data}", *SMALL, f"data.train_files={tiny_data}/data/train-*"], cwd=tmp_path)
    assert TrainMetrics.read(only_run_dir(tmp_path)).status == "ok"


def test_a_checkpoint_with_a_broken_config_is_one_line(tiny_data, tmp_path):
    import torch

    run_main([f"data.path={tiny_data}", *SMALL], cwd=tmp_path)
    ckpt = torch.load(only_run_dir(tmp_path) / "checkpoints" / "last.ckpt", weights_only=False)
    ckpt["config"]["model"]["blocks"] = "two"
    torch.save(ckpt, tmp_path / "broken.ckpt")
    proc = run_main(
        ["task=evaluate", f"ckpt_path={tmp_path / 'broken.ckpt'}", f"data.path={tiny_data}"], cwd=tmp_path, check=False
    )
    assert "the config stored in the checkpoint is broken" in one_error_line(proc)


def test_a_full_disk_while_saving_is_one_line(tiny_data, tmp_path):
    code = (
        "import errno, tinyimagenet_resnet.artifacts.files as f\n"
        "real = f.atomic_path.__wrapped__\n"
        "def full(path):\n"
        "    if str(path).endswith('.ckpt'):\n"
        "        raise OSError(errno.ENOSPC, 'No space left on device', str(path))\n"
        "    return real(path)\n"
        "import contextlib; f.atomic_path = contextlib.contextmanager(full)\n"
        "import tinyimagenet_resnet.training.checkpoint as c; c.atomic_path = f.atomic_path"
    )
    proc = injected(code, [f"data.path={tiny_data}", *SMALL], tmp_path)
    line = one_error_line(proc, code=1)
    assert line.startswith("error: no space left on the device while writing ") and ".ckpt" in line


def test_a_read_only_output_folder_is_one_line_before_any_work(tiny_data, tmp_path):
    code = (
        "import errno, tempfile\n"
        "def refuse(*a, **k):\n"
        "    raise PermissionError(errno.EROFS, 'Read-only file system', k.get('dir'))\n"
        "tempfile.TemporaryFile = refuse"
    )
    proc = injected(code, [f"data.path={tiny_data}", *SMALL], tmp_path)
    line = one_error_line(proc, code=1)
    assert line.startswith("error: hydra.run.dir: cannot write ") and "Read-only file system" in line
    assert not (tmp_path / "outputs").exists()


def test_ctrl_c_during_start_up_is_one_line_and_leaves_nothing(tiny_data, tmp_path):
    proc = popen_main([f"data.path={tiny_data}", *SMALL], tmp_path)
    deadline = time.time() + 60
    while not list(tmp_path.glob("outputs/*/*/.hydra")) and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in out + err, err[-2000:]
    assert [ln for ln in err.splitlines() if ln.startswith("error: ")] == [
        "error: interrupted before training began: nothing was trained, nothing to resume"
    ] or "error: interrupted during start-up" in err
    assert not list(tmp_path.glob("outputs/*/*"))


# -------------------------------------------------------------------------------- items 7-9
def test_a_failure_after_the_data_loaded_leaves_no_run_folder(tiny_data, tmp_path):
    proc = run_main([f"data.path={tiny_data}", *SMALL, "trainer.budget_minutes=0.001"], cwd=tmp_path, check=False)
    assert "Splits:" in proc.stdout + proc.stderr  # the data had loaded
    one_error_line(proc)
    assert not list(tmp_path.glob("outputs/*/*"))


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["lr_find.min_lr=1", "lr_find.max_lr=0.1"], "lr_find.min_lr=1.0: allowed a number below lr_find.max_lr"),
        (["lr_find.num_iters=0"], "lr_find.num_iters=0: allowed an integer >= 2"),
        (["evaluate.top_confusions=-1"], "evaluate.top_confusions=-1: allowed an integer >= 0"),
        (["sweep=optuna", "optuna.pruner=bogus"], "optuna.pruner='bogus': allowed median|threshold|none"),
        (["sweep=optuna", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0: allowed an integer >= 1"),
        (["+new_key=1"], "new_key: not a config key"),
    ],
    ids=["lr_find-range", "lr_find-iters", "evaluate", "optuna-pruner", "n_trials", "new-key"],
)
def test_every_key_is_validated_before_any_work(args, fragment, tiny_data, tmp_path, monkeypatch):
    assert fragment in refusal([f"data.path={tiny_data}", *SMALL, *args], tmp_path, monkeypatch)
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


def test_the_preflight_checks_each_job_of_a_search_space_as_composed_with_one_compose_per_group_choice(
    tiny_data, tmp_path, monkeypatch
):
    # sweep=optuna's search space (model/blocks a config group, the rest plain keys), plus a swept optimizer group:
    # the configs that cover every value are those a full compose of each job gives, with one compose per distinct
    # choice of the groups (the values of plain keys merged on it) and one for the sweeper's settings
    from omegaconf import OmegaConf

    from tinyimagenet_resnet.config import loader

    monkeypatch.chdir(tmp_path)
    argv = ["-m", "sweep=optuna", f"data.path={tiny_data}", "optim=adam,sgd", "optim.lr=0.01"]
    composes = []
    real = loader.compose_config
    monkeypatch.setattr(loader, "compose_config", lambda o, **k: composes.append(list(o)) or real(o, **k))
    checked = loader.preflight(argv)
    params = OmegaConf.to_container(checked.sweeper.params)
    sets, sweeps = loader.job_override_sets(checked.overrides, params)
    assert len(checked.jobs) == len(sets) == 1 + sum(len(v) - 1 for v in sweeps.values()) == 10
    for job, cfg in zip(sets, checked.jobs, strict=True):
        assert OmegaConf.to_container(cfg) == OmegaConf.to_container(real(job)), job
    # the sweeper's config, then one per choice of (optim, model/blocks) among the jobs: (adam, b222), (sgd, b222),
    # (adam, b333)
    assert len(composes) == 1 + 3, composes
    # a bad value of a plain key in a job that also chooses a group option is refused as a full compose refuses it
    bad = [*argv[:-1], "optim.lr=0.01,abc"]
    with pytest.raises(loader.ConfigError, match=r"^optim\.lr='abc': allowed a number > 0 \(a job of the sweep: "):
        loader.preflight(bad)
    # the swept values as Hydra reads them (the sweep writes `cuda:0` back as `cuda\:0`, `${x}` as `$\{x\}`), beside
    # a group or alone; `+key` on a key that exists is refused as Hydra refuses it, a swept hydra.* key accepted
    with_group = ["-m", f"data.path={tiny_data}", "optim=adam,sgd"]
    devices = [j.trainer.device for j in loader.preflight([*with_group, "trainer.device=cuda:0,cpu"]).jobs]
    assert devices == ["cuda:0", "cuda:0", "cpu"]
    assert [j.trainer.device for j in loader.preflight(["-m", "trainer.device=cuda:0,cpu"]).jobs] == ["cuda:0", "cpu"]
    [first, *_] = loader.preflight([*with_group, "scheduler=cosine", "scheduler.eta_min=${optim.lr},0"]).jobs
    assert first.scheduler.eta_min == first.optim.lr
    with pytest.raises(loader.ConfigError, match=r"^Could not append to config\. An item is already at 'trainer"):
        loader.preflight([*with_group, "+trainer.epochs=1,2"])
    assert len(loader.preflight(["-m", "hydra.job.chdir=true,false"]).jobs) == 2


def test_the_schemas_are_stored_once_per_config_store_and_again_in_a_launchers_restored_one(monkeypatch):
    # each store converts a dataclass to a DictConfig (11 of them, ~40 ms): the pre-flight and the protocol's estimate
    # compose many times in one process. Hydra's singletons restored from a copy (Singleton.get_state / set_state, as
    # a launcher's worker does) are another ConfigStore, into which the schemas are stored again
    from hydra.core.config_store import ConfigStore
    from hydra.core.singleton import Singleton
    from omegaconf import OmegaConf

    from tinyimagenet_resnet.config import schema
    from tinyimagenet_resnet.config.loader import compose_config

    first = OmegaConf.to_container(compose_config(["optim=sgd", "model.widths=[8,16,32]"]))
    stored = []
    real_store = ConfigStore.store
    monkeypatch.setattr(ConfigStore, "store", lambda cs, **kw: stored.append(kw["name"]) or real_store(cs, **kw))
    assert OmegaConf.to_container(compose_config(["optim=sgd", "model.widths=[8,16,32]"])) == first
    assert stored == []
    before = Singleton.get_state()
    try:
        Singleton.set_state(Singleton.get_state())
        assert OmegaConf.to_container(compose_config(["optim=sgd", "model.widths=[8,16,32]"])) == first
        assert sorted(stored) == sorted(["config_schema", *(n for o in schema.GROUP_SCHEMAS.values() for n in o)])
    finally:
        Singleton.set_state(before)


def test_a_grid_with_one_bad_value_fails_before_its_first_job(tiny_data, tmp_path):
    proc = run_main(["-m", f"data.path={tiny_data}", *SMALL, "optim.lr=1e-3,-1"], cwd=tmp_path, check=False)
    line = one_error_line(proc)
    assert line == "error: optim.lr=-1.0: allowed a number > 0 (a job of the sweep: optim.lr=-1)"
    assert not (tmp_path / "multirun").exists()
