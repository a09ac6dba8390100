"""Nothing a user ran is lost: a resume from any point finishes the interrupted epoch, a finished run resumed changes
nothing, a run folder belongs to one run (another run's folder is refused, two commands into one folder cannot
mix), and two dataset folders of the same name never share a cache. Through the entry point, as a user runs it."""

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tinyimagenet_resnet.artifacts.records import TrainMetrics

from conftest import one_error_line, only_run_dir, popen_main, run_main, tree_digest, wait_for_epoch, wait_for_output

# one step per epoch (72 train images, batch 72), wide enough that a step takes a while: a signal sent when an
# epoch is recorded lands in the next epoch's only step, which is the last step of that epoch
ONE_STEP = [
    "model.widths=[32,32,32]",
    "data.batch_size=72",
    "data.eval_batch_size=1",
    "data.num_workers=0",
    "trainer.progress_bar=false",
]


def history(run: Path) -> list[tuple]:
    """Each epoch's numbers, timing keys aside."""
    m = TrainMetrics.read(run)
    return [(r.epoch, r.step, r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy) for r in m.history]


def interrupted_at(args, cwd: Path, landed, line: str | None = None) -> Path:
    """Run `args` and SIGTERM it once its first epoch is recorded (or once it prints `line`), until the checkpoint
    it left satisfies `landed(state)`; returns that run's folder."""
    for attempt, delay in enumerate((0.0, 0.02, 0.05, 0.1, 0.0, 0.03, 0.08, 0.15)):
        folder = cwd / f"attempt{attempt}"
        folder.mkdir()
        proc = popen_main(args, folder)
        if line:
            wait_for_output(proc, line)
        else:
            wait_for_epoch(folder, 1, proc)
            time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
        run = only_run_dir(folder)
        state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state"]
        if proc.returncode == 143 and landed(state):
            return run
    raise AssertionError("the signal never landed where the test needs it")


def test_sigterm_on_the_last_step_then_the_resume_validates_and_records_that_epoch(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", *ONE_STEP, "trainer.epochs=2"]
    clean = tmp_path / "clean"
    clean.mkdir()
    run_main(args, cwd=clean)
    # stopped after the run's last step (global step 2 of 2), before validating epoch 2: the resume must validate it
    run = interrupted_at(args, tmp_path, lambda s: s["global_step"] == 2 and s["samples_into_epoch"] > 0)
    assert TrainMetrics.read(run).epochs_run == 1
    run_main([f"ckpt_path={run}/checkpoints/last.ckpt"], cwd=tmp_path)
    resumed = TrainMetrics.read(run)
    assert resumed.status == "ok" and resumed.epochs_run == 2 and resumed.best.epoch is not None
    assert history(run) == history(only_run_dir(clean))
    assert (run / "checkpoints" / "best.ckpt").is_file()


def test_sigterm_during_a_validation_stops_at_that_epochs_end_and_the_resume_goes_on(tiny_data, tmp_path):
    args = [f"data.path={tiny_data}", *ONE_STEP, "trainer.epochs=3"]
    clean = tmp_path / "clean"
    clean.mkdir()
    run_main(args, cwd=clean)
    # the signal arrived during epoch 2's validation: that epoch is recorded, then the run stops (status interrupted)
    run = interrupted_at(
        args, tmp_path, lambda s: s["epoch"] == 2 and s["samples_into_epoch"] == 0, "epoch 2/3: validating on 20"
    )
    stopped = TrainMetrics.read(run)
    assert stopped.status == "interrupted" and stopped.epochs_run == 2
    run_main([f"ckpt_path={run}/checkpoints/last.ckpt"], cwd=tmp_path)
    assert TrainMetrics.read(run).epochs_run == 3 and history(run) == history(only_run_dir(clean))


def test_a_finished_run_resumed_says_so_and_changes_nothing(tiny_data, tmp_path, trained_run):
    run = tmp_path / "finished"
    shutil.copytree(trained_run, run)
    before = tree_digest(run)
    for extra in ([], [f"data.path={tiny_data}"]):  # as printed, and with a runtime key repeated
        proc = run_main([f"ckpt_path={run}/checkpoints/last.ckpt", *extra], cwd=tmp_path)
        assert "already finished" in proc.stdout and "trainer.epochs" in proc.stdout
        assert "Traceback" not in proc.stderr
    assert tree_digest(run) == before  # no metrics.json rewritten, no event file, no .hydra/resume-* folder


def test_a_second_run_into_a_finished_runs_folder_is_refused(tiny_data, tmp_path, trained_run):
    run = tmp_path / "taken"
    shutil.copytree(trained_run, run)
    before = tree_digest(run)
    proc = run_main(
        [f"data.path={tiny_data}", "model.widths=[16,16,16]", "data.num_workers=0", f"hydra.run.dir={run}"],
        cwd=tmp_path,
        check=False,
    )
    line = one_error_line(proc, f"hydra.run.dir='{run}'", "holds another run", "ckpt_path=")
    assert "choose another folder" in line
    assert tree_digest(run) == before


def test_two_runs_into_one_folder_at_once_the_second_is_refused(tiny_data, tmp_path):
    folder = tmp_path / "shared"
    args = [f"data.path={tiny_data}", *ONE_STEP, "trainer.epochs=30", f"hydra.run.dir={folder}"]
    first = popen_main(args, tmp_path)
    deadline = time.time() + 120
    while not (folder / "metrics.json").is_file() and time.time() < deadline:
        assert first.poll() is None
        time.sleep(0.01)
    second = run_main([*args[:-2], "trainer.epochs=1", f"hydra.run.dir={folder}"], cwd=tmp_path, check=False)
    one_error_line(second, str(folder), "another run is writing into this folder now")
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    assert first.returncode == 143
    m = TrainMetrics.read(folder)
    assert m.status == "interrupted" and json.loads((folder / "split.json").read_text())
    assert [p.name for p in (folder / ".hydra").iterdir() if p.is_dir()] == []  # the second wrote no config


def test_a_same_named_dataset_folder_with_one_label_changed_is_read_as_it_is(tiny_data, tmp_path):
    # the same folder name, the same row counts and the same modification times: datasets alone served the first
    # folder's cached table (and the decoded images cache followed it)
    a, b = tmp_path / "a" / "tiny-imagenet", tmp_path / "b" / "tiny-imagenet"
    shutil.copytree(tiny_data, a)
    shutil.copytree(tiny_data, b)
    shard = b / "data" / "train-00000-of-00001.parquet"
    stamp = shard.stat()
    table = pq.read_table(shard)
    labels = table.column("label").to_pylist()
    labels[0] = 3 if labels[0] != 3 else 2
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, table["label"].type))
    pq.write_table(table, shard)
    os.utime(shard, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    args = ["task=inspect", "model.widths=[16,16,16]", "data.num_workers=0", "inspect.stats_images=10"]
    for name, data in (("a", a), ("b", b)):
        (tmp_path / name / "cwd").mkdir()
        run_main([f"data.path={data}", *args], cwd=tmp_path / name / "cwd")
    counts = {}
    for name in ("a", "b"):
        run = only_run_dir(tmp_path / name / "cwd")
        rows = (run / "class_distribution.csv").read_text().splitlines()[1:]
        counts[name] = [r.split(",")[2:] for r in rows[:4]]
    assert counts["a"] != counts["b"]  # b's changed label moved one image from one class to another


@pytest.mark.parametrize("checkpointed", [False, True])
def test_a_full_disk_says_how_to_go_on_only_when_a_checkpoint_lets_it(tiny_data, tmp_path, checkpointed):
    from test_faults import injected

    # the disk fills at the first checkpoint (nothing to continue), or at the second (last.ckpt of epoch 1 exists)
    nth = 3 if checkpointed else 1  # epoch 1 writes best.ckpt and last.ckpt
    code = (
        "import errno, contextlib, tinyimagenet_resnet.artifacts.files as f, tinyimagenet_resnet.training.checkpoint"
        " as c\n"
        "real, seen = f.atomic_path.__wrapped__, []\n"
        "def full(path):\n"
        "    if str(path).endswith('.ckpt'):\n"
        "        seen.append(path)\n"
        f"        if len(seen) >= {nth}:\n"
        "            raise OSError(errno.ENOSPC, 'No space left on device', str(path))\n"
        "    return real(path)\n"
        "f.atomic_path = contextlib.contextmanager(full); c.atomic_path = f.atomic_path"
    )
    args = [f"data.path={tiny_data}", *ONE_STEP, "model.widths=[16,16,16]", "trainer.epochs=2"]
    proc = injected(code, args, tmp_path)
    line = one_error_line(proc, "no space left on the device", code=1)
    assert "run the same command again" not in line
    if checkpointed:
        assert "continue the run with: python -m tinyimagenet_resnet.main ckpt_path=" in line
        ckpt = line.split("ckpt_path=")[1].strip()
        assert Path(ckpt).is_file()
    else:
        assert "start the run again: it wrote no checkpoint to continue from" in line
