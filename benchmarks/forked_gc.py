"""A run forked from a warm process (the protocol's steps, tasks/protocol_warm.py; the tests' runs, tests/conftest.py),
with and without what it inherited frozen for the garbage collector (gc.freeze: here at the child's start, which
leaves it where freezing in the warm process just before the fork does).

    python benchmarks/forked_gc.py [--runs 3] [overrides...]

It imports what a step imports (protocol_warm.STEP_IMPORTS), writes the tests' tiny dataset to a temporary folder,
then forks one child per run, alternating plain and frozen, each a tiny training through the entry point
(`model.widths=[16,16,16] data.batch_size=16 trainer.epochs=2` and the overrides given) on one thread. Each child
prints its wall and CPU seconds, the seconds its full (generation 2) collections took, and its private dirty
memory at the end (the pages it copied from the warm process or allocated). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import re
import runpy
import sys
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # before torch: one core, as a test worker's run
REPO = Path(__file__).resolve().parents[1]


def private_dirty_mb() -> int:
    text = Path("/proc/self/smaps_rollup").read_text()
    return int(re.search(r"Private_Dirty:\s+(\d+)", text)[1]) // 1024


def child(args: list[str], cwd: Path, frozen: bool, report: int) -> None:
    """In the forked child: one run of the entry point (its output dropped), then one line of figures on `report`."""
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
    if frozen:
        gc.freeze()
    full = [0, 0.0]
    started = [0.0]

    def watch(phase, info):
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                full[0] += 1
                full[1] += time.perf_counter() - started[0]

    gc.callbacks.append(watch)
    cwd.mkdir(parents=True)
    os.chdir(cwd)
    sys.argv = ["-m", *args]
    t0, c0 = time.perf_counter(), os.times()
    try:
        runpy.run_module("tinyimagenet_resnet.main", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code
    c1 = os.times()
    cpu = c1.user - c0.user + c1.system - c0.system
    line = (
        f"{'frozen' if frozen else 'plain':6} | exit {code} | wall {time.perf_counter() - t0:5.2f} s | cpu {cpu:5.2f} s"
        f" (sys {c1.system - c0.system:4.2f}) | full collections {full[0]} ({full[1]:.3f} s)"
        f" | private dirty {private_dirty_mb()} MB\n"
    )
    os.write(report, line.encode())
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each kind (alternated)")
    parser.add_argument("overrides", nargs="*", help="more overrides for each run")
    opts = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from tinyimagenet_resnet.tasks.protocol_warm import STEP_IMPORTS

    from tiny_dataset import write_tiny_imagenet

    work = Path(tempfile.mkdtemp(prefix="forked-gc-"))
    os.environ.update(HF_DATASETS_CACHE=str(work / "hf"), HF_HUB_OFFLINE="1", XDG_CACHE_HOME=str(work / "xdg"))
    write_tiny_imagenet(work / "tiny-imagenet")
    for name in STEP_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    print(f"warm process: {len(gc.get_objects()):,} objects tracked by the collector", flush=True)
    args = [f"data.path={work / 'tiny-imagenet'}", "model.widths=[16,16,16]", "data.batch_size=16"]
    args += ["data.num_workers=0", "trainer.epochs=2", "trainer.progress_bar=false", *opts.overrides]
    report = os.dup(1)
    for i in range(2 * opts.runs):
        frozen = i % 2 == 1
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            child(args + [f"hydra.run.dir={work / f'run{i}'}"], work / f"cwd{i}", frozen, report)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
