"""Files written atomically (a crash leaves the old file or the new one, never a torn one) and cross-process locks.

Every file a run writes goes through `atomic_path` (JSON, CSV, checkpoints, the decoded-image cache); every lock is a
`file_lock` (the `filelock` library: flock on POSIX, msvcrt on Windows, released by the OS when a process dies)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import filelock

from ..errors import EnvironmentFault, os_error_line


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error, fsync it and rename it over `path`.
    On any error (or KeyboardInterrupt) the temporary file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a run's files should read like any other file
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text(path: Path | str, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: Path | str, data) -> Path:
    return write_text(path, json.dumps(data, indent=2) + "\n")


def write_csv(path: Path | str, header: list[str], rows) -> Path:
    """A CSV file with a header line; `rows` are sequences in header order, or dicts keyed by the header."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([r[c] for c in header] if isinstance(r, dict) else r for r in rows)
    return Path(path)


def read_json(path: Path | str):
    """The parsed file, or None when it does not exist."""
    p = Path(path)
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def file_lock(path: Path | str, timeout: float = -1) -> filelock.BaseFileLock:
    """An exclusive lock on `path` shared by every process of this machine (`with file_lock(p): ...`).
    timeout -1 waits forever; 0 tries once (`acquire()` raises `filelock.Timeout` when it is held elsewhere)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(str(path), timeout=timeout)


LockTimeout = filelock.Timeout


def check_writable(folder: Path, key: str) -> None:
    """Fail now, in one line, when `folder` (or the nearest folder above it that exists) cannot be written."""
    probe = Path(folder).expanduser().absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        exc.filename = str(probe)  # the folder, not the name of the probe file
        raise EnvironmentFault(f"{key}: {os_error_line(exc)}") from None
