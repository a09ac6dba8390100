"""`tinyimagenet-plot RUN_OR_SWEEP_DIR [...] --metric val/accuracy --out figure.png`: overlay one TensorBoard metric
of any set of runs (a sweep directory contributes all its jobs), read from their event files."""

from __future__ import annotations

import sys
from pathlib import Path

from ..artifacts import names
from ..artifacts.runs import Run, expand
from ..cli import UsageError, parser, run_tool
from . import figures


def overlay(
    runs: list[Run],
    metric: str,
    out: Path,
    title: str | None = None,
    label=None,
    ylabel: str | None = None,
    xlabel: str | None = None,
) -> Path | None:
    """One curve per run; returns the PNG path, or None when no run has the metric. `ylabel`/`xlabel`: the axes'
    words (default: the metric's tag, and epoch or step)."""
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
    fig = figures.curves(
        series,
        ylabel or metric,
        title or f"{metric} ({len(series)} runs)",
        xlabel=xlabel or ("epoch" if not metric.endswith("_step") else "step"),
        integer_x=True,
    )
    return figures.save(fig, out)


def main(argv=None) -> int:
    p = parser("tinyimagenet-plot", __doc__)
    p.add_argument("dirs", nargs="+", help="run directories and/or sweep directories (multirun/<date>/<time>)")
    p.add_argument("--metric", default=names.VAL_ACC, help="a TensorBoard tag, e.g. train/loss, val/loss, lr")
    p.add_argument("--out", default="plot.png")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    missing = [d for d in args.dirs if not Path(d).is_dir()]
    if missing:
        raise UsageError(f"dirs={missing[0]!r}: no such folder; allowed: run or sweep directories")
    runs = expand(args.dirs)
    if not runs:
        raise UsageError(f"dirs={args.dirs}: no run directory found (a run has .hydra/config.yaml)")
    path = overlay(runs, args.metric, Path(args.out), args.title)
    if path is None:
        raise UsageError(
            f"--metric={args.metric!r}: not logged by any of the {len(runs)} runs; allowed: e.g. "
            + ", ".join(names.EPOCH_TAGS)
        )
    print(f"{len(runs)} runs -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
