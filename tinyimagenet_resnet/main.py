"""The single entry point: `python -m tinyimagenet_resnet.main [task=...] [group=option ...] [key=value ...]`
(also installed as `tinyimagenet-train`).

Run `python -m tinyimagenet_resnet.main --help` for the config groups and keys.
"""

from __future__ import annotations

import logging
import os
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
from .errors import DivergedError, UserError, one_line
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


def _remove_if_untouched(run_dir: Path) -> None:
    """A run that failed before doing any work leaves nothing behind (only Hydra's .hydra/ and the log exist)."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".hydra", "main.log", "run_name.txt"}:
        shutil.rmtree(run_dir, ignore_errors=True)


def _resume_command(ckpt: Path | None) -> str:
    return f"python -m tinyimagenet_resnet.main ckpt_path={ckpt}"


def run(cfg: DictConfig):
    """Validate, dispatch to the task, and turn user errors into one line + non-zero exit (single runs).

    In a multirun the exception propagates instead, so the launcher/sweeper records the job as failed."""
    from .training.engine import Interrupted

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        validate_config(cfg)
        with placed(cfg, multirun):
            return _task(str(cfg.task))(cfg)
    except UserError as exc:
        if multirun or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _remove_if_untouched(run_dir)
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except DivergedError as exc:
        log.error("%s", exc)  # to the console and main.log; metrics.json already says status: diverged
        if multirun or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        log.warning("Interrupted by %s; resume with: %s", exc.signame, _resume_command(exc.ckpt))
        print(f"interrupted by {exc.signame}; resume with:\n  {_resume_command(exc.ckpt)}", file=sys.stderr)
        sys.exit(130 if exc.signame == "SIGINT" else 143)


@hydra.main(config_path=config_dir(), config_name="config")
def main(cfg: DictConfig):
    return run(cfg)


def cli() -> None:
    # A named sweep runs as a multirun without `-m`. Its config sets hydra.mode=MULTIRUN, but Hydra rejects
    # comma-separated overrides (`optim.lr=1e-3,1e-2`) while it composes to read that mode, so add the flag here.
    if any(a.startswith("sweep=") and a != "sweep=null" for a in sys.argv[1:]) and not (
        {"-m", "--multirun", "--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i"} & set(sys.argv[1:])
    ):
        sys.argv.insert(1, "--multirun")
    argv = sys.argv[1:]
    try:
        problem = check_group_choices(argv, Path(config_dir()))
        if problem:
            raise UserError(problem)
        preflight(argv)  # one line for a bad value, before Hydra composes (its own messages span a dozen lines)
    except UserError as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    main()


if __name__ == "__main__":
    cli()
