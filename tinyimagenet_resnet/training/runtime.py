"""Device choice, seeding, determinism, RNG state capture/restore and precision contexts."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

from .. import compat
from .devices import choose, cpu_defaults, cpu_native_bf16, defaults_for


def select_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda > mps > cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())  # the GPU a sweep job leased (placement.py)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    torch.use_deterministic_algorithms(enabled, warn_only=True)


def get_rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def device_defaults(device: torch.device):
    """The row of the device table (training/devices.py) for `device`."""
    if device.type == "cpu":
        return cpu_defaults(
            cpu_has_native_bf16(), compat.mkldnn_fp16_supported(), torch.backends.cpu.get_cpu_capability()
        )
    return defaults_for(device)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for plain fp32. `auto` = what the device table gives (training/devices.py): bf16 on
    CUDA sm >= 8.0 and on CPUs with native bf16 (AVX512-BF16 or AMX: 2.65x faster than fp32 there, BENCHMARKS.md),
    fp16 with loss scaling on CUDA sm 7.x and MPS, fp32 elsewhere (a CPU without them emulates bf16: 2-14x slower)."""
    return choose(str(precision), False, device_defaults(device))[0]


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def cpu_has_native_bf16() -> bool:
    """The CPU computes bf16 natively (AVX512-BF16 or AMX on x86: devices.native_bf16): bf16 autocast is then much
    faster than fp32 on it."""
    return cpu_native_bf16()


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
