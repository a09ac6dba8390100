"""The command-line style every tool besides the Hydra entry point shares (report, summarize, plot, bench):
argparse with GNU-style flags, `--help` from the docstring, and errors as one line `error: ...` with exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .errors import UserError


class UsageError(UserError):
    """A bad command-line value: printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own: usage block + message; ours: one line
        raise UsageError(f"{message} (see {self.prog} --help)")


def parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    return _Parser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)


def run_tool(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a tool's `main(argv)`; a UserError becomes `error: <one line>` on stderr and exit code 2."""
    from .errors import one_line

    try:
        return main(argv)
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code


def _console(module: str) -> None:
    import importlib

    sys.exit(run_tool(importlib.import_module(module).main))


# [options.entry_points] console scripts (the training entry point is tinyimagenet_resnet.main:cli)
def report() -> None:
    _console("tinyimagenet_resnet.reporting.report")


def summarize() -> None:
    _console("tinyimagenet_resnet.sweeps.summary")


def plot() -> None:
    _console("tinyimagenet_resnet.reporting.overlay")


def bench() -> None:
    _console("tinyimagenet_resnet.bench.__main__")
