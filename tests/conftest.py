import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock

from tinyimagenet_resnet.tasks.protocol_warm import STEP_IMPORTS  # no torch: the thread count below is set first

from tiny_dataset import write_tiny_imagenet

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("TINYIMAGENET_PATH", REPO.parent / "shared" / "tiny-imagenet"))
# Small, fast model settings for subprocess runs on the tiny fixture.
TINY_ARGS = ["model.widths=[16,16,16]", "data.batch_size=16", "data.num_workers=0", "trainer.epochs=2"]
# The smoke protocol, made smaller for the 100-image fixture (the user's overrides come after the scale's and win):
# its 72 train images in batches of 16 at widths 16 (the smoke scale: batches of 64 at [16,32,64], 64 images an
# LR-test step), which takes 2/3 of the time on one core (71 s against 104 s, the same steps and hand-offs)
PROTOCOL_FIXTURE = [
    "data.train_subset=null",
    "data.val_subset=null",
    "data.test_subset=null",
    "trainer.epochs=4",
    "lr_find.num_iters=40",
    "model.widths=[16,16,16]",
    "data.batch_size=16",
]

# Under pytest-xdist each worker runs its own processes side by side with the others': one CPU thread each (the
# entry point's subprocesses inherit it), so that N workers on N cores do not oversubscribe the machine. Set before
# any test module imports torch; a thread count the user exported is kept.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // _workers)))


def pytest_collection_modifyitems(config, items):
    """The tests marked slow (a minute or more each) first, the rest in their order: xdist hands out the tests in
    this order (after its groups), so the longest start early and the two workers end together, rather than one
    running a long test alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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


@contextmanager
def built_once(tmp_path_factory, name: str):
    """A folder that one test session builds once and every xdist worker then shares: yields (folder, build?),
    where the caller builds the folder's content when build is true. The folder counts as built only when the
    block ends without an error (another worker then builds it again rather than reading a half-built one)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the base temp shared by the workers of this session
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if done.exists():
            yield folder, False
            return
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        yield folder, True
        done.touch()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """One fixture dataset for the whole session (all workers: the shared runs below record its path)."""
    with built_once(tmp_path_factory, "tiny") as (folder, build):
        if build:
            write_tiny_imagenet(folder / "tiny-imagenet")
    return folder / "tiny-imagenet"


def protocol_args(data: Path) -> list[str]:
    return ["task=protocol", "protocol.scale=smoke", f"data.path={data}", *PROTOCOL_FIXTURE]


@pytest.fixture(scope="session")
def smoke_protocol(tiny_data, tmp_path_factory) -> Path:
    """One uninterrupted smoke protocol on the fixture (its root, `protocol/default`), built once per session and
    read by the protocol and report tests; a test that changes it works on a copy (`copy_protocol`)."""
    with built_once(tmp_path_factory, "smoke_protocol") as (cwd, build):
        if build:
            proc = run_main(protocol_args(tiny_data), cwd=cwd, timeout=900)
            (cwd / "console.txt").write_text(proc.stdout + proc.stderr)  # what the user saw
    return cwd / "protocol" / "default"


def copy_protocol(root: Path, cwd: Path, steps_from: str) -> Path:
    """A copy of the protocol at `root` under `cwd/protocol/default`, as if it had been stopped just before step
    `steps_from`: that step and the ones after it are pending again and their folders are gone. The absolute paths
    the state records (step folders, commands) are rewritten to the copy."""
    from tinyimagenet_resnet.tasks.protocol_scales import STEPS

    copy = cwd / "protocol" / "default"
    later = STEPS[STEPS.index(steps_from) :]

    def dropped(folder, names):  # the later steps' folders, and the reports in other languages (report-fr)
        return [n for n in names if folder == str(root) and (n in later or n.startswith("report-"))]

    shutil.copytree(root, copy, ignore=dropped)
    state = json.loads((copy / "state.json").read_text().replace(str(root), str(copy)))
    for step in later:
        state["steps"][step] = {"status": "pending"}
    (copy / "state.json").write_text(json.dumps(state, indent=2))
    log = [ln for ln in (copy / "steps.log").read_text().splitlines() if ln.split()[2] not in later]
    (copy / "steps.log").write_text("".join(f"{ln}\n" for ln in log))
    return copy


@pytest.fixture(scope="session")
def trained_run(tiny_data, tmp_path_factory) -> Path:
    """One finished 2-epoch training on the fixture ([3,3,3], gelu, widths 16), for the tests that only read it or
    its checkpoints."""
    with built_once(tmp_path_factory, "trained") as (cwd, build):
        if build:
            run_main([f"data.path={tiny_data}", *TINY_ARGS, "model/blocks=b333", "model.activation=gelu"], cwd=cwd)
    return only_run_dir(cwd)


def one_error_line(proc, *fragments, code=2) -> str:
    """The one `error: ` line of a failed run: exit `code`, no traceback, exactly one error line on stderr, holding
    each of `fragments`."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "data").is_dir():
        pytest.skip(f"real Tiny ImageNet not found at {REAL_DATA} (set TINYIMAGENET_PATH to a copy)")
    return REAL_DATA


def refusal(args, cwd: Path, monkeypatch, code=2) -> str:
    """The `error: ` line the entry point's pre-flight refuses `args` with, run in this process: the same
    `check_command_line` that `cli()` runs before Hydra starts, from `cwd`. A test per exit path keeps the
    subprocess (exit code, no traceback, nothing left behind)."""
    from tinyimagenet_resnet.errors import UserError, one_line
    from tinyimagenet_resnet.main import check_command_line

    monkeypatch.chdir(cwd)
    with pytest.raises(UserError) as info:
        check_command_line([str(a) for a in args])
    line = one_line(info.value)
    assert info.value.exit_code == code and "\n" not in line, line
    return f"error: {line}"


# The entry point's processes, forked from a warm interpreter. A fresh `python -m tinyimagenet_resnet.main` spends
# ~5 s of one core importing torch (and torch._dynamo, which torch.use_deterministic_algorithms and every optimizer
# load), datasets, Hydra and the rest before it reads its command line; the suite starts it ~150 times. A
# multiprocessing forkserver imports those third-party packages once per xdist worker, and each run is a new process
# forked from it that runs the entry point as `python -m` does (runpy, __main__, its own cwd, stdout and stderr,
# exit code). Nothing of this package is imported before the fork (its start time, its state). A plain subprocess
# runs instead: a run whose environment differs from the one the server started with (import-time settings: HF_*,
# OMP_NUM_THREADS), a run with a hydra/launcher (its workers), and every run when TIR_TEST_FORKSERVER=0. The package's
# other `python -m` commands (the report, a sweep's summary) run the same way: run_main(..., module=...); the console
# scripts (`tinyimagenet-report`) stay new processes, as a user types them.
# the protocol's warm server imports the same ones (tasks/protocol_warm.py: what a tiny training imports)
WARM_IMPORTS = STEP_IMPORTS
_warm: dict = {}


ENTRY = "tinyimagenet_resnet.main"


def _forked_entry_point(args, cwd, out, err, env, module=ENTRY) -> None:
    """The child: `python -m <module> *args` in `cwd`, its output into the files `out` and `err`."""
    import atexit
    import gc
    import runpy
    import signal

    # what the protocol's warm server does before it forks a step (tasks/protocol_warm.py), here in the child (the
    # forkserver runs no code of ours): the run's collections leave the objects it inherited alone (~0.3 s a run)
    gc.freeze()

    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a new interpreter (an xdist worker ignores it)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = ["-m", *args]
    sys.path[0] = ""  # `python -m` puts the working folder first
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
    finally:
        atexit._run_exitfuncs()  # what an interpreter does at exit (multiprocessing's children skip it)
    sys.exit(code)


def _environment() -> dict:
    """The environment a run inherits, but for what pytest changes at every test (PYTEST_CURRENT_TEST) and torch
    sets for itself when a test compiles (TORCHINDUCTOR_CACHE_DIR): a run sees them, the server's imports do not
    depend on them."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_CURRENT_TEST", "TORCHINDUCTOR_"))}


def _forkserver():
    import multiprocessing

    if "ctx" not in _warm:
        _warm["ctx"] = multiprocessing.get_context("forkserver")
        _warm["ctx"].set_forkserver_preload(WARM_IMPORTS)
        _warm["env"] = _environment()
    return _warm["ctx"]


class ForkedMain:
    """The entry point forked from the warm server, with the part of `subprocess.Popen` the tests use (pid,
    send_signal, poll, wait, communicate, returncode); stdout and stderr go to files read back at the end."""

    def __init__(self, args: list[str], cwd, module=ENTRY):
        import tempfile

        self.args = args
        self._tmp = tempfile.TemporaryDirectory(prefix="tir-run-")
        self._out, self._err = Path(self._tmp.name) / "stdout", Path(self._tmp.name) / "stderr"
        env = dict(os.environ)
        self._proc = _forkserver().Process(
            target=_forked_entry_point, args=(args, str(cwd), str(self._out), str(self._err), env, module)
        )
        self._proc.start()
        self.pid = self._proc.pid
        self.returncode = None

    def send_signal(self, sig) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self._proc.kill()

    def poll(self):
        if self.returncode is None and not self._proc.is_alive():
            self._proc.join()
            self.returncode = self._proc.exitcode
        return self.returncode

    def wait(self, timeout=None):
        self._proc.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def communicate(self, timeout=None) -> tuple[str, str]:
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self._proc.join()
            raise subprocess.TimeoutExpired(self.args, timeout, *self._read()) from None
        out, err = self._read()
        self._tmp.cleanup()
        return out, err

    def output(self) -> str:
        """What it has written to stdout and stderr so far."""
        return "".join(self._read())

    def _read(self) -> tuple[str, str]:
        read = lambda p: p.read_text(encoding="utf-8", errors="replace") if p.exists() else ""  # noqa: E731
        return read(self._out), read(self._err)


def forked_runs() -> bool:
    """Whether the entry point's runs are forked from the warm server here (else each is a new interpreter, whose
    start-up, ~8 s of one core and more under coverage, counts in a run's time budget)."""
    return os.name == "posix" and os.environ.get("TIR_TEST_FORKSERVER", "1") != "0"


def _forkable(args: list[str], env=None, drop_env=()) -> bool:
    """Whether a run can be forked from the warm server (see above), or needs a new interpreter."""
    if not forked_runs():
        return False
    if any(os.environ.get(k) != v for k, v in (env or {}).items()) or any(k in os.environ for k in drop_env):
        return False  # an environment of its own (what it already holds is no change)
    # a launcher's worker processes (loky, Ray, submitit) import the job's function from the program they were
    # started by: that must be `python -m tinyimagenet_resnet.main` itself
    if any(a.startswith("hydra/launcher=") for a in args):
        return False
    return _warm.get("env", _environment()) == _environment()


def run_main(args, cwd, check=True, timeout=600, env=None, drop_env=(), module=ENTRY):
    """Run the real entry point in a new process, as a user would (`drop_env`: variables it does not inherit);
    `module`: another of the package's command-line modules (`python -m <module>`)."""
    args = [str(a) for a in args]
    if _forkable(args, env, drop_env):
        forked = ForkedMain(args, cwd, module)
        try:
            out, err = forked.communicate(timeout)
        except subprocess.TimeoutExpired as exc:
            raise subprocess.TimeoutExpired(args, timeout, exc.output, exc.stderr) from None
        proc = subprocess.CompletedProcess(args, forked.returncode, out, err)
    else:
        proc = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**{k: v for k, v in os.environ.items() if k not in drop_env}, **(env or {})},
        )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-5000:]}")
    return proc


def popen_main(args, cwd):
    """The real entry point started in the background (to signal or kill it while it runs): a `subprocess.Popen`,
    or its forked twin `ForkedMain`."""
    import signal

    args = [str(a) for a in args]
    if _forkable(args):
        return ForkedMain(args, cwd)
    # an xdist worker ignores SIGINT, and a child inherits that: give it the default back, as a shell would
    restore = (lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if os.name == "posix" else None
    return subprocess.Popen(
        [sys.executable, "-m", ENTRY, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=restore,
    )


def wait_for_output(proc, text: str, timeout=120) -> None:
    """Until the running entry point `proc` (popen_main) has printed `text` (polled closely, so that a signal sent
    next lands in what the line announces)."""
    deadline = time.time() + timeout
    if isinstance(proc, ForkedMain):
        while text not in proc.output():
            assert proc.poll() is None and time.time() < deadline, proc.output()[-3000:]
            time.sleep(0.002)
        return
    seen = []
    for line in proc.stdout:  # a Popen: its log lines come on stdout
        seen.append(line)
        if text in line:
            return
        assert time.time() < deadline, "".join(seen)[-3000:]
    raise AssertionError(f"the run ended without printing {text!r}: {''.join(seen)[-3000:]}")


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


def tree_digest(folder: Path) -> dict:
    """Each file under `folder` (relative path) -> the SHA-256 of its bytes: two equal digests, nothing changed."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


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
