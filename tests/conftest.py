import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tiny_dataset import write_tiny_imagenet

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("TINYIMAGENET_PATH", REPO.parent / "shared" / "tiny-imagenet"))
# Small, fast model settings for subprocess runs on the tiny fixture.
TINY_ARGS = ["model.widths=[16,16,16]", "data.batch_size=16", "data.num_workers=0", "trainer.epochs=2"]


@pytest.fixture(scope="session", autouse=True)
def hermetic_hf_cache(tmp_path_factory):
    """datasets' cache and the hub client stay inside the test session (inherited by subprocesses)."""
    cache = tmp_path_factory.mktemp("hf_cache")
    os.environ["HF_DATASETS_CACHE"] = str(cache / "datasets")
    os.environ["HF_HOME"] = str(cache / "home")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["XDG_CACHE_HOME"] = str(cache / "xdg")  # the decoded-image cache of the fast pipeline
    os.environ.pop("HYDRA_FULL_ERROR", None)
    yield


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_imagenet(tmp_path_factory.mktemp("tiny") / "tiny-imagenet")


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "data").is_dir():
        pytest.skip(f"real Tiny ImageNet not found at {REAL_DATA} (set TINYIMAGENET_PATH to a copy)")
    return REAL_DATA


def run_main(args, cwd, check=True, timeout=600, env=None):
    """Run the real entry point in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "tinyimagenet_resnet.main", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-5000:]}")
    return proc


def popen_main(args, cwd) -> subprocess.Popen:
    """The real entry point started in the background (to signal or kill it while it runs)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tinyimagenet_resnet.main", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_epoch(cwd: Path, epoch: int, proc, timeout=120) -> Path:
    """The run folder under `cwd`/outputs once its metrics.json counts `epoch` finished epochs (polled closely, so
    a signal sent next lands early in the following epoch)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for m in cwd.glob("outputs/*/*/metrics.json"):
            try:
                if json.loads(m.read_text())["epochs_run"] >= epoch:
                    return m.parent
            except (ValueError, KeyError):
                pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.005)
    raise TimeoutError(f"no run under {cwd} finished epoch {epoch} within {timeout} s")


def sigkill_after_epoch_1_and_resume(args, tmp_path: Path, timeout=120) -> tuple[Path, Path, dict, Path]:
    """A clean run of `args`; the same run SIGKILLed once its first epoch is recorded, then resumed from its
    last.ckpt. Returns (clean run, resumed run, its metrics.json as the kill left it, the killed run's cwd)."""
    import signal

    clean = tmp_path / "clean"
    clean.mkdir()
    run_main(args, cwd=clean)
    killed = tmp_path / "killed"
    killed.mkdir()
    proc = popen_main(args, killed)
    run = wait_for_epoch(killed, 1, proc, timeout=timeout)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = json.loads((run / "metrics.json").read_text())
    run_main([*args, f"ckpt_path={run}/checkpoints/last.ckpt"], cwd=killed)
    return only_run_dir(clean), run, partial, killed


def only_run_dir(root: Path) -> Path:
    runs = [p for p in (root / "outputs").glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def summary_rows(sweep: Path) -> list[dict]:
    """The rows of a sweep's summary.csv, as written."""
    return csv_rows(sweep / "summary.csv")


def event_dir(run: Path) -> Path:
    """The one folder of a run directory that holds TensorBoard event files (`<run>/<task>-<name>` or
    `<job>/<name>`)."""
    dirs = {p.parent for p in run.glob("*/events.out.tfevents.*")}
    assert len(dirs) == 1, dirs
    return dirs.pop()


def read_scalars(event_dir: Path) -> dict:
    """Read TensorBoard scalars back from the event files: {tag: [(step, value), ...]}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(event_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def read_hparams(event_dir: Path) -> tuple[dict, dict]:
    """Read the TensorBoard HParams back from the event files: (hparams, metric values)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(event_dir), size_guidance={"scalars": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = {
        k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
        for k, v in start.session_start_info.hparams.items()
    }
    metric_tags = [t for t in acc.Tags()["scalars"] if t.startswith("val/") and acc.Scalars(t)[-1].step == 0]
    scalars = {tag: acc.Scalars(tag)[-1].value for tag in metric_tags}
    return hparams, scalars


def read_session(event_dir: Path) -> tuple[dict, str, list | None]:
    """(hparams, TensorBoard end status name, the experiment's columns or None) of one run's events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    acc = EventAccumulator(str(event_dir))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(c) for tag, c in content.items()}
    start = data["_hparams_/session_start_info"].session_start_info
    hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    end = api_pb2.Status.Name(data["_hparams_/session_end_info"].session_end_info.status)
    exp = data.get("_hparams_/experiment")
    return hparams, end, [h.name for h in exp.experiment.hparam_infos] if exp else None
