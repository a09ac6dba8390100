"""Every use of a dependency's private API, in one place (tests/test_compat.py has a test per touchpoint, so an
upgrade that moves one fails loudly there instead of somewhere deep in a run).

Where a public API does the job it is used instead, elsewhere (e.g. optuna's `get_study_id_from_name`)."""

from __future__ import annotations

import atexit
import re
import threading
from typing import Any

from hydra.core.plugins import Plugins

# ------------------------------------------------------------------------------------------------ torch


def mkldnn_bf16_supported() -> bool:
    """oneDNN reports native bf16 on this CPU (AVX512-BF16 / AMX): `torch.ops.mkldnn._is_mkldnn_bf16_supported`."""
    import torch  # lazy: torch costs 4 s of start-up, and --help imports this module (scale.launchers)

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def mkldnn_fp16_supported() -> bool:
    """oneDNN reports native fp16 on this CPU (AVX512-FP16 / AMX-FP16): `torch.ops.mkldnn._is_mkldnn_fp16_supported`."""
    import torch  # lazy: torch costs 4 s of start-up, and --help imports this module (scale.launchers)

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):
        return False


def set_scheduler_last_lr(scheduler, lrs: list[float]) -> None:
    """What an LRScheduler's public `get_last_lr()` returns (`_last_lr`), set by a scheduler that jumps to a step
    (a resume, a re-planned budget) instead of stepping there."""
    scheduler._last_lr = list(lrs)


def grad_scaler_scale(scaler):
    """The loss scale of a GradScaler as a tensor on its device (`_scale`; the public `get_scale()` syncs with the
    device to return a float), or None before its first step or when it is disabled."""
    return getattr(scaler, "_scale", None) if scaler.is_enabled() else None


def summary_file_writer(writer) -> Any:
    """The FileWriter of a torch SummaryWriter (`_get_file_writer`): HParams summaries written into the run's own
    event directory (the public `add_hparams` opens a timestamped sub-folder)."""
    return writer._get_file_writer()


# ------------------------------------------------------------------------------------------------ datasets


def dataset_fingerprint(ds) -> str:
    """`datasets.Dataset._fingerprint`: the hash datasets derives from the files and the operations applied."""
    return ds._fingerprint


def dataset_indices(ds):
    """`datasets.Dataset._indices`: the indices mapping of a selected/shuffled view (None for a plain table)."""
    return ds._indices


def stratified_split_indices(labels, n_train: int, n_test: int, rng):
    """The splitter behind `Dataset.train_test_split(stratify_by_column=...)` (datasets.utils.stratify), called on a
    label array directly: building a Dataset for it costs ~4 s on 100k rows. Returns (train, test) positions."""
    # lazy: datasets costs 2.5 s of start-up, and --help imports this module (scale.launchers)
    from datasets.utils.stratify import stratified_shuffle_split_generate_indices

    return next(stratified_shuffle_split_generate_indices(labels, n_train, n_test, rng=rng))


# ------------------------------------------------------------------------------------------------ omegaconf

_UNSET_PARENT = re.compile(r"Cannot set '([^']+)' because '([^']+)' is None")


def unset_parent(exc: BaseException) -> tuple[str, str] | None:
    """(key, node) of OmegaConf's error for a key set under a node that is None, read from its message (the
    exception names neither in an attribute), or None for any other error."""
    found = _UNSET_PARENT.search(str(exc))
    return (found.group(1), found.group(2)) if found else None


# ------------------------------------------------------------------------------------------------ hydra


def register_hydra_plugin(cls) -> None:
    """Make a plugin class known to Hydra's registry (`Plugins.class_name_to_class`): Hydra's scan of the
    `hydra_plugins` namespace cannot list modules of an editable install."""
    Plugins.instance().class_name_to_class.setdefault(f"{cls.__module__}.{cls.__name__}", cls)


def basic_sweeper():
    """Hydra's BasicSweeper (`hydra._internal.core_plugins.basic_sweeper`: a private module), which the grid
    sweeper extends."""
    # lazy: a private module; should an upgrade move it, the grid sweeper fails, not every import of compat
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return BasicSweeper


def job_exception(ret) -> BaseException | None:
    """The exception a failed Hydra job raised (`JobReturn._return_value`; the public `return_value` re-raises it)."""
    return ret._return_value


RAY_LAUNCHER_CONFIG = ("hydra_plugins.hydra_ray_launcher._config", "RayLauncherConf")  # a private module name


# ------------------------------------------------------------------------------------------------ hydra-optuna-sweeper


def optuna_sweeper_impl():
    """The plugin's implementation class and its search-space parser (`hydra_plugins.hydra_optuna_sweeper._impl`)."""
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides

    return OptunaSweeperImpl, create_params_from_overrides


def replace_sweeper_impl(sweeper, impl) -> None:
    """`OptunaSweeper` delegates everything to its `.sweeper` attribute (the impl): put ours there."""
    sweeper.sweeper = impl


def sweeper_sampler(impl):
    return impl.sampler


def search_space(impl, arguments: list[str]):
    """(distributions, fixed params, fixed overrides) of the sweep: the plugin's parsing of `hydra.sweeper.params`
    and of the command line (`_process_searchspace_config`, `_parse_sweeper_params_config`)."""
    _, create_params_from_overrides = optuna_sweeper_impl()
    impl._process_searchspace_config()
    return create_params_from_overrides(impl._parse_sweeper_params_config() + list(arguments))


def grid_choices(impl, distribution):
    """A distribution as GridSampler choices (`_to_grid_sampler_choices`)."""
    return impl._to_grid_sampler_choices(distribution)


def study_directions(impl) -> list:
    return impl._get_directions()


def configure_trials(impl, trials, distributions, fixed_params, fixed_overrides):
    """Each trial's override list (`_configure_trials`)."""
    return impl._configure_trials(trials, distributions, fixed_params, fixed_overrides)


# ------------------------------------------------------------------------------------------------ optuna


def optuna_base_heartbeat():
    """`optuna.storages._heartbeat.BaseHeartbeat`: what `fail_stale_trials` checks a storage for (optuna 4.x-5.x)."""
    # lazy: a private module of optuna (0.5 s of start-up), which only Optuna sweeps load
    from optuna.storages._heartbeat import BaseHeartbeat

    return BaseHeartbeat


def trial_id(trial) -> int:
    """The storage id of a Trial or FrozenTrial (`_trial_id`), which heartbeats and per-trial attributes key on."""
    return trial._trial_id


# ------------------------------------------------------------------------------------------------ CPython


def shutdown_threads() -> None:
    """Shut the threads down as an interpreter does as it ends (`threading._shutdown`): the exit hooks of executors
    (concurrent.futures, loky) first, which stop their idle workers, then every thread that is not a daemon joined.
    A step forked from the protocol's warm server ends with os._exit, after this and `run_exit_handlers`."""
    threading._shutdown()


def run_exit_handlers() -> None:
    """Run what was registered with `atexit` now (`atexit._run_exitfuncs`), as an interpreter does as it ends: a
    step forked from the protocol's warm server ends with os._exit, skipping the interpreter's teardown of every
    module (~1.5 s with torch loaded), but not what its code registered to run at exit (logging's flush, say)."""
    atexit._run_exitfuncs()
