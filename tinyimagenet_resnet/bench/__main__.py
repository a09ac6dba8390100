"""`python -m tinyimagenet_resnet.bench [throughput|sweep|tta] [options]` (also `tinyimagenet-bench`): the benchmark
commands behind BENCHMARKS.md. With no sub-command (or options first) it runs `throughput`."""

from __future__ import annotations

import importlib
import sys

from ..cli import UsageError

COMMANDS = {
    "throughput": "tinyimagenet_resnet.bench.throughput",
    "sweep": "tinyimagenet_resnet.bench.sweep",
    "tta": "tinyimagenet_resnet.bench.tta",
}


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__.strip(), "\n\ncommands: " + ", ".join(COMMANDS) + " (each takes --help)")
        return 0
    command = args.pop(0) if args and not args[0].startswith("-") else "throughput"
    if command not in COMMANDS:
        raise UsageError(f"command {command!r}: allowed {'|'.join(COMMANDS)}")
    return importlib.import_module(COMMANDS[command]).main(args)


if __name__ == "__main__":
    from ..cli import run_tool

    sys.exit(run_tool(main))
