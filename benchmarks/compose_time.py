"""The cost of composing the config in one process (config/loader.py `compose_config`, which the entry point's
pre-flight, the protocol's estimate and the report call) and of registering the schemas in Hydra's ConfigStore
(config/schema.py `register`), alternated, on one thread.

    python benchmarks/compose_time.py [--repeat 15]

To compare two versions of the code, run it with PYTHONPATH set to each checkout (a `git worktree` of the older
commit), alternating, on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    opts = parser.parse_args()
    from tinyimagenet_resnet.config import schema
    from tinyimagenet_resnet.config.loader import compose_config

    compose_config([])  # Hydra's first-use costs, out of the figures
    register, compose = [], []
    for _ in range(opts.repeat):
        t0 = time.perf_counter()
        schema.register()
        register.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        compose_config([])
        compose.append(time.perf_counter() - t0)
    print(f"code: {schema.__file__}")
    print(f"register() median {statistics.median(register) * 1000:.1f} ms, ", end="")
    print(f"compose_config([]) median {statistics.median(compose) * 1000:.0f} ms (of {opts.repeat}, alternated)")


if __name__ == "__main__":
    main()
