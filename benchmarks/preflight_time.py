"""The entry point's pre-flight (config/loader.py `preflight`: every job of a command line composed and validated
before any work) on a few command lines, timed in one process on one thread.

    python benchmarks/preflight_time.py [--repeat 5]

Prints each command line's median seconds. To compare two versions of the code, run it with PYTHONPATH set to
each checkout (a `git worktree` of the older commit), one after the other on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

COMMANDS = {
    "single run": [],
    "-m sweep=lr_wd, 2 x 2 values": ["-m", "sweep=lr_wd", "optim.lr=1e-3,3e-2", "optim.weight_decay=0,1e-4"],
    "-m sweep=blocks_dropout": ["-m", "sweep=blocks_dropout"],
    "-m sweep=optuna": ["-m", "sweep=optuna"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    from tinyimagenet_resnet.config import loader

    print(f"code: {loader.__file__}")
    loader.preflight([])  # Hydra's and the schema's first-use costs, out of the figures
    for name, argv in COMMANDS.items():
        seconds = []
        for _ in range(opts.repeat):
            t0 = time.perf_counter()
            loader.preflight(argv)
            seconds.append(time.perf_counter() - t0)
        print(f"{name:32} median {statistics.median(seconds):.3f} s (of {opts.repeat})")


if __name__ == "__main__":
    main()
