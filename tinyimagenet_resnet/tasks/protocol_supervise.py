"""The protocol's child processes: each step is the entry point run in a process group of its own, which dies with
the protocol (PR_SET_PDEATHSIG on Linux), receives the protocol's ctrl-C and SIGTERM, and is ended on a re-run when a
killed protocol left some of it running. On Linux a step is forked from the protocol's warm server (protocol_warm.py:
its imports are done), elsewhere it is a new interpreter.

    proc = start(args, record, server)   # record: the step's entry in state.json (its commands and process group)
    stop = outcome(name, proc.returncode, wait_forwarding(proc), allow_failure=False)
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..config.kinds import COMMAND, command_argv
from ..errors import UserError
from .protocol_warm import WarmServer, WarmStep, die_with_parent

log = logging.getLogger(__name__)
GROUP_TOKEN = "TIR_PROTOCOL_STEP"  # an environment variable: the token of the step a process belongs to


class StepFailed(UserError):
    """A step's process failed (exit 1): its output says why; a re-run skips the finished steps."""

    exit_code = 1


class ProtocolInterrupted(UserError):
    """ctrl-C or SIGTERM stopped the protocol (exit 130 or 143); a re-run goes on from there."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


def start(args: list[str], record: dict, server: WarmServer | None = None) -> subprocess.Popen | WarmStep:
    """Start the entry point with `args` in its own process group (its launcher's workers included), recording the
    command and the group in `record` so that a re-run after a SIGKILL of the protocol can end what is left of it.
    Forked from the warm `server` where it can (protocol_warm.py), else a new interpreter."""
    cmd = [*command_argv(), *args]
    record.setdefault("commands", []).append(f"{COMMAND} " + shlex.join(args))
    # in the step's environment (forked or not), which the processes it starts inherit: end_group knows them by it
    token = {GROUP_TOKEN: secrets.token_hex(8)}
    record["token"] = token[GROUP_TOKEN]
    record["command"] = record["commands"][0]
    why = server.unusable() if server is not None else "no warm start server"
    if why is None:
        try:
            step = server.spawn(args, token)
        except OSError as exc:
            why = str(exc)  # it ended, it is not ready in time, or it must not fork (fork_hazard)
        else:
            record.update(pgid=step.pid, forked=True)
            return step
    if server is not None:
        log.warning("protocol: this step starts as a new process: %s", why)
    record["forked"] = False
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **token},
        preexec_fn=die_with_parent if sys.platform == "linux" else None,
        start_new_session=sys.platform != "win32",
    )
    record["pgid"] = proc.pid if sys.platform != "win32" else None
    return proc


def wait_forwarding(proc: subprocess.Popen | WarmStep) -> list[str]:
    """Wait for `proc`, passing ctrl-C and SIGTERM on to its group (a training stops cleanly, writing its
    last.ckpt); the names of the signals that arrived meanwhile."""
    stopped: list[str] = []

    def forward(signum, frame):
        stopped.append(signal.Signals(signum).name)
        try:
            if sys.platform != "win32":
                os.killpg(proc.pid, signum)
            else:
                proc.send_signal(signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return stopped


def outcome(name: str, code: int, stopped: list[str], allow_failure: bool) -> str | None:
    """Raise ProtocolInterrupted for step `name` stopped by a signal, StepFailed for one that failed (unless
    `allow_failure`); else the signal that arrived as it finished (the protocol stops before the next step) or None."""
    if stopped and code != 0:
        raise ProtocolInterrupted(
            f"protocol interrupted by {stopped[0]} during step {name}; run the same command again: finished "
            "steps are skipped and an interrupted training continues from its last.ckpt",
            exit_code=143 if stopped[0] == "SIGTERM" else 130,
        )
    if code != 0 and not allow_failure:
        raise StepFailed(
            f"protocol step {name} failed (exit {code}); its output is above; fix the cause and run "
            "the same command again: finished steps are skipped"
        )
    return stopped[0] if stopped else None


def end_group(pgid: int, token: str | None = None) -> bool:
    """SIGKILL what is left of process group `pgid` (a launcher's workers, or a child where the parent-death signal
    does not exist); whether it was ended. Only a group that is still one of ours, a pid can be reused by another
    program: its leader is a step (`_leader_is_ours`), or, its leader gone (it dies with the protocol), a process of
    the group carries the step's `token` in its environment (a launcher's worker started by the step). While a member
    lives, Linux does not give its group's number to a new process, and only the step's session can join its group."""
    entry = f"{GROUP_TOKEN}={token}".encode() if token else None
    if pgid == os.getpgid(0) or not (_leader_is_ours(pgid, entry) or (entry and _a_member_carries(pgid, entry))):
        return False  # gone, another program's, or no /proc (macOS): nothing we can safely end
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    time.sleep(0.5)
    return True


def _proc_file(pid: int | str, name: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return b""


def _stat(pid: int | str) -> list[bytes]:
    """/proc/PID/stat after "pid (comm)": state, ppid, pgrp, session, ... ([] for a process that is gone)."""
    return _proc_file(pid, "stat").rpartition(b")")[2].split()


def _leader_is_ours(pgid: int, entry: bytes | None) -> bool:
    """Whether process `pgid` is a step: it runs this package, leads a session of its own (a command typed in a shell,
    this protocol say, does not) and carries no other step's token (a forked step shows its server's environment)."""
    stat, cmdline = _stat(pgid), _proc_file(pgid, "cmdline")
    if len(stat) < 4 or stat[3] != str(pgid).encode() or b"tinyimagenet_resnet" not in cmdline:
        return False
    tokens = [e for e in _proc_file(pgid, "environ").split(b"\0") if e.startswith(f"{GROUP_TOKEN}=".encode())]
    return entry is None or tokens in ([], [entry])


def _a_member_carries(pgid: int, entry: bytes) -> bool:
    """Whether a process of group `pgid` has `entry` (NAME=value) in the environment it was started with."""
    for pid in (p.name for p in Path("/proc").glob("[0-9]*")):
        fields = _stat(pid)
        if len(fields) > 2 and fields[2] == str(pgid).encode() and entry in _proc_file(pid, "environ").split(b"\0"):
            return True
    return False
