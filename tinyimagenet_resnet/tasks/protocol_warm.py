"""The protocol's steps forked from a warm process (Linux): a server started once per protocol imports the third-party
packages every step needs (torch, torchvision, datasets, Hydra, TensorBoard ...: ~5 s of one core, paid once), and
forks each step from there. The child drops this package's modules and runs the entry point as
`python -m tinyimagenet_resnet.main <args>` does: it imports this package afresh (its start time, its config store)
and ends as an interpreter does (its threads joined, its exit handlers run, its exit code) but for the teardown of
every module, which it skips (`run_step`). Before each fork the server freezes its objects for the garbage
collector (`gc.freeze`), so that a step's collections leave the memory it shares with the server alone. The server
never runs an operation of torch (no thread pool, no CUDA context is inherited).

    server = WarmServer.start()      # at the protocol's start; None where it cannot run (not Linux)
    proc = server.spawn(args)        # a step: pid, wait() and returncode as subprocess.Popen's
    server.close()                   # at the end (a killed protocol takes it along)

The server dies with the protocol (PR_SET_PDEATHSIG), and each step with the server; each step is the leader of a
session of its own (setsid, as `start_new_session`), so that the protocol's ctrl-C and SIGTERM reach it and its
launcher's workers through its process group. The server ignores ctrl-C and SIGTERM itself: the protocol passes
them on, and a step stopped by one writes its last.ckpt before it ends. `protocol.warm_start=false` starts each step
as a new interpreter instead.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import logging
import os
import runpy
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from ..compat import run_exit_handlers, shutdown_threads  # (Hydra, no torch: tests/conftest.py imports this)
from ..config.kinds import ENTRY_MODULE

# What a step imports before it reads its command line, beside this package (a tiny training measured with
# -X importtime): torch and torch._dynamo (which torch.use_deterministic_algorithms and every optimizer load),
# torchvision, datasets and its streaming patches (scipy.io, boto3), Hydra and its plugins, TensorBoard's writer,
# the report's pandas and matplotlib, Optuna. A package that is not installed (a launcher's extra) is left out.
STEP_IMPORTS = ["torch", "torch._dynamo", "torch._inductor.config", "torchvision", "torchvision.tv_tensors"]
STEP_IMPORTS += ["datasets", "pyarrow.parquet", "PIL.Image", "scipy.io", "boto3", "botocore.client", "urllib3"]
STEP_IMPORTS += ["hydra", "omegaconf", "hydra.experimental", "optuna", "sqlalchemy", "threadpoolctl"]
STEP_IMPORTS += ["tensorboard", "tensorboard.summary", "torch.utils.tensorboard", "absl.flags"]
STEP_IMPORTS += ["pandas", "matplotlib.pyplot"]
STEP_IMPORTS += [
    f"hydra_plugins.hydra_{p}" for p in ("optuna_sweeper", "joblib_launcher", "ray_launcher", "submitit_launcher")
]
# Environment variables read when those packages are imported (thread pools, caches, the Hugging Face and matplotlib
# settings): a step whose values differ from the server's starts as a new interpreter. A forked step gets the others
# as they are when it starts (those torch sets for itself at run time, TORCHINDUCTOR_CACHE_DIR say, included).
IMPORT_TIME_ENV = ("OMP_", "MKL_", "KMP_", "GOMP_", "OPENBLAS_", "NUMEXPR_", "TORCH_", "PYTORCH_", "HF_")
IMPORT_TIME_ENV += ("HUGGINGFACE_", "DATASETS_", "XDG_", "MPL", "PYTHON", "LD_")
log = logging.getLogger(__name__)
READY_TIMEOUT_S = 120.0  # the server's imports; beyond that the protocol stops waiting for its figure


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux's PR_SET_PDEATHSIG; the C library the interpreter runs on,
    glibc or musl). Where it cannot be set, the server still ends when the protocol's pipe closes."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def fork_hazard() -> str | None:
    """Why this process must not fork a step (None: it may): a thread running beside the main one (a lock it holds
    would stay held in the child), or a CUDA context (a forked child cannot use it)."""
    if threading.active_count() > 1:
        return f"{threading.active_count() - 1} thread(s) besides the main one"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return "CUDA is initialised"
    return None


def _send(fd: int, message: dict) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


class _Lines:
    """JSON messages, one per line, read from a file descriptor (no file object: a forked child closes the fd)."""

    def __init__(self, fd: int):
        self.fd, self.buffer = fd, b""

    def read(self) -> dict | None:
        """The next message, or None at the end of the stream."""
        while b"\n" not in self.buffer:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


class WarmStep:
    """A step forked by the server: what the protocol uses of subprocess.Popen (pid, poll, wait, returncode)."""

    def __init__(self, pid: int, server: WarmServer):
        self.pid, self.server, self.returncode = pid, server, None

    def poll(self) -> int | None:
        """The exit code if the step has ended, else None (without waiting)."""
        if self.returncode is None and (
            b"\n" in self.server.replies.buffer or select.select([self.server.replies.fd], [], [], 0)[0]
        ):
            self.wait()
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            reply = self.server.replies.read()
            # no reply: the server itself was killed, and the step with it (PR_SET_PDEATHSIG)
            self.returncode = int(reply["exit"]) if reply else -signal.SIGKILL
            if reply is None:
                self.server.broken = True
        return self.returncode


class WarmServer:
    """The protocol's side of the server (see the module's docstring)."""

    def __init__(self, proc: subprocess.Popen, requests: int, replies: int, env: dict):
        self.proc, self.requests, self.replies, self.env = proc, requests, _Lines(replies), env
        self.import_s: float | None = None  # the server's import seconds, once it said it is ready
        self.broken = self.closed = False
        self.running: WarmStep | None = None  # the last step forked

    @classmethod
    def start(cls) -> WarmServer | None:
        """A new server, importing in the background; None where steps cannot be forked (not Linux) or it could not
        be started."""
        if sys.platform != "linux":
            return None
        to_server, requests = os.pipe()
        replies, from_server = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(to_server), str(from_server)],
                pass_fds=(to_server, from_server),
                preexec_fn=die_with_parent,
            )
        except (OSError, subprocess.SubprocessError):
            proc = None
        os.close(to_server)
        os.close(from_server)
        if proc is None:
            os.close(requests)
            os.close(replies)
            return None
        return cls(proc, requests, replies, dict(os.environ))

    def ready(self, timeout: float | None = None) -> float | None:
        """Wait until the server has imported STEP_IMPORTS; the seconds they took it (None: it did not say so in
        `timeout` seconds, READY_TIMEOUT_S by default, or it ended)."""
        timeout = READY_TIMEOUT_S if timeout is None else timeout
        if self.import_s is None and not self.broken:
            if not select.select([self.replies.fd], [], [], timeout)[0] and b"\n" not in self.replies.buffer:
                return None
            reply = self.replies.read()
            if reply is None:
                self.broken = True
                return None
            self.import_s = float(reply["ready"])
        return self.import_s

    def unusable(self) -> str | None:
        """Why the next step cannot be forked here (None: it can): the server has ended, or what its imports read
        of the environment (IMPORT_TIME_ENV: OMP_NUM_THREADS, say) has changed since it started."""
        if self.broken or self.proc.poll() is not None:
            return "the warm start server has ended"
        changed = sorted(k for k in {*os.environ, *self.env} if os.environ.get(k) != self.env.get(k))
        read = [k for k in changed if k.startswith(IMPORT_TIME_ENV)]
        return f"{', '.join(read)} changed since the warm start server started" if read else None

    def usable(self) -> bool:
        return self.unusable() is None

    def imports_saved_s(self) -> float | None:
        """The import seconds a step forked here does not spend (None: the next step will not be forked)."""
        return self.ready() if self.usable() else None

    def spawn(self, args: list[str], env: dict[str, str] | None = None) -> WarmStep:
        """Fork the entry point with `args` (this process's working folder and environment, plus `env`); OSError when
        the server cannot (it has ended, it is not ready after READY_TIMEOUT_S, it must not fork: `fork_hazard`)."""
        if self.ready() is None:
            ended, self.broken = self.broken, True
            if ended:
                raise BrokenPipeError("the warm start server ended")
            raise TimeoutError(f"the warm start server did not finish its imports in {READY_TIMEOUT_S:g} s")
        try:
            _send(
                self.requests,
                {"args": [str(a) for a in args], "cwd": os.getcwd(), "env": {**os.environ, **(env or {})}},
            )
            reply = self.replies.read()
        except OSError:  # it died since it was asked whether it is usable
            reply = None
        if reply is None or "pid" not in reply:
            self.broken = True
            raise BrokenPipeError(reply["refused"] if reply and "refused" in reply else "the warm start server ended")
        self.running = WarmStep(int(reply["pid"]), self)
        return self.running

    def close(self) -> None:
        """End the server: it exits when its requests end; at once while it is still importing (nothing to lose) or
        while a step still runs (which then dies with it, as a step dies with a protocol that ends)."""
        if self.closed:
            return
        self.closed = True
        os.close(self.requests)
        if self.import_s is None or (self.running is not None and self.running.returncode is None):
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.replies.fd)


@contextmanager
def warm_server(enabled: bool, steps_to_run: bool) -> Iterator[WarmServer | None]:
    """The protocol's server for the block, closed at its end: started where it is enabled (`protocol.warm_start`)
    and some step will run (None otherwise), with a warning line where it could not be started on Linux."""
    server = WarmServer.start() if enabled and steps_to_run else None
    if server is None and enabled and steps_to_run and sys.platform == "linux":
        log.warning("protocol: no warm start server could be started; the steps start as new processes")
    try:
        yield server
    finally:
        if server is not None:
            server.close()


# ------------------------------------------------------------------------------------------------ the server


def _become_step(request: dict, fds: tuple[int, ...], server_pid: int, started: int) -> None:
    """In the forked child: a session of its own, dead with the server, the signals and folder of a new process."""
    os.setsid()
    die_with_parent()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # (the server ignores both)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # the server replies with the pid only now: a ctrl-C or SIGTERM the protocol sends to the group reaches the step
    os.write(started, b"1")
    for fd in (*fds, started):
        os.close(fd)
    if os.getppid() != server_pid:  # the server died before PR_SET_PDEATHSIG took effect
        os._exit(137)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for name in [m for m in sys.modules if m == "tinyimagenet_resnet" or m.startswith("tinyimagenet_resnet.")]:
        del sys.modules[name]  # imported afresh by the entry point: its start time (a budget counts from it), its state
    sys.argv = [sys.argv[0], *request["args"]]


def serve(requests: int, replies: int) -> dict | None:
    """The server's loop: import STEP_IMPORTS, say so, then fork one child per request and report its pid and its
    exit code. Returns the request in each forked child (which then runs it), None in the server at the end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    t0 = time.perf_counter()
    for name in STEP_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an extra that is not installed: a step that needs it imports it (or fails)
            pass
    _send(replies, {"ready": round(time.perf_counter() - t0, 3)})
    lines = _Lines(requests)
    server_pid = os.getpid()
    while (request := lines.read()) is not None:
        if hazard := fork_hazard():
            _send(replies, {"refused": f"the warm start server cannot fork: {hazard}"})
            continue
        for stream in (sys.stdout, sys.stderr):  # what the imports printed, once (not again in each child)
            stream.flush()
        started_r, started_w = os.pipe()
        # the server's objects (~500k after its imports) go to the collector's permanent generation: the step's
        # collections never walk them, and so never write to (and copy) the pages it shares with the server; a tiny
        # training measured ~0.3 s of one core and ~110 MB of private memory less (BENCHMARKS.md, "Test suite")
        gc.freeze()
        pid = os.fork()
        # the child's side of the fork: coverage does not trace the frame that forked (every protocol test runs it)
        if pid == 0:  # pragma: no cover
            os.close(started_r)
            _become_step(request, (requests, replies), server_pid, started_w)
            return request
        os.close(started_w)
        os.read(started_r, 1)  # the child is in its own session (or has died)
        os.close(started_r)
        _send(replies, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        _send(replies, {"exit": os.waitstatus_to_exitcode(status)})
    return None


def run_step() -> NoReturn:
    """In a forked child: the entry point as `python -m` runs it, then the end of an interpreter but for its teardown
    of every module (~1.5 s with torch loaded; multiprocessing's children skip it too): its threads shut down as an
    interpreter shuts them down (executors' workers included), the exit handlers run, the output flushed, and the
    exit status an interpreter gives (SystemExit's code; 1 and the traceback for an uncaught exception; SIGINT for
    an uncaught KeyboardInterrupt)."""
    interrupted = False
    try:
        runpy.run_module(ENTRY_MODULE, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except BaseException as exc:  # noqa: BLE001 - what an interpreter does with an uncaught exception
        sys.excepthook(type(exc), exc, exc.__traceback__)
        code, interrupted = 1, isinstance(exc, KeyboardInterrupt)
    try:
        shutdown_threads()
        run_exit_handlers()  # coverage saves a step's data here: what follows is checked by its effects (tests)
        for stream in (sys.stdout, sys.stderr):  # pragma: no cover
            stream.flush()
    except BaseException:  # noqa: BLE001 # pragma: no cover - the step has ended: its status stands
        pass
    finally:  # pragma: no cover
        if interrupted:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code)


if __name__ == "__main__":
    if serve(int(sys.argv[1]), int(sys.argv[2])) is not None:  # a forked step (see serve)
        run_step()  # pragma: no cover
