"""`python -m tinyimagenet_resnet.bench [throughput]`: throughput of the input pipelines and the train step, side by
side in one process, on this machine. Prints a table and writes JSON. Defaults keep a CPU run under ~2 minutes.

  python -m tinyimagenet_resnet.bench --data-path ../shared/tiny-imagenet
  python -m tinyimagenet_resnet.bench --data-path ../shared/tiny-imagenet --train-files 'data/train-*' --compile  # GPU
"""

from __future__ import annotations

import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from ..artifacts.files import write_json
from ..cli import UsageError, parser
from ..config.choices import Pipeline
from ..config.loader import compose_config
from ..data.datamodule import DataModule
from ..data.dataset import IMAGE_SIZE
from ..model import ResNet, count_parameters
from ..training.runtime import autocast, cpu_has_native_bf16, select_device

PEAK_BF16_TFLOPS = {"H100": 790.0, "H200": 790.0, "A100": 312.0}  # dense bf16, as used in the project's goals


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def data_config(args, batch_size: int):
    """The project's `data` config (conf/data/tiny_imagenet.yaml) with the benchmark's settings."""
    cfg = compose_config([]).data
    cfg.path, cfg.train_files, cfg.val_files = args.data_path, args.train_files, "data/valid-00000-*"
    cfg.num_workers, cfg.batch_size, cfg.cache_dir = args.workers, batch_size, args.cache_dir
    return cfg


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process (POSIX `resource`; None where it does not exist, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pipeline_throughput(dm: DataModule, device, n_images: int, fast: bool) -> dict:
    OmegaConf.update(dm.cfg, "pipeline", Pipeline.fast if fast else Pipeline.reference)
    t0 = time.perf_counter()
    loader = dm.train_loader(device)  # fast: decodes (or reuses) the uint8 cache, moves it to the device
    setup_s = time.perf_counter() - t0
    seen = 0
    t0 = time.perf_counter()
    while seen < n_images:
        for x, _ in loader:
            x = x.to(device, non_blocking=True)
            seen += len(x)
            if seen >= n_images:
                break
    sync(device)
    elapsed = time.perf_counter() - t0
    return {"images": seen, "seconds": elapsed, "images_per_s": seen / elapsed, "setup_s": setup_s}


def matmul_tflops(device, dtype: torch.dtype, n: int = 2048, repeat: int = 5) -> float:
    """The rate of a square matrix product in `dtype` on this device: what its cores reach on the densest kernel."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        torch.mm(a, b)
    sync(device)
    return 2 * n**3 * repeat / (time.perf_counter() - t0) / 1e12


def cpu_facts() -> dict:
    """The CPU model and the instruction sets that decide the precision (Linux: /proc/cpuinfo)."""
    facts = {"capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_native_bf16()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return facts
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), None)
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    facts.update(model=model, flags=sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}))
    return facts


def flops_per_image(blocks, device, size: int = IMAGE_SIZE) -> float:
    model = ResNet(blocks).to(device)
    x = torch.randn(2, 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), torch.zeros(2, dtype=torch.long, device=device)).backward()
    return counter.get_total_flops() / 2


def train_step_throughput(
    blocks, device, batch_size, steps, warmup, channels_last, amp_dtype, compile_, size: int = IMAGE_SIZE
) -> dict:
    torch.manual_seed(0)
    model = ResNet(blocks).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 3, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 200, (batch_size,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        with autocast(device, amp_dtype):
            loss = torch.nn.functional.cross_entropy(step_model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    elapsed = time.perf_counter() - t0
    out = {
        "images_per_s": steps * batch_size / elapsed,
        "step_ms": 1000 * elapsed / steps,
        "params": count_parameters(model),
    }
    if device.type == "cuda":
        out["peak_device_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def main(argv=None) -> int:
    p = parser("python -m tinyimagenet_resnet.bench throughput", __doc__)
    p.add_argument("--data-path", default=os.environ.get("TINYIMAGENET_PATH", "../shared/tiny-imagenet"))
    p.add_argument("--train-files", default="data/train-00000-*", help="train shards to load (glob under data path)")
    p.add_argument("--device", default="auto")
    p.add_argument("--blocks", default="2,2,2")
    p.add_argument("--batch-size", type=int, default=None, help="default 32 on CPU, 512 on CUDA")
    p.add_argument("--steps", type=int, default=None, help="timed train steps (default 6 on CPU, 50 on CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2 on CPU, 15 on CUDA)")
    p.add_argument("--pipeline-images", type=int, default=None, help="default 2048 on CPU, 50000 on CUDA")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="DataLoader workers (reference)")
    p.add_argument("--epoch-images", type=int, default=90_000, help="images per epoch for the epoch-time estimate")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--compile", action="store_true", help="torch.compile the optimized train step")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="optimized step: auto = bf16 autocast on CUDA and on CPUs with native bf16, else fp32",
    )
    p.add_argument("--peak-tflops", type=float, default=None, help="device bf16 peak (default: known GPUs)")
    p.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[],
        help="also time the optimized train step at these train resolutions (progressive resizing), e.g. 16 32 48",
    )
    p.add_argument("--out", default="bench.json")
    args = p.parse_args(argv)

    device = select_device(args.device)
    cuda = device.type == "cuda"
    blocks = [int(b) for b in args.blocks.split(",")]
    bs = args.batch_size or (512 if cuda else 32)
    steps = args.steps or (50 if cuda else 6)
    warmup = args.warmup if args.warmup is not None else (15 if cuda else 2)
    n_images = args.pipeline_images or (50_000 if cuda else 2048)
    if not (Path(args.data_path) / "data").is_dir():
        raise UsageError(
            f"--data-path={args.data_path!r}: no such dataset folder; allowed: a folder in the "
            "zh-plus/tiny-imagenet layout (README.md + data/*.parquet)"
        )
    machine = {
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        "cpu": cpu_facts(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": date.today().isoformat(),
        "command": " ".join(["python -m tinyimagenet_resnet.bench", *sys.argv[1:]]),
    }

    dm = DataModule.setup(data_config(args, bs), seed=0)
    ref = pipeline_throughput(dm, device, min(n_images, len(dm.splits["train"])), fast=False)
    fast = pipeline_throughput(dm, device, n_images, fast=True)

    use_bf16 = args.precision == "bf16" or (args.precision == "auto" and (cuda or cpu_has_native_bf16()))
    amp = torch.bfloat16 if use_bf16 else None
    base = train_step_throughput(blocks, device, bs, steps, warmup, False, None, False)
    opt = train_step_throughput(blocks, device, bs, steps, warmup, True, amp, args.compile)
    gflop = flops_per_image(blocks, device) / 1e9

    result = {
        "machine": machine,
        "settings": {
            "blocks": blocks,
            "batch_size": bs,
            "steps": steps,
            "warmup": warmup,
            "pipeline_images": n_images,
            "workers": args.workers,
            "compile": args.compile,
            "optimized": f"channels_last{' + bf16 autocast' if amp else ''}{' + compile' if args.compile else ''}",
        },
        "pipeline": {"reference_pil": ref, "fast": fast, "speedup": fast["images_per_s"] / ref["images_per_s"]},
        "train_step": {
            "fp32_nchw_eager": base,
            "optimized": opt,
            "speedup": opt["images_per_s"] / base["images_per_s"],
        },
        "gflop_per_image_fwd_bwd": gflop,
        "host_peak_rss_mb": peak_rss_mb(),
    }
    best_train = opt["images_per_s"]
    result["epoch_time_s"] = {
        "train_step_bound": args.epoch_images / best_train,
        "with_fast_pipeline": args.epoch_images / min(best_train, fast["images_per_s"]),
        "with_reference_pipeline": args.epoch_images / min(best_train, ref["images_per_s"]),
    }
    result["pipeline_over_train_step"] = fast["images_per_s"] / best_train
    # the train step's achieved FLOP rate against a matrix product in the same precision, on the same cores
    mm = matmul_tflops(device, amp or torch.float32)
    achieved = best_train * gflop / 1000
    result["matmul"] = {
        "dtype": "bf16" if amp else "fp32",
        "tflops": mm,
        "train_step_tflops": achieved,
        "train_step_over_matmul": achieved / mm,
    }
    by_size = {}
    for size in args.sizes:
        step = train_step_throughput(blocks, device, bs, steps, warmup, True, amp, args.compile, size=size)
        tflops = step["images_per_s"] * flops_per_image(blocks, device, size) / 1e12
        by_size[str(size)] = {**step, "tflops": tflops, "over_matmul": tflops / mm}
    if by_size:
        result["train_step_by_size"] = by_size
    if cuda:
        peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in machine["device"]), None)
        achieved = best_train * gflop / 1000
        result["tflops"] = {
            "achieved": achieved,
            "peak_bf16": peak,
            "fraction_of_peak": achieved / peak if peak else None,
        }

    rows = [
        ("input pipeline, per-image PIL (reference)", f"{ref['images_per_s']:,.0f} img/s", f"{args.workers} workers"),
        (
            "input pipeline, fast (cached uint8 + batched aug)",
            f"{fast['images_per_s']:,.0f} img/s",
            f"x{result['pipeline']['speedup']:.1f}; cache ready in {fast['setup_s']:.1f}s",
        ),
        ("train step, fp32 NCHW eager", f"{base['images_per_s']:,.1f} img/s", f"batch {bs}"),
        (
            f"train step, {result['settings']['optimized']}",
            f"{opt['images_per_s']:,.1f} img/s",
            f"x{result['train_step']['speedup']:.2f}",
        ),
        (
            "epoch time (90k images), fast pipeline",
            f"{result['epoch_time_s']['with_fast_pipeline']:,.1f} s",
            f"pipeline/train-step x{result['pipeline_over_train_step']:.1f}",
        ),
        (
            f"matrix product {result['matmul']['dtype']} (2048x2048)",
            f"{mm:,.3f} TFLOP/s",
            f"train step {achieved:.3f} TFLOP/s = x{result['matmul']['train_step_over_matmul']:.2f} of it",
        ),
        *(
            (
                f"train step at {size} px",
                f"{r['images_per_s']:,.1f} img/s",
                f"{r['tflops']:.3f} TFLOP/s = x{r['over_matmul']:.2f} of the matrix product",
            )
            for size, r in by_size.items()
        ),
        ("peak host memory", f"{result['host_peak_rss_mb'] or 0:,.0f} MB", ""),
        ("model cost", f"{gflop:.2f} GFLOP/img", "forward + backward"),
    ]
    if cuda:
        t = result["tflops"]
        rows.append(
            (
                "achieved",
                f"{t['achieved']:.1f} TFLOP/s",
                f"{100 * t['fraction_of_peak']:.1f}% of {t['peak_bf16']:.0f}" if t["peak_bf16"] else "peak unknown",
            )
        )
        rows.append(("peak device memory", f"{opt.get('peak_device_mem_mb', 0):,.0f} MB", ""))
    width = max(len(r[0]) for r in rows)
    print(f"{machine['device']} | torch {machine['torch']} | {machine['date']}")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>16}  {note}")
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0
