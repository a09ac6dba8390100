"""User-facing errors: each carries ONE line naming the key, the value and what is allowed."""

from __future__ import annotations

import errno
import tempfile
import time
import traceback
from pathlib import Path


class UserError(Exception):
    """A problem the user can fix (bad config, missing data, bad checkpoint). Printed as one line, exit 2."""

    exit_code = 2


class ConfigError(UserError):
    pass


class DataError(UserError):
    pass


class CheckpointError(UserError):
    pass


class EnvironmentFault(UserError):
    """The machine, not the input: no such device, a folder that cannot be written, a full disk. Exit 1."""

    exit_code = 1


def os_error_line(exc: OSError, then: str = "run the same command again") -> str:
    """An OSError while writing as one line: what failed, where, what to do (`then`: what to do once there is
    space again; the entry point says whether a checkpoint lets the run continue)."""
    where = exc.filename or "a file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device while writing {where}; free some space, then {then}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"cannot write {where}: {exc.strerror}; run from a writable folder, or point hydra.run.dir / "
            "data.cache_dir at one"
        )
    return f"{exc.strerror or type(exc).__name__} ({where})"


class Interrupted(Exception):
    """Raised by the trainer after SIGINT/SIGTERM, once `last.ckpt` (the path `ckpt`) is written."""

    def __init__(self, signame: str, ckpt):
        self.signame, self.ckpt = signame, ckpt
        super().__init__(f"{signame} received: wrote {ckpt}")


class DivergedError(Exception):
    """The loss became NaN/Inf. Not a user error: the run records status 'diverged' and fails."""

    exit_code = 3

    def __init__(self, epoch: int, step: int, loss: float):
        self.epoch, self.step, self.loss = epoch, step, loss
        super().__init__(
            f"training diverged: non-finite loss ({loss}) at global step {step} (epoch {epoch}); "
            "lower optim.lr or check the data"
        )


def one_line(exc: BaseException) -> str:
    """The last non-empty line of an exception message (DataLoader workers wrap messages in a traceback)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    for prefix in (f"{type(exc).__module__}.{type(exc).__name__}: ", f"{type(exc).__name__}: "):
        if text.startswith(prefix):  # a DataLoader worker re-raises with the (qualified) class name in front
            return text[len(prefix) :]
    return text


def unexpected_line(exc: BaseException, what: str, log_file: Path | None) -> str:
    """An exception nobody foresaw, as one line: what ran, where it failed (the innermost frame of this package),
    and the log file that received its traceback (`log_file`, e.g. the run's main.log; a new file in the temporary
    folder when there is none)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "tinyimagenet_resnet" in f.filename]
    where = f" in {Path(frames[-1].filename).name}:{frames[-1].lineno} ({frames[-1].name})" if frames else ""
    if log_file is None:
        log_file = Path(tempfile.gettempdir()) / f"tinyimagenet_resnet-error-{time.strftime('%Y%m%d-%H%M%S')}.log"
    try:
        with open(log_file, "a", encoding="utf-8") as f:
            f.write(f"\nUnexpected error during {what}:\n" + "".join(traceback.format_exception(exc)))
        logged = f"the traceback is in {log_file}"
    except OSError:
        logged = "the traceback could not be written to a file"
    message = " ".join(str(exc).split())[:200] or "(no message)"
    return (
        f"unexpected {type(exc).__name__} during {what}{where}: {message}; {logged} (HYDRA_FULL_ERROR=1 prints it); "
        "please report it with that file"
    )
