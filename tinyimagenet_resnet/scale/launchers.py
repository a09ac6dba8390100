"""Hydra launchers for scale-out: joblib (local processes), submitit (SLURM, or its local twin) and Ray.

Our `conf/hydra/launcher/<name>.yaml` files carry this project's defaults (one GPU per job, sensible time limits).
Each extends the launcher plugin's own config, registered here under `<name>_schema`, so every key of the plugin
stays available and type-checked. A plugin that is not installed gets one line naming the extra to install.
"""

from __future__ import annotations

import importlib

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from ..compat import RAY_LAUNCHER_CONFIG

# hydra/launcher option -> (module with the plugin's config dataclasses, dataclass name, pip extra)
LAUNCHERS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher.config", "JobLibLauncherConf", "joblib"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher.config", "LocalQueueConf", "slurm"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher.config", "SlurmQueueConf", "slurm"),
    "ray": (*RAY_LAUNCHER_CONFIG, "ray"),
}


def _schema(name: str):
    module, cls, _ = LAUNCHERS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError:
        return None


def missing_plugin(choice: str) -> str | None:
    """One line for `hydra/launcher=<choice>` when its plugin is not installed, else None."""
    if choice not in LAUNCHERS or _schema(choice) is not None:
        return None
    extra = LAUNCHERS[choice][2]
    return f'hydra/launcher={choice!r} needs its Hydra plugin: pip install -e ".[{extra}]" (extras: joblib|slurm|ray)'


def gpu_count() -> int:
    """GPUs this machine shows (0 without CUDA). Read through torch only when a launcher config asks."""
    import torch  # lazy: the entry point registers this resolver at start-up; torch costs ~2.5 s there

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parallel_jobs(jobs_per_gpu) -> int:
    """joblib's default n_jobs: GPUs x jobs_per_gpu; on a CPU-only machine one job per core (-1)."""
    gpus = gpu_count()
    return gpus * int(jobs_per_gpu) if gpus else -1


def gpu_share(jobs_per_gpu) -> float:
    """Ray's num_gpus per job: 1/jobs_per_gpu where this machine has GPUs, else 0 (Ray then runs jobs on CPUs).
    For a cluster whose driver has no GPU, set hydra.launcher.ray.remote.num_gpus yourself."""
    return 1.0 / int(jobs_per_gpu) if gpu_count() else 0.0


def register() -> None:
    """Register each installed launcher plugin's config as `<name>_schema`, and the resolvers our launcher configs
    use (`tir.gpu_count`, `tir.parallel_jobs`, `tir.gpu_share`)."""
    cs = ConfigStore.instance()
    for name in LAUNCHERS:
        schema = _schema(name)
        if schema is not None:
            cs.store(group="hydra/launcher", name=f"{name}_schema", node=schema, provider="tinyimagenet_resnet")
    OmegaConf.register_resolver("tir.gpu_count", gpu_count, replace=True)
    OmegaConf.register_resolver("tir.parallel_jobs", parallel_jobs, replace=True)
    OmegaConf.register_resolver("tir.gpu_share", gpu_share, replace=True)
