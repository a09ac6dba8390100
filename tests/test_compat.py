"""One test per private-API touchpoint in tinyimagenet_resnet/compat.py: each fails loudly when an upgrade of the
dependency moves or changes what we rely on."""

import importlib
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import optuna
import pytest
import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tinyimagenet_resnet import compat


def test_torch_mkldnn_bf16_probe_exists_and_answers_a_bool():
    assert callable(torch.ops.mkldnn._is_mkldnn_bf16_supported)
    assert compat.mkldnn_bf16_supported() is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_summary_writer_file_writer_takes_hparams_summaries(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    writer = SummaryWriter(str(tmp_path))
    fw = compat.summary_file_writer(writer)
    for summary in hparams({"lr": 0.1}, {"hparam/x": 1.0}):
        fw.add_summary(summary)
    writer.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")
    assert {p.parent for p in tmp_path.rglob("events.out.tfevents.*")} == {tmp_path}  # no sub-folder


def test_datasets_fingerprint_and_indices():
    import datasets

    ds = datasets.Dataset.from_dict({"label": [3, 1, 2, 0]})
    fp = compat.dataset_fingerprint(ds)
    assert isinstance(fp, str) and fp
    assert compat.dataset_indices(ds) is None
    view = ds.select([2, 0])
    assert compat.dataset_fingerprint(view) != fp
    assert compat.dataset_indices(view).column(0).to_pylist() == [2, 0]


def test_datasets_stratified_splitter():
    labels = np.repeat(np.arange(4), 10)
    train, test = compat.stratified_split_indices(labels, 32, 8, np.random.default_rng(0))
    assert len(train) == 32 and len(test) == 8 and not set(train) & set(test)
    assert np.bincount(labels[test]).tolist() == [2, 2, 2, 2]


@dataclass
class _Tracker:
    experiment: str = "x"


@dataclass
class _Loggers:
    mlflow: _Tracker | None = None


def test_omegaconf_error_for_a_key_under_a_null_node_names_both():
    cfg = OmegaConf.structured({"logger": _Loggers()})
    with pytest.raises(OmegaConfBaseException) as raised:
        OmegaConf.update(cfg, "logger.mlflow.experiment", "y")
    assert compat.unset_parent(raised.value) == ("logger.mlflow.experiment", "logger.mlflow")
    assert compat.unset_parent(ValueError("something else")) is None


def test_hydra_plugin_registry():
    from hydra.core.plugins import Plugins

    class Probe:
        pass

    compat.register_hydra_plugin(Probe)
    assert Plugins.instance().class_name_to_class[f"{Probe.__module__}.{Probe.__name__}"] is Probe


def test_hydra_job_return_keeps_the_exception():
    from hydra.core.utils import JobReturn, JobStatus

    exc = ValueError("boom")
    ret = JobReturn(_return_value=exc, status=JobStatus.FAILED)
    assert compat.job_exception(ret) is exc


def test_ray_launcher_config_module():
    module, name = compat.RAY_LAUNCHER_CONFIG
    assert hasattr(importlib.import_module(module), name)


def _impl(params=None, direction="maximize"):
    from tinyimagenet_resnet.sweeps.optuna_sweeper import ResumableOptunaSweeper

    sampler = OmegaConf.create({"_target_": "optuna.samplers.TPESampler", "seed": 1})
    sweeper = ResumableOptunaSweeper(sampler, direction, None, "s", 3, 1, 0.5, None, OmegaConf.create(params or {}))
    return sweeper


def test_optuna_sweeper_impl_private_methods():
    impl_cls, create_params = compat.optuna_sweeper_impl()
    assert callable(create_params)
    for name in (
        "_process_searchspace_config",
        "_parse_sweeper_params_config",
        "_to_grid_sampler_choices",
        "_get_directions",
        "_configure_trials",
    ):
        assert callable(getattr(impl_cls, name)), name
    sweeper = _impl({"x": "interval(0, 1)", "c": "choice(a, b)"})
    impl = sweeper.sweeper  # what compat.replace_sweeper_impl put there
    assert isinstance(impl, impl_cls) and compat.sweeper_sampler(impl) is not None
    distributions, fixed, fixed_overrides = compat.search_space(impl, ["y=2"])
    assert set(distributions) == {"x", "c"} and fixed == {"y": "2"}
    assert compat.grid_choices(impl, distributions["c"]) == ("a", "b")
    assert compat.study_directions(impl) == ["maximize"]
    impl.config = OmegaConf.create({})
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    (overrides,) = compat.configure_trials(impl, [trial], distributions, fixed, fixed_overrides)
    assert {o.split("=")[0] for o in overrides} >= {"x", "c"}


def test_optuna_heartbeat_base_and_trial_id():
    base = compat.optuna_base_heartbeat()
    assert issubclass(optuna.storages.RDBStorage, base)
    storage = optuna.storages.RDBStorage("sqlite:///:memory:")
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    frozen = study.get_trials(deepcopy=False)[0]
    assert compat.trial_id(trial) == compat.trial_id(frozen)
    study_id = storage.get_study_id_from_name(study.study_name)
    assert storage.get_trial_id_from_study_id_trial_number(study_id, trial.number) == compat.trial_id(trial)


def test_scheduler_last_lr_is_what_get_last_lr_returns():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    compat.set_scheduler_last_lr(sched, [0.025])
    assert sched.get_last_lr() == [0.025]


def test_exit_handlers_run_on_demand_in_their_order():
    # in a process of its own: running them here would end pytest's and the libraries' own handlers
    code = (
        "import atexit, os, sys\n"
        "from tinyimagenet_resnet import compat\n"
        "atexit.register(print, 'registered first')\n"
        "atexit.register(print, 'registered last')\n"
        "compat.run_exit_handlers()\n"
        "sys.stdout.flush()\n"
        "os._exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert proc.stdout.splitlines() == ["registered last", "registered first"]  # last in, first out


def test_threads_shut_down_as_at_interpreter_exit_executor_workers_included():
    # an idle ThreadPoolExecutor worker is not a daemon and stops only through the executor's exit hook: joining the
    # threads alone would wait for it forever
    code = (
        "import os, sys, threading\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from tinyimagenet_resnet import compat\n"
        "pool = ThreadPoolExecutor(2)\n"
        "print(pool.submit(sum, [1, 2]).result())\n"
        "assert threading.active_count() > 1\n"
        "compat.shutdown_threads()\n"
        "print(threading.active_count())\n"
        "sys.stdout.flush()\n"
        "os._exit(0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["3", "1"]
