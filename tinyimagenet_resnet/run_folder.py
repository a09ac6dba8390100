"""One run folder, one run: checked and claimed before Hydra writes anything into it.

A command that names an existing folder (`hydra.run.dir=...`, a resume by `ckpt_path=` or `resume=`) is refused when
that folder holds another run's results, is told "already finished" when it would continue a finished run, and holds
an exclusive lock on the folder for its whole life, so that a second command pointed at the same folder while the
first runs is refused instead of mixing their files. A fresh folder (the default `outputs/<date>/<time>`, with
microseconds) needs none of this."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from .artifacts.files import LockTimeout, file_lock
from .config.kinds import COMMAND
from .config.overrides import override_key, override_value
from .config.resolvers import resume_target
from .errors import UserError

# What a run folder holds once a task has produced something (a continued run always has some of these).
RESULTS = ("metrics.json", "checkpoints", "inspect.json", "baselines.json", "lr_find.json")
LOCK_NAME = ".run.lock"


class AlreadyFinished(UserError):
    """A command that would continue a run that has finished: nothing to do (exit 0, nothing written)."""

    exit_code = 0


def results_in(folder: Path) -> list[str]:
    """The names of `folder`'s run results (empty when it holds none, or does not exist)."""
    return [name for name in RESULTS if (folder / name).exists()]


def resume_command(ckpt: Path | str | None) -> str:
    """The command that continues a run; the data location and every setting come from the checkpoint."""
    return f"{COMMAND} {shlex.quote(f'ckpt_path={ckpt}')}"


@dataclass
class Target:
    folder: Path
    resuming: bool  # a task=train continuing the run in `folder`
    explicit: bool  # named by hydra.run.dir on the command line


def target_of(overrides: list[str], cfg: DictConfig) -> Target | None:
    """The existing or named folder a single run of `overrides` (composed as `cfg`) writes into; None for a fresh
    time-stamped one."""
    explicit = next((override_value(o) for o in overrides if override_key(o) == "hydra.run.dir"), None)
    task_overrides = [o for o in overrides if not override_key(o).startswith("hydra")]  # Hydra's overrides.task
    resumed = resume_target(str(cfg.task), cfg.ckpt_path, cfg.resume, task_overrides, "outputs/date/time")
    if explicit is not None and "${" in explicit:
        explicit = None  # an interpolation Hydra resolves itself (a time stamp): a fresh folder
    if explicit is not None:
        folder = Path(explicit).expanduser().absolute()
        # hydra.run.dir wins over the resume target: resuming only when the two are the same folder
        return Target(folder, resumed is not None and resumed.absolute() == folder, True)
    if resumed is not None:
        return Target(resumed.absolute(), True, False)
    return None


def finished(state: dict, epochs: int) -> bool:
    """A checkpoint's `state` (TrainState as JSON) is the end of its run: its last epoch trained and recorded."""
    if int(state.get("samples_into_epoch") or 0) > 0:
        return False  # stopped inside an epoch (or on its last step, before validating it)
    plan = state.get("plan")
    if plan:  # a time-budgeted run: its plan's epochs and steps (trainer.epochs is not used)
        return int(state.get("epoch", 0)) >= int(plan["epochs"]) or int(state.get("global_step", 0)) >= int(
            plan["total_steps"]
        )
    return int(state.get("epoch", 0)) >= epochs


def check_finished(target: Target, cfg: DictConfig, overrides: list[str]) -> None:
    """Raise AlreadyFinished when the command would continue a finished run. The command's overrides are checked
    against the checkpoint first, as the train task does (another architecture, a changed setting: their own
    line); an unreadable checkpoint is left to the task, which says what is wrong with it."""
    # lazy: the train task's own checks load torch (~2.5 s): only a command that continues a run pays it
    from .tasks import common, train

    ckpt_file = Path(str(cfg.ckpt_path)).expanduser() if cfg.ckpt_path else target.folder / "checkpoints" / "last.ckpt"
    if not ckpt_file.is_file():
        return
    try:
        ckpt, saved = common.load_for_model(ckpt_file)
    except UserError:
        return
    task_overrides = [o for o in overrides if not override_key(o).startswith("hydra")]
    resumed = common.config_from_checkpoint(cfg, saved, task_overrides, train.RESUME_KEYS, "continuing a run")
    state = ckpt.get("state") or {}
    if finished(state, int(resumed.trainer.epochs)):
        best = (state.get("best") or {}).get("val/accuracy")
        raise AlreadyFinished(
            f"{target.folder}: this run has already finished ({state.get('epoch')} epochs"
            + (f", best val top-1 {best:.4f}" if isinstance(best, (int, float)) else "")
            + "); nothing was changed. To train it longer, add trainer.epochs=<more epochs> to the command"
        )


def claim(overrides: list[str], cfg: DictConfig):
    """Lock the folder a single run of `overrides` (composed as `cfg`) will write into, for the life of this
    process, once checked: no other command writing there now, not another run's results, not a finished run to
    continue. Returns the held lock (keep it referenced), or None for a fresh time-stamped folder. Raises UserError
    (one line) or AlreadyFinished, holding nothing."""
    target = target_of(overrides, cfg)
    if target is None:
        return None
    folder = target.folder
    existed = folder.exists(), (folder / LOCK_NAME).exists()
    lock = file_lock(folder / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except LockTimeout:
        raise UserError(
            f"{folder}: another run is writing into this folder now; wait for it to end, or choose another "
            "hydra.run.dir"
        ) from None
    try:
        if target.resuming:
            check_finished(target, cfg, overrides)
        elif held := results_in(folder):
            last = folder / "checkpoints" / "last.ckpt"
            hint = f"; to continue it: {resume_command(last)}" if last.is_file() else ""
            raise UserError(
                f"hydra.run.dir={str(folder)!r}: holds another run ({', '.join(held)}); choose another folder{hint}"
            )
    except BaseException:
        lock.release()
        if not existed[1]:  # a refused command leaves nothing: the lock file, the folder it created for it
            (folder / LOCK_NAME).unlink(missing_ok=True)
        if not existed[0]:
            folder.rmdir()
        raise
    return lock
