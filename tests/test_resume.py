"""Resuming: a resume is exact after any interruption, works as printed,
never rewrites a run's identity, extends a finished run, and `resume=true` starts afresh when nothing can be
continued. Every test runs the entry point in subprocesses, as a user would."""

import os
import shlex
import signal
import time
from pathlib import Path

import torch

from tinyimagenet_resnet.artifacts.records import TrainMetrics

from conftest import event_dir, only_run_dir, popen_main, run_main, wait_for_epoch

SMALL = ["model.widths=[16,32,64]", "data.num_workers=0", "trainer.progress_bar=false"]


def weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["model"]


def interrupt_mid_epoch(args, cwd: Path, sig=signal.SIGTERM, after_epoch=1) -> tuple[Path, str]:
    """Start a run, send `sig` in the middle of epoch after_epoch + 1 (retried until it lands mid-epoch)."""
    for attempt, delay in enumerate((0.15, 0.05, 0.3, 0.1)):
        folder = cwd / f"attempt{attempt}"
        folder.mkdir()
        proc = popen_main(args, folder)
        run = wait_for_epoch(folder, after_epoch, proc)
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state"]
        if proc.returncode in (130, 143) and state["samples_into_epoch"] > 0:
            return run, err
    raise AssertionError("the signal never landed in the middle of an epoch")


def test_sigterm_in_the_middle_of_an_epoch_resumes_bitwise_with_augmentation_on(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", *SMALL, "data.batch_size=4", "trainer.epochs=3", "data.pipeline=fast"]
    clean = tmp_path / "clean"
    clean.mkdir()
    run_main(args, cwd=clean)
    clean_run = only_run_dir(clean)

    run, err = interrupt_mid_epoch(args, tmp_path)
    command = err.strip().splitlines()[-1].strip()
    assert command.startswith("python -m tinyimagenet_resnet.main ckpt_path=")
    run_main(shlex.split(command)[3:], cwd=run.parent.parent.parent)  # the printed command, as printed

    a, b = TrainMetrics.read(clean_run), TrainMetrics.read(run)
    assert b.status == "ok" and b.epochs_run == 3
    for ra, rb in zip(a.history, b.history, strict=True):  # the interrupted epoch's train/loss included
        assert (ra.train_loss, ra.train_accuracy, ra.val_loss, ra.val_accuracy) == (
            rb.train_loss,
            rb.train_accuracy,
            rb.val_loss,
            rb.val_accuracy,
        )
    wa, wb = weights(clean_run), weights(run)
    assert all(torch.equal(wa[k], wb[k]) for k in wa), [k for k in wa if not torch.equal(wa[k], wb[k])]


def test_the_resume_command_printed_after_ctrl_c_works_as_printed_from_anywhere(tiny_data, tmp_path):
    # started with a data.path relative to the folder it ran in (each attempt's folder is at the same depth)
    relative = os.path.relpath(tiny_data, tmp_path / "attempt0")
    args = [f"data.path={relative}", *SMALL, "data.batch_size=4", "trainer.epochs=3", "seed=3"]
    run, err = interrupt_mid_epoch(args, tmp_path, sig=signal.SIGINT)
    command = err.strip().splitlines()[-1].strip()
    assert "data.path" not in command  # where the data is comes from the checkpoint
    elsewhere = tmp_path / "somewhere" / "else"  # not at the depth the relative data.path was given from
    elsewhere.mkdir(parents=True)
    run_main(shlex.split(command)[3:], cwd=elsewhere)
    m = TrainMetrics.read(run)
    assert m.status == "ok" and m.epochs_run == 3
    assert not (elsewhere / "outputs").exists()  # continued in its own folder


def test_continuing_a_run_never_rewrites_its_identity(tiny_data, tmp_path):
    run_main(
        [f"data.path={tiny_data}", *SMALL, "data.batch_size=8", "trainer.epochs=1", "optim.lr=0.002"], cwd=tmp_path
    )
    run = only_run_dir(tmp_path)
    name = (run / "run_name.txt").read_text()
    assert name.strip() == "lr=0.002"
    before = (run / "metrics.json").read_text()
    ckpt = f"ckpt_path={run}/checkpoints/last.ckpt"

    refused = run_main([ckpt, "optim.lr=0.5", "trainer.epochs=2"], cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    (line,) = [ln for ln in refused.stderr.splitlines() if ln.startswith("error: ")]
    assert line.startswith("error: optim.lr=0.5: continuing a run keeps the checkpoint's value (0.002)")
    assert (run / "run_name.txt").read_text() == name and (run / "metrics.json").read_text() == before

    run_main([ckpt, "trainer.epochs=2"], cwd=tmp_path)  # an extension, named as before
    assert (run / "run_name.txt").read_text() == name
    assert event_dir(run).name == "train-lr=0.002"
    assert TrainMetrics.read(run).epochs_run == 2


def test_extending_a_finished_onecycle_run_and_a_four_step_onecycle(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", *SMALL, "data.batch_size=8", "scheduler=onecycle", "optim=sgd", "optim.lr=0.1"]
    run_main([*args, "trainer.epochs=2"], cwd=tmp_path)
    run = only_run_dir(tmp_path)
    finished = TrainMetrics.read(run)
    assert finished.status == "ok" and finished.history[-1].lr < 1e-5
    run_main([f"ckpt_path={run}/checkpoints/last.ckpt", "trainer.epochs=4"], cwd=tmp_path)
    extended = TrainMetrics.read(run)
    assert extended.status == "ok" and extended.epochs_run == 4
    assert extended.history[:2] == finished.history  # the finished part is kept as it was
    assert extended.history[-1].lr < 1e-5  # the longer schedule ends too

    short = tmp_path / "short"
    short.mkdir()
    run_main([*args, "trainer.epochs=2", "trainer.limit_train_batches=2"], cwd=short)  # 4 steps in all
    assert TrainMetrics.read(only_run_dir(short)).status == "ok"


def test_resume_true_starts_afresh_when_the_run_died_before_its_first_checkpoint(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", *SMALL, "data.batch_size=8", "trainer.epochs=1", "seed=5"]
    proc = popen_main(args, tmp_path)
    deadline = time.time() + 60
    while not list(tmp_path.glob("outputs/*/*/run_name.txt")) and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    died = list(tmp_path.glob("outputs/*/*"))
    assert died and not list(tmp_path.glob("outputs/*/*/checkpoints/last.ckpt"))
    proc = run_main([*args, "resume=true"], cwd=tmp_path)
    assert "starting a new run" in proc.stdout + proc.stderr
    finished = [p.parent for p in tmp_path.glob("outputs/*/*/metrics.json")]
    assert len(finished) == 1 and TrainMetrics.read(finished[0]).status == "ok"
