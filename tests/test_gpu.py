"""On a CUDA device: the device-resident loader and batch augmentation, a bf16 + channels_last + compiled
train step, an exact resume after SIGKILL, and the GPU slot lease of a sweep job.

Marked `gpu` and skipped where no CUDA device exists. `benchmarks/gpu_suite.sh` runs them on the GPU machine.
To rehearse them on a CPU (everything but the lease): TINYIMAGENET_TEST_DEVICE=cpu pytest -m gpu tests/test_gpu.py
"""

import json
import os
import re
from datetime import datetime

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from tinyimagenet_resnet.data import batch_augment as BA
from tinyimagenet_resnet.data.datamodule import DataModule
from tinyimagenet_resnet.model import ResNet

from conftest import only_run_dir, run_main, sigkill_after_epoch_1_and_resume
from test_data import data_cfg
from test_fast_pipeline import aug_cfg

DEVICE = torch.device(os.environ.get("TINYIMAGENET_TEST_DEVICE", "cuda"))
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        DEVICE.type == "cuda" and not torch.cuda.is_available(),
        reason="no CUDA device here: these run on a GPU machine (benchmarks/gpu_suite.sh)",
    ),
]
ON = [f"trainer.device={DEVICE}", "data.num_workers=0", "trainer.progress_bar=false"]


def batch_stats(x: torch.Tensor):
    x = x.float().cpu()
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)), x.mean(dim=(2, 3)).std()


# ---- the input pipeline on the device ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["_brightness", "_contrast", "_saturation", "_hue"])
def test_each_jitter_op_on_the_device_matches_torchvision_on_the_cpu(name):
    op, ref = getattr(BA, name), getattr(TF, "adjust" + name)
    x = torch.rand(6, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    factors = torch.tensor([-0.2, -0.1, 0.0, 0.05, 0.15, 0.2] if name == "_hue" else [0.8, 0.9, 1.0, 1.1, 1.2, 0.95])
    f = factors.to(DEVICE) if name == "_hue" else factors.view(-1, 1, 1, 1).to(DEVICE)
    out = op(x.to(DEVICE), f).cpu()
    for b in range(len(x)):
        torch.testing.assert_close(out[b], ref(x[b], float(factors[b])), atol=1e-4, rtol=1e-4)


def test_each_image_of_a_device_batch_gets_its_own_parameters_drawn_as_on_the_cpu():
    n = 20000
    aug = BA.BatchAugment(aug_cfg())
    x = torch.rand(1, 3, 64, 64, device=DEVICE).repeat(n, 1, 1, 1)
    g = torch.Generator(device=DEVICE).manual_seed(1)
    out, params = aug(x, g, return_params=True)
    assert out.device.type == DEVICE.type and params["crop_w"].device.type == DEVICE.type
    assert torch.unique(out[:64].flatten(1), dim=0).shape[0] == 64  # 64 copies of one image, 64 results
    _, cpu = aug.crop_flip_theta(n, torch.Generator().manual_seed(1), torch.device("cpu"))
    for key in ("crop_w", "brightness", "contrast", "saturation", "hue"):
        if key not in params:
            continue
        a, b = params[key].float().cpu(), cpu[key].float() if key in cpu else None
        if b is not None:  # the same distribution as the CPU's draws (different generators, so not the same values)
            assert abs(a.mean() - b.mean()) < 0.02 * max(1.0, float(b.abs().mean())), key
            assert abs(a.std() - b.std()) < 0.05 * max(float(b.std()), 1e-3) + 0.01, key
        assert a.std() > 0, key
    sides = set(params["crop_w"].int().cpu().tolist())
    assert sides == set(range(57, 65))
    assert abs(params["flip"].float().mean().item() - 0.5) < 0.015


def test_the_device_resident_loader_gives_the_cpu_loaders_statistics(tiny_data):
    dm = DataModule.setup(data_cfg(tiny_data, pipeline="fast", batch_size=72), seed=0)
    on_device, on_cpu = dm.train_loader(DEVICE), dm.train_loader(torch.device("cpu"))
    assert on_device.x.device.type == DEVICE.type  # resident: the whole split was moved to the device once
    xs_d, xs_c = [], []
    for epoch in range(12):
        xd, yd = next(on_device.epoch(epoch))
        assert xd.device.type == yd.device.type == DEVICE.type and xd.dtype == torch.float32
        xs_d.append(xd.cpu())
        xs_c.append(next(on_cpu.epoch(epoch))[0])
    (md, sd, spread_d), (mc, sc, spread_c) = batch_stats(torch.cat(xs_d)), batch_stats(torch.cat(xs_c))
    assert torch.allclose(md, mc, atol=0.06), (md, mc)
    assert torch.allclose(sd, sc, rtol=0.06), (sd, sc)
    assert abs(spread_d - spread_c) < 0.1
    # the same order of images on both devices (the permutation is drawn on the CPU from (seed, epoch))
    assert torch.equal(next(on_device.epoch(3))[1].cpu(), next(on_cpu.epoch(3))[1])
    # validation has no random operation: identical up to float rounding
    vd = next(iter(dm.eval_loader("val", DEVICE)))[0].cpu()
    vc = next(iter(dm.eval_loader("val", torch.device("cpu"))))[0]
    torch.testing.assert_close(vd, vc, atol=1e-5, rtol=0)


# ---- the train step ------------------------------------------------------------------------------------------------


def test_a_compiled_bf16_channels_last_step_agrees_with_eager_and_learns():
    torch.manual_seed(0)
    model = ResNet([1, 1, 1], widths=[16, 32, 64], dropout=0.0).to(DEVICE).to(memory_format=torch.channels_last)
    compiled = torch.compile(model)
    x = torch.randn(64, 3, 64, 64, device=DEVICE).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 200, (64,), device=DEVICE)
    model.eval()
    with torch.no_grad(), torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        eager_out, compiled_out = model(x).float(), compiled(x).float()
    # bf16 keeps 8 bits of mantissa: the two graphs round differently, by a few units in the last place
    torch.testing.assert_close(compiled_out, eager_out, atol=0.05, rtol=0.05)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(compiled(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert losses[-1] < 0.5 * losses[0], losses  # it memorises one batch


def test_a_run_with_bf16_channels_last_and_compile_trains_and_says_so(tiny_data, tmp_path):
    args = [
        f"data.path={tiny_data}",
        *ON,
        "model.widths=[16,32,64]",
        "data.batch_size=32",
        "trainer.epochs=2",
        "trainer.precision=bf16",
        "trainer.channels_last=true",
        "trainer.compile=true",
    ]
    run_main(args, cwd=tmp_path)
    run = only_run_dir(tmp_path)
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "ok" and m["epochs_run"] == 2
    assert m["precision"] == "bf16" and m["device"].startswith(DEVICE.type)
    assert all(torch.isfinite(torch.tensor(h["train/loss"])) for h in m["history"])
    assert "bf16" in (run / "main.log").read_text()


def test_sigkill_after_epoch_1_resumes_bitwise_when_deterministic(tiny_data, tmp_path):
    args = [
        f"data.path={tiny_data}",
        *ON,
        "model.widths=[16,32,64]",
        "data.batch_size=8",
        "trainer.epochs=3",
        "trainer.precision=bf16",
        "trainer.deterministic=true",
    ]
    clean_run, run, partial, _ = sigkill_after_epoch_1_and_resume(args, tmp_path, timeout=300)
    assert partial["epochs_run"] < 3

    a = json.loads((clean_run / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    assert b["status"] == "ok" and b["epochs_run"] == 3
    for ha, hb in zip(a["history"], b["history"], strict=True):
        for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy"):
            assert ha[key] == hb[key], (key, ha, hb)
    wa = torch.load(clean_run / "checkpoints/last.ckpt", weights_only=False, map_location="cpu")["model"]
    wb = torch.load(run / "checkpoints/last.ckpt", weights_only=False, map_location="cpu")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa), [k for k in wa if not torch.equal(wa[k], wb[k])]


# ---- the GPU slot lease of a sweep job -----------------------------------------------------------------------------

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def leased_span(log: str) -> tuple[datetime, datetime]:
    """From the job's "GPU placement" line (its lease taken) to its last line. A job that waited for a slot logs
    that it waits before it holds one (on the device, the first run of this test measured from the first line)."""
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if "GPU placement:" in line)
    times = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in map(STAMP.match, lines[start:]) if m]
    return times[0], times[-1]


@pytest.mark.skipif(DEVICE.type != "cuda", reason="the lease places jobs on CUDA devices")
def test_two_jobs_with_one_slot_take_the_gpu_one_after_the_other(tiny_data, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="needs the joblib launcher (.[joblib])")
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "trainer.jobs_per_gpu=1",
        f"data.path={tiny_data}",
        "data.num_workers=0",
        "trainer.progress_bar=false",
        "model.widths=[16,32,64]",
        "trainer.epochs=1",
        "optim.lr=0.001,0.002",
    ]
    run_main(args, cwd=tmp_path)
    logs = [p.read_text() for p in sorted(tmp_path.glob("multirun/*/*/*/main.log"))]
    assert len(logs) == 2
    n = torch.cuda.device_count()
    for log in logs:
        assert re.search(r"GPU placement: cuda:\d \(GPU-[^)]+\), trainer.jobs_per_gpu=1", log), log[-2000:]
        assert re.search(r"on cuda:\d", log)
    if n == 1:  # both leased the one GPU's single slot: the second started once the first had finished
        (s1, e1), (s2, e2) = sorted(map(leased_span, logs))
        assert e1 <= s2, ((s1, e1), (s2, e2))
        assert sum("are taken; waiting for one" in log for log in logs) == 1  # the second job waited for the slot


# ---- fp16 + loss scaling and the batch-size search on the device ----------------------------------------


def test_fp16_with_loss_scaling_on_the_device_resumes_exactly(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", *ON, "model.widths=[16,32,64]", "data.batch_size=72", "trainer.epochs=3"]
    args += ["trainer.precision=fp16", "trainer.loss_scale=1e9"]  # the first steps overflow: skipped by the scaler
    clean, resumed, _, _ = sigkill_after_epoch_1_and_resume(args, tmp_path)
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (clean, resumed))
    assert a["precision"] == "fp16" and a["actual"]["skipped_steps"] >= 1
    assert a["actual"]["skipped_steps"] == b["actual"]["skipped_steps"] and a["best"] == b["best"]


@pytest.mark.skipif(DEVICE.type != "cuda", reason="a per-process memory fraction is a CUDA setting")
def test_the_batch_size_search_under_a_small_memory_fraction():
    from tinyimagenet_resnet.training.memory import largest_fitting, train_trial

    free, total = torch.cuda.mem_get_info()
    torch.cuda.set_per_process_memory_fraction(min(1.0, 2 * 2**30 / total))  # 2 GiB for this process
    try:
        model = ResNet([2, 2, 2], [64, 128, 256], num_classes=200).to(DEVICE).to(memory_format=torch.channels_last)
        trial = train_trial(model, lambda p: torch.optim.AdamW(p), DEVICE, torch.bfloat16, True, 200)
        found, failed = largest_fitting(trial, 4096)
        assert found is not None and 1 <= found < 4096 and failed and failed[-1] == 2 * found
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
