"""The single entry point: `python -m tinyimagenet_resnet.main [task=...] [group=option ...] [key=value ...]`
(also installed as `tinyimagenet-train`).

Run `python -m tinyimagenet_resnet.main --help` for the config groups and keys.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from .config import resolvers, schema
from .config.loader import check_group_choices, config_dir, preflight
from .config.validate import validate_config
from .errors import DivergedError, EnvironmentFault, Interrupted, UserError, one_line, os_error_line
from .scale import launchers
from .scale.placement import placed
from .sweeps import optuna_sweeper

log = logging.getLogger("tinyimagenet_resnet")

schema.register()
resolvers.register()
launchers.register()
optuna_sweeper.register()
# Hydra 1.4 warns when a config `_target_` is instantiated without a whitelist, which only code can pass; the
# targets named in our own conf/ (the summary callback) are trusted.
warnings.filterwarnings("ignore", message=r"hydra\.utils\.instantiate\(\) resolved _target_='tinyimagenet_resnet\.")


def _task(name: str):
    """The task's `run(cfg)`; imported lazily so `--help` and config errors stay fast."""
    import importlib

    return importlib.import_module(f"tinyimagenet_resnet.tasks.{name}").run


# What a run directory holds once a task has produced something (a continued run always has some of these).
RESULTS = {"metrics.json", "checkpoints", "inspect.json", "baselines.json", "lr_find.json"}


def _remove_if_untouched(run_dir: Path) -> None:
    """A run that failed before producing anything leaves nothing behind (its .hydra/, log, split.json or empty
    TensorBoard folder alone are not worth keeping)."""
    if run_dir.is_dir() and not {p.name for p in run_dir.iterdir()} & RESULTS:
        shutil.rmtree(run_dir, ignore_errors=True)


def _fail(run_dir: Path, line: str, code: int):
    _remove_if_untouched(run_dir)
    print(f"error: {line}", file=sys.stderr)
    sys.exit(code)


def _resume_command(ckpt: Path | None) -> str:
    """The command that continues the run; the data location and every setting come from the checkpoint."""
    return f"python -m tinyimagenet_resnet.main {shlex.quote(f'ckpt_path={ckpt}')}"


def run(cfg: DictConfig):
    """Validate, dispatch to the task, and turn user errors into one line + non-zero exit (single runs).

    In a multirun the exception propagates instead, so the launcher/sweeper records the job as failed."""
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    full_error = multirun or os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        validate_config(cfg)
        check_device(str(cfg.trainer.device))  # before any data is loaded
        with placed(cfg, multirun):
            return _task(str(cfg.task))(cfg)
    except UserError as exc:
        if full_error:
            raise
        _fail(run_dir, one_line(exc), exc.exit_code)
    except OSError as exc:  # a folder that cannot be written, a full disk
        if full_error:
            raise
        _fail(run_dir, os_error_line(exc), EnvironmentFault.exit_code)
    except KeyboardInterrupt:  # ctrl-C before training began (the trainer handles it from then on)
        if full_error:
            raise
        _fail(run_dir, "interrupted before training began: nothing was trained, nothing to resume", 130)
    except DivergedError as exc:
        log.error("%s", exc)  # to the console and main.log; metrics.json already says status: diverged
        if multirun or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        log.warning("Interrupted by %s; resume with: %s", exc.signame, _resume_command(exc.ckpt))
        print(f"interrupted by {exc.signame}; resume with:\n  {_resume_command(exc.ckpt)}", file=sys.stderr)
        sys.exit(130 if exc.signame == "SIGINT" else 143)


def check_device(name: str) -> None:
    """`trainer.device` exists on this machine (auto always does)."""
    if name == "auto":
        return
    import torch

    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= count:
            raise EnvironmentFault(
                f"trainer.device={name!r}: this machine has {count} CUDA device(s) (torch {torch.__version__}); "
                f"allowed: auto|cpu{'|cuda:0..' + str(count - 1) if count else ''}"
            )
    elif name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EnvironmentFault("trainer.device='mps': no Apple GPU (MPS) on this machine; allowed: auto|cpu")


@hydra.main(config_path=config_dir(), config_name="config")
def main(cfg: DictConfig):
    return run(cfg)


def check_command_line(argv: list[str]) -> list[str]:
    """The entry point's pre-flight of a command line, before Hydra starts: the command line as it will run (a
    named sweep gets `--multirun`), once every group option and every value of every job is checked. Raises
    UserError (one line: Hydra's own messages span a dozen lines)."""
    # A named sweep runs as a multirun without `-m`. Its config sets hydra.mode=MULTIRUN, but Hydra rejects
    # comma-separated overrides (`optim.lr=1e-3,1e-2`) while it composes to read that mode, so add the flag here.
    if any(a.startswith("sweep=") and a != "sweep=null" for a in argv) and not (
        {"-m", "--multirun", "--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i"} & set(argv)
    ):
        argv = ["--multirun", *argv]
    problem = check_group_choices(argv, Path(config_dir()))
    if problem:
        raise UserError(problem)
    preflight(argv)
    return argv


def cli() -> None:
    try:
        sys.argv[1:] = check_command_line(sys.argv[1:])
    except UserError as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    try:
        main()
    except KeyboardInterrupt:  # ctrl-C while Hydra starts up, before a task runs
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if "run_dir" in resolvers.RESOLVED:
            _remove_if_untouched(Path(resolvers.RESOLVED["run_dir"]))
        print("error: interrupted during start-up: nothing was trained, nothing to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    cli()
