"""Where the parallel jobs of a sweep run: one GPU each, or `trainer.jobs_per_gpu` jobs sharing one.

A job leases a GPU slot through an exclusive `flock` on a per-machine lock file named after the GPU's UUID, held for
the job's lifetime and released by the kernel if the job dies. This works with any launcher that starts several jobs
on one machine (joblib, submitit_local, two `sweep=optuna` workers side by side) and with launchers that already
restrict each job to its own GPU through CUDA_VISIBLE_DEVICES (SLURM, Ray with `num_gpus`): the job then only sees,
and leases, the GPU it was given.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..artifacts.files import LockTimeout, file_lock

log = logging.getLogger(__name__)


def default_lock_dir() -> Path:
    """Per user (two users' jobs do not share slot files they could not open), on every OS."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        user = "user"
    return Path(tempfile.gettempdir()) / f"tinyimagenet_resnet-gpu-slots-{user}"


def _try_lock(path: Path):
    lock = file_lock(path, timeout=0)
    try:
        lock.acquire()
    except LockTimeout:
        return None
    return lock


@contextlib.contextmanager
def lease_slot(
    device_ids: Sequence[str], jobs_per_gpu: int, lock_dir: Path | None = None, poll_s: float = 2.0
) -> Iterator[int]:
    """Hold one of the `len(device_ids) x jobs_per_gpu` slots and yield the index of its device.

    Slots are tried round by round (slot 0 of every device, then slot 1, ...), so jobs spread over the devices
    before any device takes a second one. With every slot taken, wait until one frees up."""
    if jobs_per_gpu < 1:
        raise ValueError(f"jobs_per_gpu={jobs_per_gpu}: allowed an integer >= 1")
    lock_dir = Path(lock_dir or default_lock_dir())
    lock_dir.mkdir(parents=True, exist_ok=True)
    candidates = [
        (i, lock_dir / f"{dev}.slot{s}.lock") for s in range(jobs_per_gpu) for i, dev in enumerate(device_ids)
    ]
    waited = False
    while True:
        for index, path in candidates:
            held = _try_lock(path)
            if held is not None:
                try:
                    yield index
                finally:
                    held.release()
                return
        if not waited:
            log.info(
                "All %d GPU slots (%d GPUs x trainer.jobs_per_gpu=%d) are taken; waiting for one",
                len(candidates),
                len(device_ids),
                jobs_per_gpu,
            )
            waited = True
        time.sleep(poll_s)


def visible_gpu_ids() -> list[str]:
    """A machine-wide name for each GPU this process sees (its UUID), in torch's index order."""
    import torch  # lazy: the entry point imports this module at start-up; torch costs ~2.5 s there

    ids = []
    for i in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        ids.append(f"GPU-{uuid}" if uuid is not None else f"index{i}")
    return ids


@contextlib.contextmanager
def placed(cfg, multirun: bool) -> Iterator[None]:
    """Run a job of a multirun on a leased GPU (trainer.device=auto). CPU threads need nothing from us: joblib
    (loky) and Ray set OMP_NUM_THREADS for the jobs they run side by side, SLURM confines a job to its CPUs."""
    if not multirun or str(cfg.trainer.device) != "auto":
        yield
        return
    import torch  # lazy: the entry point imports this module at start-up; torch costs ~2.5 s there

    if not torch.cuda.is_available():
        yield
        return
    ids = visible_gpu_ids()
    with lease_slot(ids, int(cfg.trainer.jobs_per_gpu)) as index:
        torch.cuda.set_device(index)
        log.info(
            "GPU placement: cuda:%d (%s), trainer.jobs_per_gpu=%d", index, ids[index], int(cfg.trainer.jobs_per_gpu)
        )
        yield
