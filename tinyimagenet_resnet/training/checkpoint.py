"""Checkpoints: what one holds (assembled here, with its format version), written atomically, loaded with one-line
errors; `Trainer.restore` (training/engine.py) continues a run exactly where one stopped.

Format (CKPT_VERSION 1): version, model, optimizer, scheduler (for information: a resume recomputes the LR of its step),
scaler (state dicts), ema (the weight average, when
trainer.ema_decay is set: what evaluation uses), epoch, state (TrainState as JSON: history rows keyed by metric name,
the budget plan), metrics (the last epoch's row), config (the resolved config), rng (python, numpy, torch, cuda),
plus the task's `checkpoint_meta` (split: the split summary). Newer keys are optional, so files written before them
still load."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from ..artifacts.files import atomic_path
from ..errors import CheckpointError
from .engine import Trainer
from .runtime import get_rng_state

CKPT_VERSION = 1
REQUIRED_KEYS = ("model", "optimizer", "epoch", "config")


def atomic_save(obj, path: Path) -> Path:
    """A crash at any moment leaves either the old file or the new one, never a torn file. Serialised in memory
    first, so that a full disk is the plain OSError of a write (torch.save's own is an opaque RuntimeError)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(buffer.getbuffer())
    return Path(path)


def assemble(trainer: Trainer) -> dict:
    s = trainer.state
    return {
        "version": CKPT_VERSION,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "scaler": trainer.scaler.state_dict(),
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "epoch": s.epoch,
        "state": s.to_json(),
        "metrics": s.history[-1].to_json() if s.history else {},
        "rng": get_rng_state(),
        **trainer.checkpoint_meta,
    }


def save(trainer: Trainer, path: Path) -> Path:
    return atomic_save(assemble(trainer), path)


def load_checkpoint(path, key: str = "ckpt_path") -> dict:
    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise CheckpointError(f"{key}={str(path)!r}: no such file; allowed: a .ckpt written by task=train")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - truncated or not a torch file
        raise CheckpointError(
            f"{key}={str(path)!r}: unreadable checkpoint (truncated or not a checkpoint: {type(exc).__name__}); "
            "allowed: a .ckpt written by task=train"
        ) from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise CheckpointError(f"{key}={str(path)!r}: not a tinyimagenet_resnet checkpoint (keys missing)")
    version = ckpt.get("version", 1)
    if version > CKPT_VERSION:
        raise CheckpointError(
            f"{key}={str(path)!r}: checkpoint format {version} is newer than this version reads "
            f"({CKPT_VERSION}); upgrade tinyimagenet-resnet"
        )
    return ckpt


def eval_weights(ckpt: dict) -> dict:
    """The weights to evaluate: the weight average when the run kept one, else the trained weights."""
    return ckpt["ema"]["model"] if ckpt.get("ema") else ckpt["model"]


def load_model_state(model: torch.nn.Module, ckpt: dict, path, key: str = "ckpt_path") -> None:
    try:
        model.load_state_dict(eval_weights(ckpt))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{key}={str(path)!r}: architecture mismatch with model {arch_string(ckpt['config'])} ({first[:120]})"
        ) from None


def arch_string(cfg) -> str:
    m = cfg["model"]
    return f"blocks={list(m['blocks'])} widths={list(m['widths'])} batch_norm={m['batch_norm']}"
