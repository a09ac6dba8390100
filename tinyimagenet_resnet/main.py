"""The single entry point: `python -m tinyimagenet_resnet.main [task=...] [group=option ...] [key=value ...]`
(also installed as `tinyimagenet-train`).

Run `python -m tinyimagenet_resnet.main --help` for the config groups and keys.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.conf import HydraConf
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from . import run_folder
from .artifacts.trackers import check_tracking_uri
from .config import resolvers, schema
from .config.flags import INFO_FLAGS, MULTIRUN_FLAGS
from .config.loader import check_group_choices, preflight
from .config.paths import config_dir
from .config.validate import validate_config
from .errors import (
    DivergedError,
    EnvironmentFault,
    Interrupted,
    UserError,
    one_line,
    os_error_line,
    unexpected_line,
)
from .run_folder import RESULTS, AlreadyFinished, resume_command
from .scale import launchers
from .scale.placement import placed
from .sweeps import grid, optuna_sweeper
from .sweeps.storage import check_storage
from .tasks.protocol_state import check_overrides

log = logging.getLogger("tinyimagenet_resnet")

schema.register()
resolvers.register()
launchers.register()
optuna_sweeper.register()
grid.register()
# Hydra 1.4 warns when a config `_target_` is instantiated without a whitelist, which only code can pass; the
# targets named in our own conf/ (the summary callback) are trusted.
warnings.filterwarnings("ignore", message=r"hydra\.utils\.instantiate\(\) resolved _target_='tinyimagenet_resnet\.")


def _task(name: str):
    """The task's `run(cfg)`; imported only when it runs, so `--help` and config errors stay fast."""
    return importlib.import_module(f"tinyimagenet_resnet.tasks.{name}").run


def _remove_if_untouched(run_dir: Path) -> None:
    """A run that failed before producing anything leaves nothing behind (its .hydra/, log, split.json or empty
    TensorBoard folder alone are not worth keeping)."""
    if run_dir.is_dir() and not {p.name for p in run_dir.iterdir()} & set(RESULTS):
        shutil.rmtree(run_dir, ignore_errors=True)


def _fail(run_dir: Path, line: str, code: int) -> NoReturn:
    _remove_if_untouched(run_dir)
    print(f"error: {line}", file=sys.stderr)
    sys.exit(code)


def _after_fault(run_dir: Path) -> str:
    """What to do once a fault is fixed: continue from the run's last checkpoint when it wrote one, else start a
    new run (there is nothing to continue)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        return f"continue the run with: {resume_command(last)}"
    return "start the run again: it wrote no checkpoint to continue from"


def _user_failure(exc: UserError | OSError | KeyboardInterrupt, run_dir: Path) -> tuple[str, int]:
    """The line and exit code of a failure the user can fix (a UserError, a folder or disk, ctrl-C before training);
    the folder of a run out of memory before any checkpoint is removed."""
    if isinstance(exc, UserError):
        if getattr(exc, "discard_run", False) and not (run_dir / "checkpoints").is_dir():
            shutil.rmtree(run_dir, ignore_errors=True)  # out of memory before any checkpoint: nothing to keep
        return one_line(exc), exc.exit_code
    if isinstance(exc, OSError):  # a folder that cannot be written, a full disk
        return os_error_line(exc, _after_fault(run_dir)), EnvironmentFault.exit_code
    # ctrl-C before training began (the trainer handles it from then on)
    return "interrupted before training began: nothing was trained, nothing to resume", 130


def _exit_interrupted(exc: Interrupted, multirun: bool, hc: HydraConf) -> NoReturn:
    """A training stopped by a signal, its last.ckpt written: say how to continue it, exit 130 (SIGINT) or 143."""
    how = resume_command(exc.ckpt)
    if multirun and grid.CONTINUE.get("command"):  # a job of a grid: the grid goes on, this job from its ckpt
        how = grid.CONTINUE["command"]
        log.warning("Interrupted by %s during job %s; continue the grid with: %s", exc.signame, hc.job.num, how)
        print(
            f"interrupted by {exc.signame} during job {hc.job.num}; continue the grid with:\n  {how}",
            file=sys.stderr,
        )
    else:
        log.warning("Interrupted by %s; resume with: %s", exc.signame, how)
        print(f"interrupted by {exc.signame}; resume with:\n  {how}", file=sys.stderr)
    sys.exit(130 if exc.signame == "SIGINT" else 143)


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
    except (UserError, OSError, KeyboardInterrupt) as exc:
        if full_error:
            raise
        _fail(run_dir, *_user_failure(exc, run_dir))
    except DivergedError as exc:
        log.error("%s", exc)  # to the console and main.log; metrics.json already says status: diverged
        if full_error:
            raise
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        _exit_interrupted(exc, multirun, hc)
    except Exception as exc:  # noqa: BLE001 - the error boundary: what we did not foresee is one line too
        if full_error:
            raise
        logs = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
        print(f"error: {unexpected_line(exc, f'task={cfg.task}', Path(logs[0]) if logs else None)}", file=sys.stderr)
        sys.exit(1)


def check_device(name: str) -> None:
    """`trainer.device` exists on this machine (auto always does)."""
    if name == "auto":
        return
    import torch  # lazy: torch costs ~2.5 s of start-up, which --help and a config error must not pay

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


def check_command_line(argv: list[str]) -> tuple[list[str], object]:
    """The entry point's pre-flight of a command line, before Hydra starts: the command line as it will run (a
    named sweep gets `--multirun`), once every group option and every value of every job is checked, and the lock
    on the existing folder a single run will write into (None for a fresh one: run_folder.claim). Raises UserError
    (one line: Hydra's own messages span a dozen lines), AlreadyFinished for a finished run."""
    if "task=protocol" in argv:  # before a sweep= below makes it a multirun (whose errors are the jobs')
        check_overrides([a for a in argv if not a.startswith("-")])
    # A named sweep runs as a multirun without `-m`. Its config sets hydra.mode=MULTIRUN, but Hydra rejects
    # comma-separated overrides (`optim.lr=1e-3,1e-2`) while it composes to read that mode, so add the flag here.
    if any(a.startswith("sweep=") and a != "sweep=null" for a in argv) and not (
        (MULTIRUN_FLAGS | INFO_FLAGS) & set(argv)
    ):
        argv = ["--multirun", *argv]
    problem = check_group_choices(argv, Path(config_dir()))
    if problem:
        raise UserError(problem)
    checked = preflight(argv)
    if checked is None:
        return argv, None
    check_services(checked)
    if checked.multirun:
        return argv, None
    return argv, run_folder.claim(checked.overrides, checked.jobs[0])


def check_services(checked) -> None:
    """The Optuna storage and the MLflow tracking server a command will use answer, before any work."""
    sweeper = checked.sweeper
    if checked.multirun:
        grid.check_command(sweeper, checked.overrides, checked.jobs[0])
    if sweeper is not None and "Optuna" in str(sweeper.get("_target_", "")):
        check_storage(sweeper.get("storage"))
    mlflow = OmegaConf.select(checked.jobs[0], "logger.mlflow")
    if mlflow is not None:
        check_tracking_uri(mlflow.tracking_uri)


_HELD = []  # the lock on the run folder, held until the process ends


def cli() -> None:
    try:
        sys.argv[1:], lock = check_command_line(sys.argv[1:])
        _HELD.append(lock)
    except AlreadyFinished as exc:  # not an error: nothing to do
        print(one_line(exc))
        sys.exit(0)
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
