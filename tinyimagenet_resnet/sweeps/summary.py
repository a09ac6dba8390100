"""The `tinyimagenet-summarize` command: (re)builds the summary tables of any sweep folder, also an interrupted
one."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from ..cli import UsageError, parser, run_tool
from .tables import fmt, write_summary


def main(argv=None) -> int:
    """`tinyimagenet-summarize SWEEP_DIR [...]`. For an Optuna sweep it also lists the trials that workers on other
    machines recorded in the shared study (run it from the folder the sweep was started in, where a relative
    storage path points)."""
    p = parser("tinyimagenet-summarize", main.__doc__)
    p.add_argument("sweep_dirs", nargs="+", type=Path, help="multirun/<date>/<time> or multirun/optuna/<study>")
    args = p.parse_args(argv)
    for sweep in args.sweep_dirs:
        if not sweep.is_dir():
            raise UsageError(f"sweep_dir={str(sweep)!r}: no such folder; allowed: a multirun/<date>/<time> folder")
        recorded = sweep / "multirun.yaml"
        config = OmegaConf.load(recorded) if recorded.is_file() else None
        rows = write_summary(sweep, OmegaConf.select(config, "hydra.sweeper") if config else None, config)
        print(f"{sweep}: {len(rows)} runs -> {sweep / 'summary.md'}")
        for r in rows[:10]:
            value = fmt(r.values[0] if r.values else r.best_val_top1, "best_val_top1")
            print(f"  {r.rank:>3}. {r.run_name:<50} value={value} status={r.status}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
