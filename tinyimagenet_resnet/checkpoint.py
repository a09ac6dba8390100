"""Checkpoints written atomically (temp file + fsync + rename) and loaded with clear errors."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .errors import CheckpointError

CKPT_VERSION = 1
REQUIRED_KEYS = ("model", "optimizer", "epoch", "config")


def atomic_save(obj, path: Path) -> None:
    """A crash at any moment leaves either the old file or the new one, never a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
    return ckpt


def load_model_state(model: torch.nn.Module, ckpt: dict, path, key: str = "ckpt_path") -> None:
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{key}={str(path)!r}: architecture mismatch with model {arch_string(ckpt['config'])} ({first[:120]})"
        ) from None


def arch_string(cfg) -> str:
    m = cfg["model"]
    return f"blocks={list(m['blocks'])} widths={list(m['widths'])} batch_norm={m['batch_norm']}"
