"""Out of memory is one line and a way out: the batch size that fits, found on the spot, or data.batch_size=auto
before training. The memory is really short: the run's process gets an address-space limit (RLIMIT_AS) a little
above what it uses once its modules are loaded, so a batch of 512 at widths 32/64/128 cannot be allocated."""

import math
import os
import subprocess
import sys

import pytest
import torch

from tinyimagenet_resnet.training.memory import OutOfMemory, is_oom, out_of_memory, scaled_lr

from conftest import TINY_ARGS, one_error_line, refusal
from tiny_dataset import write_tiny_imagenet

LAUNCH = """
import resource, runpy, sys
import torch, datasets, hydra, tensorboard, matplotlib.pyplot  # what a run loads, before the limit is set
import tinyimagenet_resnet.tasks.train
used = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
limit = used + 2**30  # 1 GiB more than the process maps once loaded
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.argv = ["main", *sys.argv[1:]]
runpy.run_module("tinyimagenet_resnet.main", run_name="__main__")
"""
ARGS = ["model.widths=[32,64,128]", "data.num_workers=0", "trainer.epochs=1", "trainer.progress_bar=false"]


@pytest.fixture(scope="module")
def six_hundred(tmp_path_factory):
    """540 train images: a batch of 512 is a real batch of 512."""
    return write_tiny_imagenet(tmp_path_factory.mktemp("big") / "tiny-imagenet", n_train=150, n_val=5)


def limited(args, cwd, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


# glibc's malloc keeps the large blocks of a failed step mapped once it has raised its mmap threshold, so the address
# space stays full and oneDNN cannot map even a batch of 1's kernels ("could not create a primitive" at every size,
# seen in CI); a fixed threshold unmaps large blocks when they are freed, so that the limit measures the memory in use
FIXED_MMAP = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc/self/status: Linux")
def test_out_of_memory_is_one_line_with_a_batch_size_that_fits(six_hundred, tmp_path):
    proc = limited([f"data.path={six_hundred}", *ARGS, "data.batch_size=512"], tmp_path, FIXED_MMAP)
    line = one_error_line(proc, "out of memory at data.batch_size=512 on cpu (a ", "address-space limit)", code=1)
    found = int(line.split("fits")[0].split("data.batch_size=")[-1])
    assert 1 <= found < 512 and f"run again with data.batch_size={found}" in line and "data.batch_size=auto" in line
    assert not list(tmp_path.glob("outputs/*/*")), "nothing half-written: the run had no checkpoint"


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc/self/status: Linux")
def test_batch_size_auto_trains_with_the_largest_batch_that_fits(six_hundred, tmp_path):
    args = [f"data.path={six_hundred}", *ARGS, "data.batch_size=auto", "trainer.limit_train_batches=2"]
    proc = limited(args, tmp_path, FIXED_MMAP)  # the search's failed steps, then a training under the same limit
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [ln for ln in proc.stdout.splitlines() if "data.batch_size=auto:" in ln]
    found = int(line.split("data.batch_size=auto: ")[1].split()[0])
    assert 1 <= found < 512 and "512" in line and "did not" in line
    lr = scaled_lr(1e-3, found, 128, "sqrt")
    assert f"optim.lr 0.001 -> {lr:g} (sqrt rule from a batch of 128)" in line
    [run] = tmp_path.glob("outputs/*/*")
    cfg = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["config"]
    assert cfg["data"]["batch_size"] == found and math.isclose(cfg["optim"]["lr"], lr)


def test_batch_size_auto_is_refused_where_it_cannot_work(tiny_data, tmp_path, monkeypatch):
    line = refusal(
        [f"data.path={tiny_data}", *TINY_ARGS, "data.batch_size=auto", "trainer.budget_minutes=5"],
        tmp_path,
        monkeypatch,
    )
    assert "data.batch_size='auto'" in line and "trainer.budget_minutes" in line
    line = refusal([f"data.path={tiny_data}", "task=inspect", "data.batch_size=auto"], tmp_path, monkeypatch)
    assert "data.batch_size='auto'" in line and "task=inspect" in line
    line = refusal([f"data.path={tiny_data}", "data.batch_size=big"], tmp_path, monkeypatch)
    assert "data.batch_size='big'" in line and "or auto" in line


def test_the_lr_rules_and_what_counts_as_out_of_memory():
    assert scaled_lr(0.1, 512, 128, "linear") == pytest.approx(0.4)
    assert scaled_lr(0.1, 32, 128, "sqrt") == pytest.approx(0.05)
    assert scaled_lr(0.1, 32, 128, "none") == 0.1
    with pytest.raises(RuntimeError) as info:  # the CPU allocator's own error, for real
        torch.empty(2**62, dtype=torch.uint8)
    assert is_oom(info.value)
    assert not is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) and not is_oom(ValueError("x"))


class PrimitiveFails(torch.nn.Module):
    """A model whose convolution fails as oneDNN's does, at batches above `limit` (None: at every batch)."""

    def __init__(self, limit):
        super().__init__()
        self.limit, self.fc = limit, torch.nn.Linear(3, 200)

    def forward(self, x):
        if self.limit is None or x.shape[0] > self.limit:
            raise RuntimeError("could not create a primitive")
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize("limit", [4, None])
def test_onednns_ambiguous_failure_is_out_of_memory_only_when_a_smaller_batch_runs(limit):
    exc = RuntimeError("could not create a primitive")
    assert is_oom(exc)
    cpu = torch.device("cpu")
    model = PrimitiveFails(limit)

    def made():
        return out_of_memory(exc, model, lambda p: torch.optim.SGD(p, lr=0.1), cpu, None, False, 200, 32, 32)

    if limit is None:  # not even one image runs: not memory, the failure goes on to the error boundary as it is
        with pytest.raises(RuntimeError, match="could not create a primitive") as info:
            made()
        assert info.value.__traceback__ is not None  # with the trial's own traceback
    else:
        error = made()
        assert isinstance(error, OutOfMemory)
        assert "out of memory at data.batch_size=32 on cpu" in str(error) and "data.batch_size=4 fits" in str(error)
        assert "16, 8 did not either" in str(error)
