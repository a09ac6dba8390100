"""The protocol's warm start (tasks/protocol_warm.py): steps forked from a server that has imported torch & co.,
each a real run of the entry point on the tiny fixture. The protocol's own tests (test_protocol.py) run every step
through it; these check what a step must keep from a new interpreter: its clock, its signals, its death with the
protocol, and a fallback where forking would not be the same."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tinyimagenet_resnet.tasks import protocol_warm
from tinyimagenet_resnet.tasks.protocol_supervise import start
from tinyimagenet_resnet.tasks.protocol_warm import WarmServer, fork_hazard, warm_server

from conftest import TINY_ARGS, only_run_dir, wait_for_epoch

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="steps are forked on Linux only")


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie not yet reaped by its new parent does not)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def shared():
    """One server for the tests that leave it running (its imports cost ~5 s of a core)."""
    server = WarmServer.start()
    yield server
    server.close()


@pytest.fixture
def server(shared, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a step runs in the protocol's working folder at the time
    return shared


@pytest.fixture
def own_server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server = WarmServer.start()
    yield server
    server.close()


def test_a_forked_step_runs_the_entry_point_with_a_fresh_start_time(server, tiny_data, tmp_path):
    imports = server.ready()
    assert imports is not None and imports > 0
    assert server.usable()
    time.sleep(2.0)  # a gap between the server's start and the step's: a budget counts from the step's start
    t_spawn = time.time()
    step = server.spawn([f"data.path={tiny_data}", *TINY_ARGS, "trainer.epochs=1"])
    assert step.wait() == 0
    took = time.time() - t_spawn
    run = only_run_dir(tmp_path)
    # the rows' wall clock counts from the package's import in the step, not from the server's (2 s + its imports
    # earlier): the step imported this package afresh
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok" and 0 < metrics["history"][-1]["wall_s"] <= took


def test_ctrl_c_sent_to_a_forked_steps_group_stops_it_cleanly(server, tiny_data, tmp_path):
    # the server ignores ctrl-C and SIGTERM (the protocol passes them on); its children must not
    step = server.spawn([f"data.path={tiny_data}", *TINY_ARGS, "trainer.epochs=50"])
    run = wait_for_epoch(tmp_path, 1, step)
    os.killpg(step.pid, signal.SIGINT)  # what the protocol does with the ctrl-C it receives
    assert step.wait() == 130
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    # the server goes on serving after a step's failure
    assert server.usable() and server.spawn(["--cfg", "job", "--package", "seed"]).wait() == 0


def test_a_step_dies_with_its_server_and_the_protocol_is_told(own_server, tiny_data, tmp_path):
    server = own_server
    step = server.spawn([f"data.path={tiny_data}", *TINY_ARGS, "trainer.epochs=50"])
    run = wait_for_epoch(tmp_path, 1, step)
    server.proc.kill()  # as a SIGKILL of the protocol takes the server along (PR_SET_PDEATHSIG)
    assert step.wait() == -signal.SIGKILL
    epochs = json.loads((run / "metrics.json").read_text())["epochs_run"]
    time.sleep(1.5)
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == epochs  # nothing trains on
    assert not alive(step.pid)
    assert not server.usable()
    with pytest.raises(BrokenPipeError):
        server.spawn(["--help"])


def test_a_changed_environment_is_not_forked(server, monkeypatch):
    # what the server's imports read (OMP_NUM_THREADS, HF_*) is fixed at its start: a step that needs other values
    # starts as a new interpreter
    assert server.usable()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert not server.usable()


def test_a_failing_forked_step_exits_as_a_new_interpreter_would(capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server = WarmServer.start()  # started here, under capfd: its steps write to the stderr it was started with
    try:
        step = server.spawn(["task=inspect", f"data.path={tmp_path / 'nowhere'}"])
        assert step.wait() == 2  # a user error: one line, exit 2
        err = capfd.readouterr().err
        assert "Traceback" not in err
        [line] = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        assert "data.path=" in line and "nowhere" in line
        assert server.usable()
    finally:
        server.close()


def test_a_forked_grid_with_the_joblib_launcher_ends(server, tiny_data, tmp_path):
    # its workers (loky) are stopped by their executor's exit hook, which a forked step must run as it ends
    args = [f"data.path={tiny_data}", *TINY_ARGS, "trainer.epochs=1", "optim.lr=1e-3,3e-3"]
    step = server.spawn(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *args])
    deadline = time.time() + 300
    while step.poll() is None:
        if time.time() > deadline:
            os.killpg(step.pid, signal.SIGKILL)
            raise AssertionError("the forked grid did not end")
        time.sleep(0.2)
    assert step.returncode == 0
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    for job in ("0", "1"):
        assert json.loads((sweep / job / "metrics.json").read_text())["status"] == "ok"


def test_a_process_with_a_thread_beside_the_main_one_does_not_fork():
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert "thread(s) besides the main one" in fork_hazard()
    finally:
        stop.set()
        thread.join()


def test_a_server_that_cannot_start_leaves_the_steps_to_new_interpreters(monkeypatch, caplog):
    def no_process(*args, **kwargs):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(protocol_warm.subprocess, "Popen", no_process)
    with warm_server(True, True) as server:
        assert server is None
    assert "no warm start server could be started; the steps start as new processes" in caplog.text
    caplog.clear()
    with warm_server(False, True) as server:  # protocol.warm_start=false: none, and nothing to say
        assert server is None
    assert "warm start" not in caplog.text


def test_a_server_that_ends_while_importing_refuses_the_step_with_an_oserror(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server = WarmServer.start()
    assert server.ready(timeout=0) is None  # still importing: no figure yet
    server.proc.kill()
    server.proc.wait()
    with pytest.raises(BrokenPipeError, match="the warm start server ended"):
        server.spawn(["--help"])  # the protocol catches it (an OSError) and starts a new interpreter
    assert server.unusable() == "the warm start server has ended"
    server.close()
    server.close()  # twice: nothing left to close


# A step's module for run_step, as the entry point would end: each body, then the status and output a new interpreter
# gives for it (`python -m` of the same module is the reference).
STEP_ENDS = {
    "returns": "print('ran')",
    "exit_code": "import sys\nsys.exit(3)",
    "exit_text": "import sys\nsys.exit('error: said on stderr, exit 1')",
    "exception": "raise RuntimeError('boom')",
    "ctrl_c": "raise KeyboardInterrupt",
}


@pytest.mark.parametrize("end", sorted(STEP_ENDS))
def test_a_step_ends_with_the_status_and_output_of_a_new_interpreter(end, tmp_path):
    (tmp_path / "step_under_test.py").write_text(
        f"import atexit\natexit.register(print, 'exit handler ran')\n{STEP_ENDS[end]}\n"  # flushed at the end
    )
    run_step = (
        "import sys; sys.path.insert(0, sys.argv[1]); from tinyimagenet_resnet.tasks import protocol_warm as w; "
        "w.ENTRY_MODULE = 'step_under_test'; w.run_step()"
    )
    as_step = subprocess.run(
        [sys.executable, "-c", run_step, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    new = subprocess.run(
        [sys.executable, "-m", "step_under_test"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert as_step.returncode == new.returncode, (as_step, new)
    assert as_step.stdout == new.stdout and "exit handler ran" in as_step.stdout
    last = lambda err: err.strip().splitlines()[-1] if err.strip() else ""  # noqa: E731
    assert last(as_step.stderr) == last(new.stderr), (as_step.stderr, new.stderr)
    assert ("Traceback" in as_step.stderr) == (end in ("exception", "ctrl_c"))


def serve_with_a_thread() -> WarmServer:
    """A real server (serve()) that has a thread beside its main one, and so refuses to fork; its one import is of
    an extra that is not installed (left to the steps that need it)."""
    to_server, requests = os.pipe()
    replies, from_server = os.pipe()
    code = (
        "import sys, threading; threading.Thread(target=threading.Event().wait, daemon=True).start(); "
        "from tinyimagenet_resnet.tasks import protocol_warm as w; w.STEP_IMPORTS[:] = ['an_extra_not_installed']; "
        "w.serve(int(sys.argv[1]), int(sys.argv[2]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(to_server), str(from_server)], pass_fds=(to_server, from_server)
    )
    os.close(to_server)
    os.close(from_server)
    return WarmServer(proc, requests, replies, dict(os.environ))


def test_a_forked_step_starts_with_the_servers_objects_frozen_for_the_collector(tmp_path, monkeypatch):
    # a collection in the step that walked the server's objects would write to every page it shares with the server
    # (copy-on-write: ~110 MB after the real imports) and take ~0.3 s of a core; the step's own objects stay collected
    (tmp_path / "step_under_test.py").write_text(
        "import gc, json\nopen('gc.json', 'w').write(json.dumps([gc.get_freeze_count(), gc.isenabled()]))\n"
    )
    to_server, requests = os.pipe()
    replies, from_server = os.pipe()
    code = (
        "import sys; sys.path.insert(0, sys.argv[3]); from tinyimagenet_resnet.tasks import protocol_warm as w; "
        "w.STEP_IMPORTS[:] = ['email.parser', 'decimal']; w.ENTRY_MODULE = 'step_under_test'; "
        "w.serve(int(sys.argv[1]), int(sys.argv[2])) is not None and w.run_step()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(to_server), str(from_server), str(tmp_path)],
        pass_fds=(to_server, from_server),
    )
    os.close(to_server)
    os.close(from_server)
    server = WarmServer(proc, requests, replies, dict(os.environ))
    monkeypatch.chdir(tmp_path)
    try:
        assert server.ready(timeout=60) is not None
        assert server.spawn([]).wait() == 0
    finally:
        server.close()
    frozen, enabled = json.loads((tmp_path / "gc.json").read_text())
    # the interpreter's and the imports' objects (0 without the freeze), and the step's own still collected
    assert frozen > 5000 and enabled, (frozen, enabled)


def test_a_server_that_must_not_fork_refuses_and_the_step_starts_as_a_new_process(tmp_path, monkeypatch, capfd, caplog):
    monkeypatch.chdir(tmp_path)
    server = serve_with_a_thread()
    try:
        assert server.ready() is not None and server.usable()
        record: dict = {}
        step = start(["model.widths=[16,abc,64]"], record, server)
        assert isinstance(step, subprocess.Popen) and record["forked"] is False
        assert step.wait() == 2  # the new interpreter ran the command: its pre-flight refused it
        err = capfd.readouterr().err
        assert (
            "protocol: this step starts as a new process: the warm start server cannot fork: "
            "1 thread(s) besides the main one" in caplog.text
        )
        assert [ln for ln in err.splitlines() if ln.startswith("error: ")] == [
            "error: model.widths[1]='abc': allowed three positive integers, e.g. [64,128,256]"
        ]
        assert server.unusable() == "the warm start server has ended"  # the next steps do not ask it again
    finally:
        server.close()
    assert server.proc.returncode == 0  # it ended when its requests did


def test_a_server_not_ready_in_time_leaves_the_step_to_a_new_process(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(protocol_warm, "READY_TIMEOUT_S", 0)
    server = WarmServer.start()  # importing for seconds: not ready at once
    assert server is not None
    try:
        record: dict = {}
        step = start(["model.widths=[16,abc,64]"], record, server)
        assert record["forked"] is False and step.wait() == 2
        assert "starts as a new process: the warm start server did not finish its imports in 0 s" in caplog.text
        assert not server.usable()
    finally:
        server.close()


def test_where_steps_cannot_be_forked_there_is_no_server(monkeypatch):
    import torch

    monkeypatch.setattr(protocol_warm.sys, "platform", "darwin")  # macOS and Windows: new interpreters
    server = WarmServer.start()
    monkeypatch.undo()
    if server is not None:
        server.close()
    assert server is None
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # a CUDA context is not usable in a fork
    monkeypatch.setattr(protocol_warm.threading, "active_count", lambda: 1)  # (this worker's threads: other tests')
    assert fork_hazard() == "CUDA is initialised"


@pytest.mark.parametrize("libc", ["unloadable", "without prctl"])
def test_a_process_starts_where_the_parent_death_signal_cannot_be_set(libc, monkeypatch):
    def cdll(*args, **kwargs):
        if libc == "unloadable":
            raise OSError("no C library to load")
        return object()  # a C library without prctl (AttributeError)

    monkeypatch.setattr(protocol_warm.ctypes, "CDLL", cdll)
    # the server then ends when the protocol's pipe closes
    proc = subprocess.run([sys.executable, "-c", "print('started')"], preexec_fn=protocol_warm.die_with_parent,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == "started\n", proc


def test_a_server_that_dies_after_saying_it_is_ready_refuses_the_step_with_an_oserror():
    server = serve_with_a_thread()  # (no imports: ready at once)
    try:
        assert server.ready() is not None
        server.proc.kill()
        server.proc.wait()
        with pytest.raises(BrokenPipeError, match="^the warm start server ended$"):
            server.spawn(["--help"])  # its pipe is closed: the request cannot be written, or has no reply
        assert server.unusable() == "the warm start server has ended"
    finally:
        server.close()
