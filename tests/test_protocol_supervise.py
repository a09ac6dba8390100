"""How the protocol supervises its steps' processes (tasks/protocol_supervise.py), with real processes: a ctrl-C or
SIGTERM it receives reaches the step's own process group and stops the protocol in one line; a group a killed
protocol left behind is ended on a re-run, and only when it is ours. (End to end: test_protocol.py.)"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tinyimagenet_resnet.tasks import protocol_supervise
from tinyimagenet_resnet.tasks.protocol_supervise import (
    ProtocolInterrupted,
    StepFailed,
    end_group,
    outcome,
    start,
    wait_forwarding,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups and /proc: Linux")


def group_ends(pgid: int, within_s: float = 10.0) -> bool:
    """Whether process group `pgid` is empty within `within_s` (what is left is killed, so as not to outlive us)."""
    deadline = time.time() + within_s
    while time.time() < deadline:
        if subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True).returncode == 1:
            return True
        time.sleep(0.05)
    subprocess.run(["pkill", "-KILL", "-g", str(pgid)])
    return False


def test_a_ctrl_c_during_a_step_reaches_its_group_and_stops_the_protocol_in_one_line():
    # the step leads a session of its own (as every step does), with a child of its own: both must get the ctrl-C.
    # It takes the default ctrl-C (an xdist worker that ran other tests may ignore it, and a child inherits that), and
    # says its child's pid once both run.
    code = (
        "import signal, subprocess, time; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "print(subprocess.Popen(['sleep', '60']).pid, flush=True); time.sleep(60)"
    )
    step = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        child = int(step.stdout.readline())
        before = signal.getsignal(signal.SIGINT)
        # the terminal's ctrl-C, to this process's main thread, which waits on the step meanwhile
        ctrl_c = threading.Timer(0.5, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
        ctrl_c.start()
        try:
            stopped = wait_forwarding(step)
        finally:
            ctrl_c.cancel()
        assert stopped == ["SIGINT"]
        assert step.returncode == -signal.SIGINT  # an uncaught KeyboardInterrupt, as in a new interpreter
        assert signal.getsignal(signal.SIGINT) is before  # the protocol's own handling is back
        assert group_ends(step.pid), "the ctrl-C did not reach the step's own child"
        assert not os.path.exists(f"/proc/{child}")
    finally:
        subprocess.run(["pkill", "-KILL", "-g", str(step.pid)])
        step.wait()
    with pytest.raises(ProtocolInterrupted) as info:
        outcome("train", step.returncode, stopped, allow_failure=False)
    assert info.value.exit_code == 130 and "\n" not in str(info.value)
    assert str(info.value).startswith("protocol interrupted by SIGINT during step train; run the same command again")


def test_what_a_step_that_ended_means_for_the_protocol():
    with pytest.raises(ProtocolInterrupted) as info:
        outcome("lr_wd", -signal.SIGTERM, ["SIGTERM"], allow_failure=False)
    assert info.value.exit_code == 143
    with pytest.raises(StepFailed, match=r"^protocol step inspect failed \(exit 2\); its output is above") as failed:
        outcome("inspect", 2, [], allow_failure=False)
    assert failed.value.exit_code == 1
    assert outcome("overfit", 2, [], allow_failure=True) is None  # a step allowed to fail
    # a ctrl-C that arrived as the step finished: the step stands, the protocol stops before the next one
    assert outcome("lr_find", 0, ["SIGINT"], allow_failure=False) == "SIGINT"
    assert outcome("lr_find", 0, [], allow_failure=False) is None


def test_a_group_left_by_a_killed_protocol_is_ended_only_when_it_is_ours():
    # a leader that has been running a while, as a killed protocol's step has: right after Popen returns, the child
    # may still be inside execve, its /proc/PID/cmdline empty (12 of 300 tries here: CPython 3.11, Linux 6.18).
    # Besides a step of ours: a pid reused by another program, by this package run from a shell (a group of its own
    # in the shell's session, as this protocol's re-run is), and by another step (another token)
    up = "import sys, time; print('up', flush=True); time.sleep(60)"
    cmd = [sys.executable, "-c", up, "tinyimagenet_resnet.main"]
    ours = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    shell_job = subprocess.Popen(cmd, process_group=0, stdout=subprocess.PIPE)
    env = {**os.environ, protocol_supervise.GROUP_TOKEN: "1" * 16}
    another_step = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, env=env)
    procs = (ours, other, shell_job, another_step)
    try:
        assert all(p.stdout.readline() == b"up\n" for p in (ours, shell_job, another_step))
        deadline = time.monotonic() + 10  # `other` has exec'd (sleep says nothing)
        while b"sleep" not in (cmdline := Path(f"/proc/{other.pid}/cmdline").read_bytes()):
            assert time.monotonic() < deadline, cmdline
            time.sleep(0.01)
        assert end_group(ours.pid, "0" * 16) is True  # (a forked step shows no token: its server's environment)
        assert ours.wait(timeout=10) == -signal.SIGKILL
        assert end_group(other.pid) is False and other.poll() is None
        assert end_group(shell_job.pid) is False and shell_job.poll() is None
        assert end_group(another_step.pid, "0" * 16) is False and another_step.poll() is None
        assert end_group(os.getpgid(0)) is False  # this process's own group, whatever runs it
        assert end_group(ours.pid) is False  # gone: nothing to end
        assert end_group(another_step.pid, "1" * 16) is True and another_step.wait(timeout=10) == -signal.SIGKILL
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()


def test_the_workers_of_a_step_whose_leader_died_with_the_protocol_are_ended_by_the_steps_token(monkeypatch):
    # a SIGKILLed protocol takes its steps along (the parent-death signal), not the processes a step started: a
    # joblib launcher's loky workers went on training, in a group whose leader was gone. The step here is started as
    # the protocol starts one as a new interpreter (a session of its own, the step's token in its environment), starts
    # a worker, and is killed
    code = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    monkeypatch.setattr(protocol_supervise, "command_argv", lambda: [sys.executable, "-c", code])
    record: dict = {}
    leader = start([], record, None)
    try:
        assert record["pgid"] == leader.pid and record["forked"] is False and len(record["token"]) == 16
        assert protocol_supervise.GROUP_TOKEN not in os.environ  # the protocol's own environment is unchanged
        deadline = time.monotonic() + 30
        while not (workers := [p for p in group(leader.pid) if p != leader.pid]):
            assert time.monotonic() < deadline, "the step's worker did not start"
            time.sleep(0.05)
        leader.kill()
        leader.wait()  # gone: only its worker is left in the group
        [worker] = workers
        deadline = time.monotonic() + 10  # exec'd, its environment the step's
        while b"sleep" not in (cmdline := Path(f"/proc/{worker}/cmdline").read_bytes()):
            assert time.monotonic() < deadline, cmdline
            time.sleep(0.01)
        assert group(leader.pid) == [worker]
        assert end_group(leader.pid) is False  # no token (a state written before it): nothing known to be ours
        assert end_group(leader.pid, "0" * 16) is False and group(leader.pid) == [worker]  # another step's
        assert end_group(leader.pid, record["token"]) is True
        assert group_ends(leader.pid)
    finally:
        leader.kill()
        leader.wait()
        subprocess.run(["pkill", "-KILL", "-g", str(leader.pid)])


def group(pgid: int) -> list[int]:
    """The processes of group `pgid`."""
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]
