"""What `trainer.precision=auto` and `trainer.compile=auto` choose on each device, in one table, with the reason
logged at start (`cuda sm_75 (Tesla T4): fp16 + loss scaling, compile on`).

Sources: NVIDIA's compute-capability list (developer.nvidia.com/cuda-gpus) and the architecture whitepapers:
bf16 tensor cores arrived with Ampere (sm_80: A100, RTX 30, A10, L4 is Ada sm_89, H100 Hopper sm_90); Volta (sm_70,
V100) and Turing (sm_75, T4, RTX 20) have fp16 tensor cores only; Pascal (sm_60/61: P100, GTX 10) and Kepler
(sm_37: K80) have none. Triton, which `torch.compile` generates its GPU kernels with, needs sm_70 or newer. On a CPU,
oneDNN has native bf16 with AVX512-BF16 or AMX (2.65x faster than fp32 on an AMD EPYC) and native fp16 with
AVX512-FP16 or AMX-FP16; elsewhere it emulates them (bf16 14x slower than fp32 on an AVX2 CPU, 2-3x slower on an
AVX512 Xeon without AVX512-BF16: BENCHMARKS.md). Apple's MPS runs fp16 autocast where the installed torch supports
it (torch.amp.is_autocast_available("mps")); compile stays off.
"""

from __future__ import annotations

import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import compat

# (minimum CUDA capability, precision, compile, what the row is) - the first row the device reaches applies
CUDA_TABLE: tuple[tuple[tuple[int, int], str, bool, str], ...] = (
    ((8, 0), "bf16", True, "bf16 tensor cores (Ampere and newer: A100, A10, L4, RTX 30/40, H100)"),
    ((7, 0), "fp16", True, "fp16 tensor cores, no bf16 ones (Volta, Turing: V100, T4, RTX 20)"),
    ((0, 0), "fp32", False, "no tensor cores, and Triton (torch.compile) needs sm_70 (Pascal and older: P100, K80)"),
)
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
X86 = ("x86_64", "amd64", "i386", "i686", "x86")  # platform.machine() of an x86 CPU
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # their names in /proc/cpuinfo


def cpu_flags(cpuinfo: str | None = None) -> set[str] | None:
    """The CPU's feature flags (the `flags` line of /proc/cpuinfo, `Features` on Arm), or None where they cannot be
    read (macOS, Windows)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def cpu_features() -> set[str] | None:
    """The CPU's features as torch detects them on any OS (`torch.cpu.get_capabilities()`, from cpuinfo, where the
    installed torch has it), else the flags of /proc/cpuinfo, else None."""
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is not None:
        try:
            return {name for name, value in get().items() if value is True}
        except (RuntimeError, AttributeError):
            pass
    return cpu_flags()


def native_bf16(machine: str, flags: set[str] | None) -> bool:
    """Whether a CPU computes bf16 natively. On x86: AVX512-BF16 or AMX-BF16 among its `flags` (the names torch and
    Linux give them; None where they cannot be read: fp32, never the slow choice). oneDNN's own probe
    (`compat.mkldnn_bf16_supported`) says yes on every AVX512 CPU, which emulates bf16 without them: 2.0x slower
    than fp32 at the smoke widths and 3.0x at full width on an Ice Lake Xeon (BENCHMARKS.md). Elsewhere (Arm)
    oneDNN's probe, which reads the CPU's BF16 feature."""
    if machine.lower() in X86:
        return flags is not None and bool(BF16_FLAGS & flags)
    return compat.mkldnn_bf16_supported()


def cpu_native_bf16() -> bool:
    """This machine's CPU computes bf16 natively (`native_bf16`)."""
    return native_bf16(platform.machine(), cpu_features())


@dataclass(frozen=True)
class DeviceDefaults:
    """What `auto` means on one device: the autocast precision, whether torch.compile runs, and why."""

    name: str  # e.g. "cuda sm_75 (Tesla T4)", "cpu (avx2)"
    precision: str  # bf16 | fp16 | fp32
    compile: bool
    reason: str
    native: frozenset[str]  # the low precisions this device computes natively

    def describe(self) -> str:
        amp = {"fp16": "fp16 + loss scaling", "bf16": "bf16", "fp32": "fp32"}[self.precision]
        return f"{self.name}: {amp}, compile {'on' if self.compile else 'off'} ({self.reason})"


def cuda_defaults(capability: tuple[int, int], name: str = "") -> DeviceDefaults:
    """The row of CUDA_TABLE for a device of compute capability `capability` (e.g. (7, 5) for a T4)."""
    for minimum, precision, compile_, why in CUDA_TABLE:
        if tuple(capability) >= minimum:
            native = {"bf16": {"bf16", "fp16"}, "fp16": {"fp16"}, "fp32": set()}[precision]
            label = f"cuda sm_{capability[0]}{capability[1]}" + (f" ({name})" if name else "")
            return DeviceDefaults(label, precision, compile_, why, frozenset(native))
    raise ValueError(f"capability {capability}")


def cpu_defaults(native_bf16: bool, native_fp16: bool, capability: str = "") -> DeviceDefaults:
    native = {p for p, ok in (("bf16", native_bf16), ("fp16", native_fp16)) if ok}
    why = "native bf16 (AVX512-BF16 or AMX)" if native_bf16 else "no native bf16: emulated bf16 is 2-14x slower"
    label = "cpu" + (f" ({capability})" if capability else "")
    # torch.compile on a CPU was slower than eager in our measurement (experiment=cpu's notes): off
    return DeviceDefaults(label, "bf16" if native_bf16 else "fp32", False, why, frozenset(native))


def mps_defaults(fp16_autocast: bool) -> DeviceDefaults:
    if fp16_autocast:
        why = "MPS autocast in this torch; no Triton on Apple GPUs"
        return DeviceDefaults("mps", "fp16", False, why, frozenset({"fp16"}))
    return DeviceDefaults("mps", "fp32", False, "this torch has no MPS autocast", frozenset())


def defaults_for(device: torch.device) -> DeviceDefaults:
    """The table's row for the device a run uses."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return cuda_defaults(torch.cuda.get_device_capability(index), torch.cuda.get_device_name(index))
    if device.type == "mps":
        return mps_defaults(fp16_autocast("mps"))
    capability = torch.backends.cpu.get_cpu_capability().lower()
    return cpu_defaults(cpu_native_bf16(), compat.mkldnn_fp16_supported(), capability)


def fp16_autocast(device_type: str) -> bool:
    """The installed torch runs fp16 autocast on this kind of device (older ones refuse it on a CPU, with a
    warning, and run fp32)."""
    if not torch.amp.is_autocast_available(device_type):
        return False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autocast(device_type, dtype=torch.float16):
                enabled = torch.get_autocast_dtype(device_type) == torch.float16
        except (RuntimeError, ValueError):
            return False
    return enabled and not caught


class PrecisionRefused(ValueError):
    """A precision the installed torch cannot run on this device at all."""


def choose(precision: str, compile_setting, dev: DeviceDefaults, fp16_autocast: bool = True):
    """(autocast dtype, compile, warnings) for `trainer.precision` and `trainer.compile` on device `dev`.
    An explicit precision the device has no native support for is a warning (it runs, slowly); fp16 where this
    torch has no fp16 autocast for the device is refused (PrecisionRefused)."""
    warnings = []
    chosen = dev.precision if precision == "auto" else str(precision)
    if chosen == "fp16" and not fp16_autocast:
        raise PrecisionRefused(
            f"trainer.precision=fp16: this torch ({torch.__version__}) has no fp16 autocast on {dev.name}; allowed "
            "here: auto|fp32|bf16"
        )
    if precision != "auto" and chosen != "fp32" and chosen not in dev.native:
        warnings.append(
            f"trainer.precision={chosen}: {dev.name} has no native {chosen}, so it is emulated and slower than fp32; "
            f"trainer.precision=auto picks {dev.precision} here"
        )
    if compile_setting == "auto":
        compile_ = dev.compile
    else:
        compile_ = bool(compile_setting)
        if compile_ and dev.name.startswith("cuda") and not dev.compile:
            warnings.append(f"trainer.compile=true: {dev.name} is below sm_70, which Triton needs; expect it to fail")
    return DTYPES[chosen], compile_, warnings
