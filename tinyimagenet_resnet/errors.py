"""User-facing errors: each carries ONE line naming the key, the value and what is allowed."""


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


def os_error_line(exc: OSError) -> str:
    """An OSError while writing as one line: what failed, where, what to do."""
    import errno

    where = exc.filename or "a file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on the device while writing {where}; free some space, then run the same command "
            "again (a training run continues from its last checkpoint)"
        )
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
