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
    """Run a tool's `main(argv)` inside the error boundary every command shares: a UserError becomes
    `error: <one line>` on stderr and its exit code (2), a file that cannot be written exit 1, ctrl-C exit 130, and
    anything unforeseen one line naming the file that holds its traceback (exit 1; HYDRA_FULL_ERROR=1 raises)."""
    import os

    from .errors import one_line, os_error_line, unexpected_line

    prog = getattr(main, "__module__", "tool").rsplit(".", 1)[-1]
    try:
        return main(argv)
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the boundary: one line, the traceback in a file
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        line = os_error_line(exc) if isinstance(exc, OSError) else unexpected_line(exc, prog, None)
        print(f"error: {line}", file=sys.stderr)
        return 1


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
