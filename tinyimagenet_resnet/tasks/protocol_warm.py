"""The protocol's steps forked from a warm process (Linux): a server started once per protocol imports the third-party
packages every step needs (torch, torchvision, datasets, Hydra, TensorBoard ...: ~5 s of one core, paid once), and
forks each step from there. The child drops this package's modules and runs the entry point as
`python -m tinyimagenet_resnet.main <args>` does: it imports this package afresh (its start time, its config store)
and ends as an interpreter does (its threads joined, its exit handlers run, its exit code) but for the teardown of
every module, which it skips (`run_step`). The server never runs an operation of torch (no thread pool, no CUDA
context is inherited).

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

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import NoReturn

from ..config.kinds import ENTRY_MODULE  # (light: no third-party import)

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
READY_TIMEOUT_S = 120.0  # the server's imports; beyond that the protocol stops waiting for its figure


def _die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux's PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


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
        import select

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
        self.broken = False

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
                preexec_fn=_die_with_parent,
            )
        except OSError:
            proc = None
        os.close(to_server)
        os.close(from_server)
        if proc is None:
            os.close(requests)
            os.close(replies)
            return None
        return cls(proc, requests, replies, dict(os.environ))

    def ready(self, timeout: float = READY_TIMEOUT_S) -> float | None:
        """Wait until the server has imported STEP_IMPORTS; the seconds they took it (None: it did not say so in
        `timeout` seconds, or it ended)."""
        import select

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

    def spawn(self, args: list[str]) -> WarmStep:
        """Fork the entry point with `args` (this process's working folder and environment); OSError when the
        server has gone."""
        self.ready()
        if self.broken:
            raise BrokenPipeError("the warm server ended")
        _send(self.requests, {"args": [str(a) for a in args], "cwd": os.getcwd(), "env": dict(os.environ)})
        reply = self.replies.read()
        if reply is None:
            self.broken = True
            raise BrokenPipeError("the warm server ended")
        return WarmStep(int(reply["pid"]), self)

    def close(self) -> None:
        """End the server: it exits when its requests end (at once while it is still importing: nothing to lose)."""
        try:
            os.close(self.requests)
        except OSError:
            pass
        if self.import_s is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.replies.fd)


# ------------------------------------------------------------------------------------------------ the server


def _become_step(request: dict, fds: tuple[int, ...], server_pid: int, started: int) -> None:
    """In the forked child: a session of its own, dead with the server, the signals and folder of a new process."""
    os.setsid()
    _die_with_parent()
    os.write(started, b"1")  # the server replies with the pid only now: a signal sent to its group reaches it
    for fd in (*fds, started):
        os.close(fd)
    if os.getppid() != server_pid:  # the server died before the line above took effect
        os._exit(137)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
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
        started_r, started_w = os.pipe()
        pid = os.fork()
        if pid == 0:
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
    of every module (~1.5 s with torch loaded; multiprocessing's children skip it too): the threads that are not
    daemons joined, the exit handlers run, the output flushed, SystemExit's code (1 and the traceback for an
    uncaught exception)."""
    import runpy
    import threading
    import traceback

    from ..compat import run_exit_handlers

    try:
        runpy.run_module(ENTRY_MODULE, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except BaseException as exc:  # noqa: BLE001 - what an interpreter does with an uncaught exception
        traceback.print_exc()
        code = 130 if isinstance(exc, KeyboardInterrupt) else 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    if serve(int(sys.argv[1]), int(sys.argv[2])) is not None:
        run_step()
