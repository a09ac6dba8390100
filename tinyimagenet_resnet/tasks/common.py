"""Pieces every task shares: run context (device, precision, seeding), data, model and checkpoint restore."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ..artifacts.files import write_text
from ..artifacts.tensorboard import TBLogger
from ..config.loader import from_checkpoint
from ..config.naming import run_name
from ..config.overrides import overrides_key
from ..config.validate import validate_config
from ..data.datamodule import DataModule
from ..errors import CheckpointError
from ..model import build_model, count_parameters
from ..training.checkpoint import arch_string, load_checkpoint, load_model_state
from ..training.runtime import precision_name, resolve_precision, seed_everything, select_device, set_deterministic

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    cfg: DictConfig
    run_dir: Path
    name: str
    overrides: list
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    started_at: float  # epoch seconds: the command's start, or the job's in a multirun


def run_context(cfg: DictConfig) -> RunContext:
    from hydra.types import RunMode

    from .. import STARTED_AT

    hc = HydraConfig.get()
    started_at = time.time() if hc.mode == RunMode.MULTIRUN else STARTED_AT
    overrides = list(hc.overrides.task)
    run_dir = Path(hc.runtime.output_dir)
    device = select_device(cfg.trainer.device)
    seed_everything(int(cfg.seed))
    set_deterministic(bool(cfg.trainer.deterministic))
    name = run_name(cfg, overrides)
    write_text(run_dir / "run_name.txt", name + "\n")
    amp_dtype = resolve_precision(cfg.trainer.precision, device)
    log.info(
        "Run %s in %s on %s (%d CPU threads), %s (trainer.precision=%s)",
        name,
        run_dir,
        device,
        torch.get_num_threads(),
        precision_name(amp_dtype),
        cfg.trainer.precision,
    )
    return RunContext(cfg, run_dir, name, overrides, device, amp_dtype, use_channels_last(cfg, device), started_at)


def use_channels_last(cfg: DictConfig, device: torch.device) -> bool:
    """`trainer.channels_last`, except on CPU with a stage of <= 8 channels: oneDNN (torch 2.14.1) crashes in the
    backward of a 1x1 stride-2 channels_last convolution with so few input channels."""
    wanted = bool(cfg.trainer.channels_last)
    if wanted and device.type == "cpu" and min(cfg.model.widths) <= 8:
        log.warning(
            "trainer.channels_last disabled: model.widths=%s has a stage of <= 8 channels (oneDNN bug on CPU)",
            list(cfg.model.widths),
        )
        return False
    return wanted


def make_model(cfg: DictConfig, num_classes: int, device: torch.device, channels_last: bool) -> torch.nn.Module:
    model = build_model(cfg.model, num_classes)
    log.info(
        "Model ResNet blocks=%s widths=%s dropout=%s act=%s bn=%s: %s parameters",
        list(cfg.model.blocks),
        list(cfg.model.widths),
        cfg.model.dropout,
        cfg.model.activation,
        cfg.model.batch_norm,
        f"{count_parameters(model):,}",
    )
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def setup_data(cfg: DictConfig, run_dir: Path) -> DataModule:
    dm = DataModule.setup(cfg.data, int(cfg.seed))
    dm.write_summary(run_dir)
    return dm


def open_tb(run_dir: Path, name: str, purge_step: int | None = None) -> TBLogger:
    return TBLogger(run_dir / "tensorboard" / name, purge_step=purge_step)


def resolved(cfg: DictConfig) -> dict:
    """The config as plain data (what checkpoints store)."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


# Keys a command line may set when it continues or evaluates a checkpoint: where and how to run, not what.
RUNTIME_KEYS = (
    "task",
    "ckpt_path",
    "resume",
    "data.path",
    "data.num_workers",
    "trainer.device",
    "trainer.progress_bar",
    "evaluate",
    "lr_find",
    "inspect",
)


def config_from_checkpoint(cfg: DictConfig, ckpt: dict, overrides: list, keep: tuple = ()) -> DictConfig:
    """The checkpoint's own config (on the current schema), so the user repeats no override. RUNTIME_KEYS and the
    keys in `keep` come from the command line. An explicit model override that contradicts the checkpoint is
    refused (different architecture)."""
    saved = from_checkpoint(ckpt["config"])
    if overrides_key(overrides, "model") and resolved(cfg.model) != resolved(saved.model):
        raise CheckpointError(
            f"ckpt_path={cfg.ckpt_path!r}: checkpoint holds a different architecture "
            f"({arch_string(ckpt['config'])}) than requested ({arch_string(resolved(cfg))}); "
            "drop the model overrides or pick a matching checkpoint"
        )
    for key in RUNTIME_KEYS + tuple(keep):
        OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False)
    validate_config(saved)
    return saved


def load_for_model(path) -> dict:
    """Load a checkpoint and check, before any data is loaded, that its weights fit the architecture it records."""
    ckpt = load_checkpoint(path)
    probe = build_model(OmegaConf.create(ckpt["config"]).model, int(ckpt["config"]["data"]["num_classes"]))
    load_model_state(probe, ckpt, path)
    return ckpt
