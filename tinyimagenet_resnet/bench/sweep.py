"""`python -m tinyimagenet_resnet.bench sweep`: sweep throughput (trials per hour) against the number of jobs run
side by side, through the real entry point and the joblib launcher.

On a machine with GPUs each setting N runs `trainer.jobs_per_gpu=N` (N jobs share each GPU, n_jobs = GPUs x N); on
a CPU-only machine N parallel processes split the cores. Each trial is a short training run on one shard, so the
figure is the sweep's, start-up and data loading included. Prints a table and writes JSON.

  python -m tinyimagenet_resnet.bench sweep --data-path ../shared/tiny-imagenet --parallel 1 2 --trials 4
  python -m tinyimagenet_resnet.bench sweep --data-path ../shared/tiny-imagenet --parallel 1 2 4 --trials 16 \\
      --steps 200 --extra data.batch_size=256                                                     # one GPU
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

from ..artifacts.files import write_json
from ..cli import UsageError, parser
from ..config.kinds import command_argv
from ..scale.launchers import gpu_count


def run_sweep(args, parallel: int, gpus: int, workdir: Path) -> dict:
    lrs = ",".join(f"{1e-3 * (1 + i / args.trials):.6g}" for i in range(args.trials))  # distinct trials
    placement = [f"trainer.jobs_per_gpu={parallel}"] if gpus else [f"hydra.launcher.n_jobs={parallel}"]
    cmd = [
        *command_argv(),
        "-m",
        "hydra/launcher=joblib",
        *placement,
        f"data.path={args.data_path}",
        f"data.train_files={args.train_files}",
        f"data.val_files={args.val_files}",
        "trainer.epochs=1",
        f"trainer.limit_train_batches={args.steps}",
        f"optim.lr={lrs}",
        *args.extra,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or ["(no output)"]
        raise UsageError(f"the sweep with {parallel} parallel job(s) failed (exit {proc.returncode}): {tail[0][:300]}")
    return {
        "parallel": parallel,
        "n_jobs": gpus * parallel if gpus else parallel,
        "trials": args.trials,
        "wall_s": round(wall, 1),
        "trials_per_hour": round(3600 * args.trials / wall, 1),
        "command": " ".join(cmd[1:]),
    }


def main(argv=None) -> int:
    p = parser("python -m tinyimagenet_resnet.bench sweep", __doc__)
    p.add_argument("--data-path", default=os.environ.get("TINYIMAGENET_PATH", "../shared/tiny-imagenet"))
    p.add_argument("--train-files", default="data/train-00000-*")
    p.add_argument("--val-files", default="data/valid-00000-*")
    p.add_argument(
        "--parallel",
        type=int,
        nargs="+",
        default=[1, 2],
        help="jobs per GPU (GPU machine) or parallel processes (CPU-only), one sweep each",
    )
    p.add_argument("--trials", type=int, default=4, help="trials per sweep")
    p.add_argument("--steps", type=int, default=20, help="train batches per trial (trainer.limit_train_batches)")
    p.add_argument("--extra", nargs="*", default=[], help="more overrides for every trial, e.g. data.batch_size=256")
    p.add_argument("--out", default="bench_sweep.json")
    args = p.parse_args(argv)
    if any(n < 1 for n in args.parallel) or args.trials < 1 or args.steps < 1:
        p.error("--parallel, --trials and --steps take integers >= 1")
    gpus = gpu_count()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_sweep-") as tmp:
        for n in args.parallel:
            rows.append(run_sweep(args, n, gpus, Path(tmp)))
            r = rows[-1]
            print(
                f"{n} {'job(s) per GPU' if gpus else 'parallel job(s)'}: {r['trials']} trials in {r['wall_s']} s "
                f"= {r['trials_per_hour']} trials/h",
                flush=True,
            )
    base = rows[0]["trials_per_hour"]
    for r in rows:
        r["speedup_vs_first"] = round(r["trials_per_hour"] / base, 2)
    result = {
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "gpus": gpus,
        "trials": args.trials,
        "steps_per_trial": args.steps,
        "rows": rows,
    }
    write_json(args.out, result)
    print(f"{'parallel':>8} {'n_jobs':>6} {'wall s':>8} {'trials/h':>9} {'x first':>8}")
    for r in rows:
        print(
            f"{r['parallel']:>8} {r['n_jobs']:>6} {r['wall_s']:>8} {r['trials_per_hour']:>9} {r['speedup_vs_first']:>8}"
        )
    print(f"-> {args.out}")
    return 0
