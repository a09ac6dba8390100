"""`python -m tinyimagenet_resnet.plot RUN_OR_SWEEP_DIR [...] --metric val/accuracy --out figure.png`: overlay one
TensorBoard metric of any set of runs (a sweep directory contributes all its jobs), read from their event files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import plots
from .runs import Run, expand


def overlay(runs: list[Run], metric: str, out: Path, title: str | None = None, label=None) -> Path | None:
    """One curve per run; returns the PNG path, or None when no run has the metric."""
    series = {}
    for run in runs:
        steps, values = run.scalars(metric)
        if steps:
            key = label(run) if label else run.name
            while key in series:
                key += "'"
            series[key] = (steps, values)
    if not series:
        return None
    fig = plots.curves(series, metric, title or f"{metric} ({len(series)} runs)",
                       xlabel="epoch" if not metric.endswith("_step") else "step")
    return plots.save(fig, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinyimagenet_resnet.plot", description=__doc__)
    p.add_argument("dirs", nargs="+", help="run directories and/or sweep directories (multirun/<date>/<time>)")
    p.add_argument("--metric", default="val/accuracy", help="a TensorBoard tag, e.g. train/loss, val/loss, lr")
    p.add_argument("--out", default="plot.png")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    missing = [d for d in args.dirs if not Path(d).is_dir()]
    if missing:
        print(f"error: dirs={missing[0]!r}: no such folder; allowed: run or sweep directories", file=sys.stderr)
        return 2
    runs = expand(args.dirs)
    if not runs:
        print(f"error: dirs={args.dirs}: no run directory found (a run has .hydra/config.yaml)", file=sys.stderr)
        return 2
    path = overlay(runs, args.metric, Path(args.out), args.title)
    if path is None:
        print(f"error: --metric={args.metric!r}: not logged by any of the {len(runs)} runs; allowed: e.g. "
              "train/loss, train/accuracy, val/loss, val/accuracy, val/top5, val/f1_macro, lr", file=sys.stderr)
        return 2
    print(f"{len(runs)} runs -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
