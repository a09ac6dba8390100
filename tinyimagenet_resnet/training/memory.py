"""Out of memory: recognised on every device, turned into one line that names a batch size that fits, and the
search behind `data.batch_size=auto` (the largest batch that fits, before training).

A batch fits when a few real train steps at that size run: forward, backward and the optimizer's step on a copy of
the model, at the run's precision and memory format, on random images of the data's shape. The search halves from
a start until one fits (`largest_fitting`); the memory an out-of-memory error left allocated is released first.
"""

from __future__ import annotations

import copy
import gc
import logging
import math
import traceback
from collections.abc import Callable

import torch

from ..data.dataset import IMAGE_SIZE
from ..errors import EnvironmentFault
from .runtime import autocast

log = logging.getLogger(__name__)

IMAGE_SHAPE = (3, IMAGE_SIZE, IMAGE_SIZE)
TRIAL_STEPS = 2


class OutOfMemory(EnvironmentFault):
    """A batch that does not fit in the device's memory: one line, exit 1."""


def is_oom(exc: BaseException) -> bool:
    """An allocation failure of any device: CUDA's OutOfMemoryError, the CPU allocator's or MPS's RuntimeError,
    or oneDNN's failure to create a primitive (on CPU, what an allocation failure inside a convolution reads as;
    the batch search confirms it by finding a smaller batch that runs, and raises it when not even 1 does)."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text
        or "out of memory" in text.lower()
        or "MPS backend out of memory" in text
        or is_onednn_failure(exc)
    )


def is_onednn_failure(exc: BaseException) -> bool:
    """oneDNN's 'could not create a primitive': its status (out of memory or another) is not in the text."""
    return isinstance(exc, RuntimeError) and "could not create a primitive" in str(exc)


def release(exc: BaseException | None = None) -> None:
    """Drop what an out-of-memory error holds (its traceback's frames keep the tensors alive) and free the
    allocator's cache."""
    if exc is not None:
        exc.__traceback__ = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def memory_text(device: torch.device) -> str:
    """The memory a device has, as an error line says it: `cuda:0 (15.8 GiB)`, `cpu (24.0 GiB of RAM)`, `cpu
    (a 7.2 GiB address-space limit)`."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        return f"cuda:{index} ({gib(total)}, {gib(free)} free)"
    if device.type == "mps":
        return "mps (shared with the system's memory)"
    limit = address_space_limit()
    if limit is not None:
        return f"cpu (a {gib(limit)} address-space limit)"
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            total = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("MemTotal:"))
        return f"cpu ({gib(total)} of RAM)"
    except (OSError, StopIteration, ValueError):
        return "cpu"


def address_space_limit() -> int | None:
    """The process's address-space limit in bytes (POSIX RLIMIT_AS); None without one, or where `resource` does
    not exist (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return None if limit in (resource.RLIM_INFINITY, -1) else int(limit)


def train_trial(model: torch.nn.Module, make_optimizer, device, amp_dtype, channels_last: bool, num_classes: int):
    """A function of a batch size that runs TRIAL_STEPS train steps at that size on a copy of `model`."""

    def trial(batch: int) -> None:
        net = copy.deepcopy(model).train()
        opt = make_optimizer(net.parameters())
        loss_fn = torch.nn.CrossEntropyLoss()
        for _ in range(TRIAL_STEPS):
            x = torch.randn(batch, *IMAGE_SHAPE, device=device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, num_classes, (batch,), device=device)
            with autocast(device, amp_dtype):
                loss = loss_fn(net(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        del net, opt, x, y, loss
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return trial


def eval_trial(model: torch.nn.Module, device, amp_dtype, channels_last: bool):
    """A function of a batch size that runs one evaluation forward pass at that size."""

    @torch.no_grad()
    def trial(batch: int) -> None:
        x = torch.randn(batch, *IMAGE_SHAPE, device=device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        was = model.training
        model.eval()
        with autocast(device, amp_dtype):
            model(x)
        model.train(was)
        del x
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return trial


def in_evaluation(exc: BaseException) -> bool:
    """The error came from an evaluation pass (validation, task=evaluate), not a train step."""
    return any(
        f.name == "evaluate" and f.filename.endswith("evaluation.py") for f in traceback.extract_tb(exc.__traceback__)
    )


def fits(trial: Callable[[int], None], batch: int) -> bool:
    """A few trial steps at `batch` run. oneDNN's ambiguous failure at a batch of 1 is raised as it is (with its
    traceback): when not even one image runs, memory is not what failed."""
    try:
        trial(batch)
    except Exception as exc:  # noqa: BLE001 - only an allocation failure means "does not fit"
        if not is_oom(exc) or (batch == 1 and is_onednn_failure(exc)):
            raise
        release(exc)
        return False
    release()
    return True


def largest_fitting(trial: Callable[[int], None], start: int) -> tuple[int | None, list[int]]:
    """(the largest batch that fits, halving from `start`; None when even 1 does not), and the sizes that did not."""
    failed = []
    batch = max(1, int(start))
    while batch >= 1:
        if fits(trial, batch):
            return batch, failed
        failed.append(batch)
        batch //= 2
    return None, failed


def scaled_lr(lr: float, batch: int, reference: int, rule: str) -> float:
    """The LR for `batch` from an LR tuned at `reference`: linear (Goyal et al.), sqrt (Krizhevsky; Hoffer et al.)
    or none."""
    ratio = batch / reference
    return lr * {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[rule]


def oom_line(key: str, batch: int, device: torch.device, found: int | None, failed: list[int]) -> str:
    """The one line of an out-of-memory error: the batch size (`key`: data.batch_size or data.eval_batch_size),
    the device's memory, a batch size that fits."""
    where = memory_text(device)
    if found is None:
        return f"out of memory at {key}={batch} on {where}: not even a batch of 1 fits; use a smaller model"
    tried = f"{', '.join(map(str, failed))} did not either" if failed else "a few trial steps ran"
    if key == "data.eval_batch_size":
        return f"out of memory at {key}={batch} on {where}: {key}={found} fits ({tried}); run again with it"
    return (
        f"out of memory at {key}={batch} on {where}: {key}={found} fits ({tried}); run again with {key}={found} "
        f"(and optim.lr x {math.sqrt(found / batch):.2g}, the sqrt rule), or with data.batch_size=auto"
    )


def out_of_memory(
    exc: BaseException, model, make_optimizer, device, amp_dtype, channels_last, num_classes, batch, eval_batch
) -> OutOfMemory:
    """The OutOfMemory error for `exc`, with the batch size that fits found on the spot (halving from half the
    one that failed, a few trial steps each). When it was oneDNN's ambiguous failure and even a batch of 1 fails
    the same way, that failure is raised instead (not a matter of memory)."""
    evaluating = in_evaluation(exc)
    release(exc)
    if evaluating:
        key, size = "data.eval_batch_size", eval_batch
        trial = eval_trial(model, device, amp_dtype, channels_last)
    else:
        key, size = "data.batch_size", batch
        trial = train_trial(model, make_optimizer, device, amp_dtype, channels_last, num_classes)
    found, failed = largest_fitting(trial, max(1, size // 2))  # oneDNN's failure at a batch of 1 raises itself
    error = OutOfMemory(oom_line(key, size, device, found, failed))
    error.discard_run = True  # a run that wrote no checkpoint leaves no folder
    return error
