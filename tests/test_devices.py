"""What `auto` picks on the devices students train on (the table of training/devices.py, against the capability
tuples of real GPUs), and the fp16 + loss-scaling path end to end on the CPU: a run, steps with inf gradients
skipped by the scaler, a checkpoint that carries the scaler, an exact resume."""

import json
import platform

import pytest
import torch

from tinyimagenet_resnet import compat
from tinyimagenet_resnet.artifacts.records import TrainMetrics
from tinyimagenet_resnet.training import runtime
from tinyimagenet_resnet.training.devices import (
    PrecisionRefused,
    choose,
    cpu_defaults,
    cpu_flags,
    cuda_defaults,
    defaults_for,
    fp16_autocast,
    mps_defaults,
    native_bf16,
)

from conftest import TINY_ARGS, refusal, run_main, sigkill_after_epoch_1_and_resume

# (capability, name): what the table must say
REAL_GPUS = [
    ((7, 5), "Tesla T4", "fp16", True),
    ((7, 0), "Tesla V100-SXM2-16GB", "fp16", True),
    ((6, 0), "Tesla P100-PCIE-16GB", "fp32", False),
    ((3, 7), "Tesla K80", "fp32", False),
    ((8, 0), "NVIDIA A100-SXM4-40GB", "bf16", True),
    ((8, 9), "NVIDIA L4", "bf16", True),
    ((8, 6), "NVIDIA GeForce RTX 3060", "bf16", True),
    ((9, 0), "NVIDIA H100 80GB HBM3", "bf16", True),
]


@pytest.mark.parametrize("capability,name,precision,compiles", REAL_GPUS, ids=[g[1] for g in REAL_GPUS])
def test_the_device_table_on_real_gpus(capability, name, precision, compiles):
    dev = cuda_defaults(capability, name)
    dtype, compile_, warnings = choose("auto", "auto", dev)
    assert (dev.precision, dev.compile, compile_, warnings) == (precision, compiles, compiles, [])
    assert dtype == {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]
    line = dev.describe()
    assert line.startswith(f"cuda sm_{capability[0]}{capability[1]} ({name}): ")
    assert ("fp16 + loss scaling" in line) == (precision == "fp16") and f"compile {'on' if compiles else 'off'}" in line


def test_an_explicit_precision_the_device_lacks_is_a_warning_and_runs():
    t4 = cuda_defaults((7, 5), "Tesla T4")
    dtype, _, warnings = choose("bf16", "auto", t4)
    assert dtype is torch.bfloat16 and len(warnings) == 1
    assert (
        "trainer.precision=bf16: cuda sm_75 (Tesla T4) has no native bf16" in warnings[0]
        and "picks fp16" in warnings[0]
    )
    assert choose("fp16", "auto", t4)[2] == []  # native there
    p100 = cuda_defaults((6, 0), "Tesla P100")
    _, compile_, warnings = choose("fp32", True, p100)
    assert compile_ and "below sm_70" in warnings[0]


# The first lines of a real /proc/cpuinfo (an Intel Xeon, Ice Lake: AVX512 without AVX512-BF16), shortened.
ICELAKE = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor @ 2.80GHz
flags\t\t: fpu vme sse sse2 avx f16c fma avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bitalg
bogomips\t: 5586.87
"""


def test_bf16_is_native_on_x86_only_with_avx512_bf16_or_amx():
    flags = cpu_flags(ICELAKE)
    assert {"avx2", "avx512f", "avx512bw", "avx512_vnni"} <= flags
    # oneDNN's probe says yes on any AVX512 CPU like this one, which emulates bf16 (2-3x slower than fp32)
    assert native_bf16("x86_64", flags) is False
    assert native_bf16("x86_64", flags | {"avx512_bf16"}) is True  # Zen 4, Cooper Lake
    assert native_bf16("AMD64", flags | {"amx_bf16", "amx_tile"}) is True  # Sapphire Rapids (Windows' name)
    assert native_bf16("x86_64", None) is False  # flags unreadable (macOS, Windows): fp32
    assert cpu_flags("processor\t: 0\n") is None
    arm = cpu_flags("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert "bf16" in arm
    # on Arm, oneDNN's probe (it reads the CPU's BF16 feature)
    assert native_bf16("aarch64", arm) is compat.mkldnn_bf16_supported()
    # this machine: what trainer.precision=auto picks (from torch's detection of the CPU's features) follows the
    # flags Linux reads off the same CPU
    here = cpu_flags()
    if here is not None and platform.machine().lower() in ("x86_64", "amd64"):
        native = bool({"avx512_bf16", "amx_bf16"} & here)
        assert runtime.device_defaults(torch.device("cpu")).precision == ("bf16" if native else "fp32")
        assert defaults_for(torch.device("cpu")).precision == ("bf16" if native else "fp32")


def test_the_cpu_and_mps_rows():
    assert cpu_defaults(True, False, "avx512").precision == "bf16"
    assert cpu_defaults(False, False, "avx2").precision == "fp32" and not cpu_defaults(False, False).compile
    assert mps_defaults(True).precision == "fp16" and not mps_defaults(True).compile
    assert mps_defaults(False).precision == "fp32"
    # fp16 where this torch has no fp16 autocast for the device: refused, naming what is allowed
    with pytest.raises(PrecisionRefused, match=r"trainer.precision=fp16: this torch .* no fp16 autocast on cpu"):
        choose("fp16", "auto", cpu_defaults(False, False), fp16_autocast=False)
    assert fp16_autocast("cpu") is True  # the installed torch runs fp16 autocast on a CPU


def test_compile_auto_is_a_value_of_the_schema(tiny_data, tmp_path, monkeypatch):
    line = refusal([f"data.path={tiny_data}", "trainer.compile=sometimes"], tmp_path, monkeypatch)
    assert "trainer.compile='sometimes'" in line and "auto|true|false" in line
    line = refusal([f"data.path={tiny_data}", "trainer.loss_scale=0"], tmp_path, monkeypatch)
    assert "trainer.loss_scale=0" in line


# trained at 16 px: the CPU has no fp16 kernels of its own, and an epoch at 64 px takes 6 s there instead of 0.7
FP16 = [
    *TINY_ARGS,
    "data.batch_size=72",
    "trainer.precision=fp16",
    "trainer.progress_bar=false",
    "trainer.train_sizes=[16]",
]


def test_fp16_with_loss_scaling_runs_skips_inf_steps_and_resumes_exactly(tiny_data, tmp_path):
    # a first scale of 1e9 overflows fp16 gradients: the scaler skips those steps and halves its scale each time
    args = [f"data.path={tiny_data}", *FP16, "trainer.epochs=3", "trainer.loss_scale=1e9"]
    clean, resumed, partial, _ = sigkill_after_epoch_1_and_resume(args, tmp_path)
    a, b = TrainMetrics.read(clean), TrainMetrics.read(resumed)
    assert a.precision == "fp16" and a.status == b.status == "ok"
    assert a.actual["skipped_steps"] >= 1 and a.actual["skipped_steps"] == b.actual["skipped_steps"]
    ckpt = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)
    assert 0 < ckpt["scaler"]["scale"] < 1e9  # the checkpoint carries the scaler, halved by the skipped steps
    assert ckpt["state"]["skipped_steps"] == a.actual["skipped_steps"]
    for ra, rb in zip(a.history, b.history, strict=True):
        assert (ra.train_loss, ra.val_loss, ra.val_accuracy) == (rb.train_loss, rb.val_loss, rb.val_accuracy)
    wa = torch.load(clean / "checkpoints" / "last.ckpt", weights_only=False)["model"]
    for k, v in ckpt["model"].items():
        assert torch.equal(v, wa[k]), k
    log = (clean / "main.log").read_text()
    assert "device table: cpu" in log and "has no native fp16" in log and "loss scaler has skipped" in log


def test_fp16_metrics_json_records_the_skipped_steps_and_bf16_runs_do_not(tiny_data, tmp_path):
    run_main([f"data.path={tiny_data}", *FP16, "trainer.epochs=1", "trainer.precision=fp32"], cwd=tmp_path)
    [metrics] = tmp_path.glob("outputs/*/*/metrics.json")
    assert "skipped_steps" not in json.loads(metrics.read_text())["actual"]
