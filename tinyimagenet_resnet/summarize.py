"""`python -m tinyimagenet_resnet.summarize <sweep dir> [...]`: (re)build summary.md / summary.csv of a sweep,
also for an interrupted one. For an Optuna sweep it also lists the trials that workers on other machines recorded in
the shared study (run it from the folder the sweep was started in, where a relative storage path points)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from .sweeps.summary import _fmt, write_summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinyimagenet_resnet.summarize", description=__doc__)
    parser.add_argument("sweep_dirs", nargs="+", type=Path, help="multirun/<date>/<time> folders")
    args = parser.parse_args(argv)
    for sweep in args.sweep_dirs:
        if not sweep.is_dir():
            print(f"error: sweep_dir={str(sweep)!r}: no such folder; allowed: a multirun/<date>/<time> folder",
                  file=sys.stderr)
            return 2
        recorded = sweep / "multirun.yaml"
        sweeper = OmegaConf.select(OmegaConf.load(recorded), "hydra.sweeper") if recorded.is_file() else None
        rows = write_summary(sweep, sweeper)
        print(f"{sweep}: {len(rows)} runs -> {sweep / 'summary.md'}")
        for r in rows[:10]:
            print(f"  {r['rank']:>3}. {r['run_name']:<50} top1={_fmt(r['best_val_top1'], 'best_val_top1')} status={r['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
