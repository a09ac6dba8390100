"""`python -m tinyimagenet_resnet.bench tta`: time to accuracy. Runs recipes one after the other under a time budget
(`trainer.budget_minutes`) through the real entry point, on the full data, and writes val top-1 against wall-clock
minutes since each command started: `tta.csv`, `tta.png` (the recipes side by side), `tta.json` (machine, command),
and each run's raw files (metrics.json, main.log, config, TensorBoard events; no checkpoints) under OUT/<recipe>/.

  python -m tinyimagenet_resnet.bench tta --data-path ../shared/tiny-imagenet --budget 60 --recipe cpu \\
      --out benchmarks/results/2026-11-25-cpu-avx2
  python -m tinyimagenet_resnet.bench tta --data-path ../shared/tiny-imagenet --budget 20 \\
      --recipe cpu --recipe course-fp32 --out benchmarks/results/2026-11-25-cpu-avx2-20min
  python -m tinyimagenet_resnet.bench tta --plot-only --from DIR --from DIR2 --out DIR3   # one plot of earlier runs

A recipe is a name below, or "NAME:override override ..." (Hydra overrides, separated by spaces). Points before
the last one of a run are measured on `--interim-val-images` val images (cheaper); the last one on the whole val
split.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from ..artifacts.files import write_csv, write_json
from ..artifacts.records import TrainMetrics
from ..artifacts.runs import Run
from ..cli import UsageError, parser
from ..config.kinds import command_argv
from ..reporting import figures

RECIPES = {
    "cpu": ["experiment=cpu"],  # the best recipe measured for a CPU (conf/experiment/cpu.yaml)
    "course-fp32": ["trainer.precision=fp32"],  # the course default (AdamW 1e-3, no schedule), fp32
    "course-bf16": ["trainer.precision=bf16"],  # the course default with bf16 autocast
}
COLUMNS = [
    "recipe",
    "budget_min",
    "epoch",
    "minutes",
    "step",
    "images",
    "train_size",
    "val_images",
    "val_top1",
    "val_top5",
    "final",
]


def recipe_overrides(spec: str) -> tuple[str, list[str]]:
    name, _, rest = spec.partition(":")
    if rest:
        return name, rest.split()
    if name not in RECIPES:
        raise UsageError(f"--recipe={spec!r}: allowed {'|'.join(RECIPES)} or 'NAME:override override ...'")
    return name, RECIPES[name]


def run_recipe(name: str, overrides: list[str], args, out: Path) -> Path:
    """One budgeted training run in OUT/<name>/run; its checkpoints are deleted afterwards (kept out of git)."""
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    run_dir = folder / "run"
    cmd = [
        *command_argv(),
        *overrides,
        f"data.path={Path(args.data_path).resolve()}",
        f"trainer.budget_minutes={args.budget:g}",
        f"trainer.budget_evals={args.evals}",
        f"trainer.interim_val_images={args.interim_val_images}",
        "trainer.progress_bar=false",
        f"hydra.run.dir={run_dir}",
        f"run_name={name}",
        *args.extra,
    ]
    if args.fresh_cache:
        cmd.append(f"data.cache_dir={folder / 'cache'}")
    print(f"[{name}] {' '.join(cmd[1:])}", flush=True)
    proc = subprocess.run(cmd, cwd=folder.parent, capture_output=True, text=True)
    (folder / "stderr.txt").write_text(proc.stderr[-20000:])
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    shutil.rmtree(folder / "cache", ignore_errors=True)
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or ["(no output)"]
        print(f"[{name}] failed (exit {proc.returncode}): {tail[0][:300]}", flush=True)
    return run_dir


def rows_of(name: str, run_dir: Path) -> list[dict]:
    m = TrainMetrics.read(run_dir)
    if m is None:
        return []
    budget = (m.plan or {}).get("budget_s", 0) / 60
    batch = Run(run_dir).config["data"]["batch_size"]
    rows = []
    for r in m.history:
        if not r.validated:
            continue
        rows.append(
            {
                "recipe": name,
                "budget_min": round(budget, 2),
                "epoch": r.epoch,
                "minutes": round((r.wall_s or 0) / 60, 3),
                "step": r.step,
                "images": r.step * batch if r.step else None,
                "train_size": r.train_size,
                "val_images": r.val_images,
                "val_top1": r.val_accuracy,
                "val_top5": r.val_top5,
                "final": r is m.history[-1],
            }
        )
    return rows


def machine() -> dict:
    # lazy: the benchmark's own process only launches runs; torch (2 s of start-up) is for these facts alone
    import torch

    from .throughput import cpu_facts  # lazy: imports torch

    return {
        "cpu": cpu_facts(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def main(argv=None) -> int:
    p = parser("python -m tinyimagenet_resnet.bench tta", __doc__)
    p.add_argument("--data-path", default=os.environ.get("TINYIMAGENET_PATH", "../shared/tiny-imagenet"))
    p.add_argument("--budget", type=float, default=60.0, help="minutes per run (trainer.budget_minutes)")
    p.add_argument("--recipe", action="append", default=[], help=f"{'|'.join(RECIPES)} or 'NAME:override override ...'")
    p.add_argument("--evals", type=int, default=4, help="validations per run (trainer.budget_evals), the last full")
    p.add_argument("--interim-val-images", type=int, default=2000, help="val images for the earlier validations")
    p.add_argument("--fresh-cache", action="store_true", help="decode the images again inside each run's budget")
    p.add_argument("--from", dest="sources", action="append", default=[], help="earlier OUT folders to plot too")
    p.add_argument("--plot-only", action="store_true", help="run nothing: plot --from folders into --out")
    p.add_argument("--out", required=True, help="results folder, e.g. benchmarks/results/<date>-cpu-<flags>")
    p.add_argument("--extra", nargs="*", default=[], help="more overrides for every run")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    if args.budget <= 0 or args.evals < 1:
        raise UsageError("--budget must be > 0 and --evals >= 1")
    recipes = [recipe_overrides(r) for r in args.recipe]
    if not args.plot_only and not recipes:
        raise UsageError("--recipe: give at least one (or --plot-only with --from)")
    if not args.plot_only and not (Path(args.data_path) / "data").is_dir():
        raise UsageError(f"--data-path={args.data_path!r}: no such dataset folder")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for source in map(Path, args.sources):
        for folder in sorted(p for p in source.iterdir() if (p / "run" / "metrics.json").is_file()):
            rows += rows_of(folder.name, folder / "run")
    for name, overrides in recipes:
        rows += rows_of(name, run_recipe(name, overrides, args, out))
    if not rows:
        raise UsageError("no finished run to plot (see each recipe's stderr.txt)")
    write_csv(out / "tta.csv", COLUMNS, rows)
    facts = machine()
    cpu = facts["cpu"]
    title = f"Time to accuracy on {facts['cuda'] or cpu.get('model') or 'CPU'} ({', '.join(cpu.get('flags', []))})"
    figures.save(figures.time_to_accuracy(rows, title), out / "tta.png")
    write_json(
        out / "tta.json",
        {
            "date": date.today().isoformat(),
            "machine": facts,
            "command": " ".join(["python -m tinyimagenet_resnet.bench tta", *argv]),
            "budget_minutes": args.budget,
            "evals": args.evals,
            "interim_val_images": args.interim_val_images,
            "rows": rows,
        },
    )
    for r in rows:
        if r["final"]:
            print(
                f"{r['recipe']:<14} {r['budget_min']:>5g} min budget: val top-1 {100 * r['val_top1']:.2f}% "
                f"(top-5 {100 * r['val_top5']:.2f}%) at {r['minutes']:.1f} min, {r['step']} steps"
            )
    print(f"-> {out / 'tta.csv'}, {out / 'tta.png'}")
    return 0
