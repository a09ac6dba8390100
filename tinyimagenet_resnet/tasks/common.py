"""Pieces every task shares: run context (device, precision, seeding), data, model and checkpoint restore."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .. import STARTED_AT
from ..artifacts.files import write_text
from ..artifacts.trackers import Trackers, open_trackers
from ..config.loader import from_checkpoint
from ..config.naming import run_name
from ..config.overrides import overridden_keys
from ..config.validate import plain, validate_config
from ..data.datamodule import DataModule
from ..errors import CheckpointError, ConfigError
from ..model import build_model, count_parameters
from ..training.checkpoint import arch_string, load_checkpoint, load_model_state
from ..training.devices import PrecisionRefused, choose, fp16_autocast
from ..training.runtime import device_defaults, precision_name, seed_everything, select_device, set_deterministic

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
    multirun: bool = False
    sweep_dir: Path | None = None  # the sweep folder of a multirun job
    compile: bool = False  # trainer.compile, resolved (auto: the device table's choice)

    @property
    def tb_dir(self) -> Path:
        return tb_dir(self.run_dir, str(self.cfg.task), self.name, self.multirun)


def tb_dir(run_dir: Path, task: str, name: str, multirun: bool) -> Path:
    """The run's TensorBoard event folder, whose path TensorBoard shows as the run's name: `<job>/<run name>` in a
    sweep folder (`3/lr=0.001_wd=0.0001`), `<date>/<time>/<task>-<run name>` under outputs/ (`train-default`)."""
    folder = name if multirun else f"{task}-{name}"
    if folder in (".hydra", "checkpoints", "figures"):  # a run_name= that would land among the run's own files
        folder += "-events"
    return run_dir / folder


def hydra_run_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


def hydra_overrides() -> list[str]:
    """The command line's overrides (of the job, in a multirun)."""
    return list(HydraConfig.get().overrides.task)


def run_context(cfg: DictConfig) -> RunContext:
    hc = HydraConfig.get()
    absolute_paths(cfg)
    started_at = time.time() if hc.mode == RunMode.MULTIRUN else STARTED_AT
    overrides = list(hc.overrides.task)
    run_dir = Path(hc.runtime.output_dir)
    device = select_device(cfg.trainer.device)
    seed_everything(int(cfg.seed))
    set_deterministic(bool(cfg.trainer.deterministic))
    name_file = run_dir / "run_name.txt"
    if name_file.is_file():  # a continued run keeps its name (and its TensorBoard run)
        name = name_file.read_text().strip()
    else:
        name = run_name(cfg, overrides)
        write_text(name_file, name + "\n")
    dev = device_defaults(device)
    try:
        amp_dtype, compile_, warnings = choose(
            str(cfg.trainer.precision), plain(cfg.trainer.compile), dev, fp16_ok(dev)
        )
    except PrecisionRefused as exc:
        raise ConfigError(str(exc)) from None
    log.info(
        "Run %s in %s on %s (%d CPU threads), %s (trainer.precision=%s); device table: %s",
        name,
        run_dir,
        device,
        torch.get_num_threads(),
        precision_name(amp_dtype),
        cfg.trainer.precision,
        dev.describe(),
    )
    for line in warnings:
        log.warning("%s", line)
    return RunContext(
        cfg,
        run_dir,
        name,
        overrides,
        device,
        amp_dtype,
        use_channels_last(cfg, device),
        started_at,
        hc.mode == RunMode.MULTIRUN,
        Path(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else None,
        compile_,
    )


def fp16_ok(dev) -> bool:
    """This torch runs fp16 autocast on the device (checked only where fp16 can be asked for)."""
    return fp16_autocast(dev.name.split()[0].split(":")[0])


def absolute_paths(cfg: DictConfig) -> None:
    """data.path and data.cache_dir as absolute paths, as the run's checkpoints store them: a resume command works
    from any folder, whatever folder the run was started from."""
    for key in ("path", "cache_dir"):
        value = cfg.data.get(key)
        if value:
            cfg.data[key] = str(Path(str(value)).expanduser().absolute())


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


def open_tb(ctx: RunContext, purge_step: int | None = None) -> Trackers:
    """The run's trackers (`logger`: TensorBoard by default; csv, mlflow), all written through one object."""
    return open_trackers(ctx.cfg.get("logger"), ctx.tb_dir, ctx.run_dir, ctx.name, purge_step, ctx.sweep_dir)


def resolved(cfg: DictConfig) -> dict:
    """The config as plain data (what checkpoints store)."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


# Keys of the command itself, never taken from the checkpoint.
COMMAND_KEYS = ("task", "ckpt_path", "resume", "run_name", "evaluate", "lr_find", "inspect")


def _path(key: str) -> str:
    return key.replace("/", ".")  # a group override (model/blocks=b333) sets the node model.blocks


def config_from_checkpoint(cfg: DictConfig, saved: DictConfig, overrides: list, allowed: tuple, what: str):
    """The checkpoint's own config, so the user repeats no override. COMMAND_KEYS, and the keys in `allowed` the
    command line sets, come from the command line. Any other override that differs from the checkpoint would be
    silently ignored, so it is refused in one line (a different architecture with its own message)."""
    saved = saved.copy()
    for key in COMMAND_KEYS:
        OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False)
    for key in sorted(overridden_keys(overrides)):
        path = _path(key)
        if key.startswith("hydra") or path.split(".")[0] in COMMAND_KEYS:
            continue
        new, old = OmegaConf.select(cfg, path), OmegaConf.select(saved, path)
        if any(path == a or path.startswith(a + ".") for a in allowed):
            OmegaConf.update(saved, path, new, merge=False)
        elif plain(new) != plain(old):
            if path.split(".")[0] == "model":
                raise CheckpointError(
                    f"ckpt_path={cfg.ckpt_path!r}: checkpoint holds a different architecture "
                    f"({arch_string(resolved(saved))}) than requested ({arch_string(resolved(cfg))}); "
                    "drop the model overrides or pick a matching checkpoint"
                )
            raise ConfigError(
                f"{key}={plain(new)!r}: {what} keeps the checkpoint's value ({plain(old)!r}); allowed to change: "
                f"{', '.join(allowed)}; to train with other settings, start a new run"
            )
    validate_config(saved)
    return saved


def load_for_model(path) -> tuple[dict, DictConfig]:
    """A checkpoint and its config (on the current schema), checked before any data is loaded: the config is valid
    and the weights fit the architecture it records."""
    ckpt = load_checkpoint(path)
    try:
        saved = from_checkpoint(ckpt["config"])
        validate_config(saved)
    except ConfigError as exc:
        raise CheckpointError(
            f"ckpt_path={str(path)!r}: the config stored in the checkpoint is broken ({exc})"
        ) from None
    probe = build_model(saved.model, int(saved.data.num_classes))
    load_model_state(probe, ckpt, path)
    return ckpt, saved
