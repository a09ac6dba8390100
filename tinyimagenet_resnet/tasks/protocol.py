"""`task=protocol`: the course protocol as one resumable command.

    inspect -> baselines -> overfit_small -> lr_find -> LR x WD grid -> blocks x dropout grid at the best LR/WD
    -> full training with the best configuration -> evaluate its best.ckpt on test -> the report (each language)

Each step is the entry point run in a child process (forked from a warm server on Linux), in its own folder of
`<protocol.dir>/<protocol.name>/`, with the scale's settings (`SCALES`), the user's overrides, and what the earlier
steps chose. `state.json` records each step's status, folder and choice; `steps.log` one line per step started,
skipped, finished or failed. Re-running the same command skips finished steps, continues an interrupted training
from its `last.ckpt`, and runs a failed or interrupted step again (a grid from where it stopped). The children die
with the protocol (PR_SET_PDEATHSIG on Linux), so a SIGKILL of the protocol leaves no training running on its own.

This module runs the steps; beside it: protocol_scales.py (each scale's settings), protocol_state.py (state.json and
overrides), protocol_supervise.py and protocol_warm.py (the child processes), protocol_time.py (the time estimates).
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..artifacts.files import write_json
from ..artifacts.records import LRFindRecord, TrainMetrics
from ..artifacts.runs import Run, expand
from ..config.kinds import RUN_KINDS
from ..progress import duration
from ..sweeps.rows import collect
from .protocol_scales import SCALES, STEPS, SWEEPS, lr_wd_handoff
from .protocol_state import check_overrides, open_state, user_overrides
from .protocol_supervise import ProtocolInterrupted, StepFailed, end_group, outcome, start, wait_forwarding
from .protocol_time import ProtocolClock, plan_clock
from .protocol_warm import WarmServer, warm_server

log = logging.getLogger(__name__)


@dataclass
class Protocol:
    root: Path
    scale: str
    user: list[str]  # the user's overrides, for every step
    launcher: list[str]  # the user's hydra/launcher overrides, for the grids
    langs: list[str]
    state: dict
    stop_after: str | None = None  # a signal that arrived as a step finished
    clock: ProtocolClock | None = None  # how long each step should take here (protocol_time.py)
    server: WarmServer | None = None  # the steps' warm start (protocol_warm.py); None: each a new interpreter

    # ------------------------------------------------------------------------------------------ state
    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def save(self) -> None:
        write_json(self.state_path, self.state)

    def note(self, step: str, event: str, detail: str = "") -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {step} {event}" + (f" {detail}" if detail else "")
        with open(self.root / "steps.log", "a", encoding="utf-8") as f:
            f.write(line + "\n")
        log.info("protocol: %s %s%s", step, event, f" ({detail})" if detail else "")

    def step(self, name: str) -> dict:
        return self.state["steps"].setdefault(name, {"status": "pending"})

    def pending(self, steps: tuple[str, ...] = STEPS) -> list[str]:
        """The steps of `steps` still to run (the report always is: it is rebuilt every time)."""
        return [s for s in steps if self.step(s)["status"] != "done" or s == "report"]

    def folder(self, name: str) -> Path:
        return self.root / name

    def choice(self, name: str) -> dict:
        return self.state["steps"].get(name, {}).get("choice", {})

    # ------------------------------------------------------------------------------------------ running
    def args(self, name: str, handoff: list[str]) -> list[str]:
        scale = SCALES[self.scale]
        return [*scale["all"], *scale[name], *self.user, *handoff]

    def child(self, name: str, args: list[str], allow_failure: bool = False) -> int:
        """Run a step's command in a child process (protocol_supervise.py), its process group in the state while it
        runs; the exit code (StepFailed for a failure unless `allow_failure`)."""
        st = self.step(name)
        proc = start(args, st, self.server)
        self.save()
        stopped = wait_forwarding(proc)
        st["pgid"] = None
        self.save()
        self.stop_after = outcome(name, proc.returncode, stopped, allow_failure) or self.stop_after
        return proc.returncode

    def end_leftovers(self, name: str) -> None:
        """A step whose protocol was killed may have left processes of its group running: end them before running
        the step again."""
        pgid = self.step(name).get("pgid")
        if not pgid or sys.platform == "win32":
            return
        if end_group(pgid, self.step(name).get("token")):
            log.warning("protocol: ended what was left running of step %s (process group %d)", name, pgid)
        self.step(name)["pgid"] = None

    def run_step(self, name: str, fn: Callable[[bool], dict | None]) -> None:
        """Run step `name` as `fn(again)` unless it finished earlier, recording its status, attempts, seconds and
        result in the state and a line in steps.log."""
        st = self.step(name)
        if st["status"] == "done" and name != "report":  # the report is cheap: always rebuilt (report.* may differ)
            self.note(name, "skip", "done earlier")
            return
        again = st["status"] in ("running", "failed", "interrupted")
        if again:
            self.end_leftovers(name)
        st.update(status="running", started=time.strftime("%Y-%m-%dT%H:%M:%S"))
        st["attempts"] = st.get("attempts", 0) + 1
        self.save()
        self.note(name, "start", "again" if again else "")
        self.where(name)
        t0 = time.perf_counter()
        try:
            result = fn(again)
        except BaseException as exc:
            st["status"] = "interrupted" if isinstance(exc, (ProtocolInterrupted, KeyboardInterrupt)) else "failed"
            self.save()
            self.note(name, st["status"])
            raise
        st.update(status="done", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), **(result or {}))
        st["seconds"] = round(time.perf_counter() - t0, 1)
        if self.clock is not None:
            self.clock.actual[name] = st["seconds"]
        self.save()
        self.note(name, "done", ", ".join(f"{k}={v}" for k, v in (result or {}).get("choice", {}).items()))

    def where(self, name: str) -> None:
        """`protocol: step 4/9 lr_find (est. 1 min 10 s; protocol est. 6 min 30 s left)`."""
        k = STEPS.index(name) + 1
        line = f"protocol: step {k}/{len(STEPS)} {name}"
        if self.clock is not None and name in self.clock.estimates:
            pending = self.pending(STEPS[k - 1 :])
            line += f" (est. {duration(self.clock.of(name))}; protocol est. {duration(self.clock.left(pending))} left)"
        log.info("%s", line)

    def estimate(self, cfg) -> None:
        """Estimate every pending step (protocol_time.py; a few seconds: one model's train step is timed). An
        estimate that cannot be made is one warning line, and the protocol goes on without it."""
        try:
            self._estimate(cfg)
        except Exception as exc:  # noqa: BLE001 - the estimate only informs; it never stops the protocol
            log.warning("protocol: no time estimate (%s: %s)", type(exc).__name__, exc)
            self.clock = None

    def _estimate(self, cfg) -> None:
        pending = self.pending()
        warm = self.server.imports_saved_s if self.server else lambda: None
        self.clock = plan_clock(pending, self.estimate_args, cfg.trainer.device, cfg.trainer.precision, warm)
        total = sum(self.clock.estimates.values())
        log.info(
            "Protocol %s: %d steps to run, about %s on this machine (%s)",
            self.root.name,
            len(pending),
            duration(total),
            ", ".join(f"{n} {duration(self.clock.estimates[n])}" for n in pending),
        )

    def estimate_args(self, name: str) -> list[str]:
        """A step's arguments as its cost is estimated: the LR grid counted as it will run, around a suggestion (its
        value does not change the cost)."""
        handoff = lr_wd_handoff(self.scale, self.choice("lr_find").get("lr", 1e-3)) if name == "lr_wd" else []
        return self.args(name, handoff) if name != "report" else []

    def single(self, name: str, args: list[str], again: bool) -> Path:
        """A single run in <root>/<name> (a stale folder from an interrupted attempt is removed first)."""
        folder = self.folder(name)
        if again and folder.exists():
            shutil.rmtree(folder)
        self.child(name, [*args, f"hydra.run.dir={folder}"])
        return folder

    def grid(self, name: str, args: list[str], again: bool) -> Path:
        """A grid in <root>/<name>. Run again after an interruption, it continues (sweeps/grid.py: finished jobs are
        skipped, an interrupted one continues from its last.ckpt). A job that fails (diverges at a large LR, say)
        does not stop the protocol while another job finished: the best finished one is chosen and the failures
        are recorded."""
        folder = self.folder(name)
        code = self.child(
            name, ["-m", f"sweep={name}", *self.launcher, *args, f"hydra.sweep.dir={folder}"], allow_failure=True
        )
        if code != 0:
            rows = collect(folder) if folder.is_dir() else []
            failed = [r.job for r in rows if r.status != "ok"]
            if not any(r.status == "ok" for r in rows):
                raise StepFailed(
                    f"protocol step {name} failed (exit {code}): no job of the grid finished; see the jobs' "
                    f"main.log under {folder}, fix the cause and run the same command again"
                )
            self.step(name)["failed_jobs"] = [Path(j).name for j in failed]
            log.warning(
                "protocol: %d job(s) of %s did not finish (%s); choosing among the others",
                len(failed),
                name,
                ", ".join(Path(j).name for j in failed),
            )
        return folder

    # ------------------------------------------------------------------------------------------ the steps
    def plan(self, cfg) -> dict[str, Callable[[bool], dict]]:
        """Each step's function of `again` (a step run again after an interruption or a failure)."""
        return {
            "inspect": self.task_step("inspect", ["task=inspect"]),
            "baselines": self.task_step("baselines", ["task=baselines"]),
            "overfit": self.task_step("overfit", ["experiment=overfit_small"]),
            "lr_find": self.lr_find,
            "lr_wd": self.lr_wd,
            "blocks_dropout": self.blocks_dropout,
            "train": self.train,
            "evaluate": self.evaluate,
            "report": lambda again: self.report(again, cfg),
        }

    def task_step(self, name: str, task_args: list[str]) -> Callable[[bool], dict]:
        """A step that is one run with `task_args` and the scale's settings, handing on its folder."""
        return lambda again: {"dir": str(self.single(name, [*task_args, *self.args(name, [])], again))}

    def lr_find(self, again: bool) -> dict:
        folder = self.single("lr_find", ["task=lr_find", *self.args("lr_find", [])], again)
        rec = Run(folder).read(LRFindRecord)
        lr = rec.suggested_lr if rec else None
        return {"dir": str(folder), "choice": {"lr": lr}}

    def best_of_grid(self, name: str, handoff: list[str], again: bool, pick) -> dict:
        """Run a grid and hand on `pick(config)` of its best finished job."""
        folder = self.grid(name, self.args(name, handoff), again)
        best = best_job(folder)
        return {"dir": str(folder), "choice": pick(best.config), "best_job": best.path.name}

    def lr_wd(self, again: bool) -> dict:
        lr = self.choice("lr_find").get("lr")
        result = self.best_of_grid(
            "lr_wd",
            lr_wd_handoff(self.scale, lr),
            again,
            lambda cfg: {"lr": float(cfg["optim"]["lr"]), "weight_decay": float(cfg["optim"]["weight_decay"])},
        )
        return {**result, "grid_centre": lr}

    def blocks_dropout(self, again: bool) -> dict:
        c = self.choice("lr_wd")
        return self.best_of_grid(
            "blocks_dropout",
            [f"optim.lr={c['lr']:g}", f"optim.weight_decay={c['weight_decay']:g}"],
            again,
            lambda cfg: {"blocks": list(cfg["model"]["blocks"]), "dropout": float(cfg["model"]["dropout"])},
        )

    def train(self, again: bool) -> dict:
        c, b = self.choice("lr_wd"), self.choice("blocks_dropout")
        handoff = [
            f"optim.lr={c['lr']:g}",
            f"optim.weight_decay={c['weight_decay']:g}",
            "model.blocks=[" + ",".join(str(x) for x in b["blocks"]) + "]",
            f"model.dropout={b['dropout']:g}",
        ]
        folder = self.folder("train")
        last = folder / "checkpoints" / "last.ckpt"
        metrics = Run(folder).read(TrainMetrics) if folder.is_dir() else None
        if metrics is not None and metrics.status == "ok":
            pass  # finished; only the state had not been written when the protocol stopped
        elif last.is_file() and (metrics is None or metrics.status in ("running", "interrupted")):
            self.note("train", "resume", str(last))
            self.child("train", [f"ckpt_path={last}"])
        else:
            self.single("train", self.args("train", handoff), again)
        m = Run(folder).read(TrainMetrics)
        return {
            "dir": str(folder),
            "choice": {"checkpoint": str(folder / "checkpoints" / "best.ckpt")},
            "best_val_top1": m.best.val_accuracy if m else None,
        }

    def evaluate(self, again: bool) -> dict:
        ckpt = self.choice("train")["checkpoint"]
        folder = self.single("evaluate", ["task=evaluate", f"ckpt_path={ckpt}", *self.args("evaluate", [])], again)
        return {"dir": str(folder)}

    def report(self, again: bool, cfg) -> dict:
        """The report of every step's run, in each of `protocol.lang`."""
        # lazy: matplotlib (~1.7 s) stays out of the start-up that the estimate counts as each step's (protocol_time.py)
        from ..reporting.context import ReportOptions
        from ..reporting.report import build

        runs = {kind: self.state["steps"][kind]["dir"] for kind in RUN_KINDS}  # each run kind is a step
        sweeps = [self.state["steps"][s]["dir"] for s in SWEEPS]
        written = []
        for lang in dict.fromkeys(self.langs):
            out = self.root / ("report" if lang == "en" else f"report-{lang}")
            opts = ReportOptions(
                lang=lang,
                out=str(out),
                runs=runs,
                sweeps=sweeps,
                author=cfg.report.author,
                repo=cfg.report.repo,
                protocol=self.state,
                discover=False,
            )
            written.append(str(build(opts)))
        return {"reports": written}


def best_job(sweep: Path) -> Run:
    """The finished job with the best val top-1 in a grid's summary (the grid must have one)."""
    rows = [r for r in collect(sweep) if r.status == "ok"]
    if not rows:
        raise StepFailed(f"protocol: no job of {sweep} finished; see its jobs' main.log, then run the command again")
    jobs = {j.path.name: j for j in expand([sweep])}
    return jobs.get(Path(rows[0].job).name) or next(j for j in jobs.values() if str(j.path).endswith(str(rows[0].job)))


def run(cfg) -> dict:
    """Run the protocol's steps that are not finished, in order; the reports it wrote and the seconds it took."""
    p = cfg.protocol
    root = Path(str(p.dir)) / str(p.name)
    root = root if root.is_absolute() else Path.cwd() / root
    root.mkdir(parents=True, exist_ok=True)
    user, launcher = user_overrides()
    check_overrides(user)
    state = open_state(root, str(p.name), str(p.scale), user)
    proto = Protocol(root, str(p.scale), user, launcher, [str(x) for x in p.lang], state)
    proto.save()
    log.info("Protocol %s (scale %s): state in %s", p.name, p.scale, proto.state_path)
    t0 = time.perf_counter()
    with warm_server(p.warm_start, bool(proto.pending(STEPS[:-1]))) as proto.server:  # it imports meanwhile
        proto.estimate(cfg)
        plan = proto.plan(cfg)
        for name in STEPS:
            proto.run_step(name, plan[name])
            if proto.stop_after and name != STEPS[-1]:
                raise ProtocolInterrupted(
                    f"protocol interrupted by {proto.stop_after} after step {name}; run the same command again to go on"
                )
    took = time.perf_counter() - t0
    reports = state["steps"]["report"].get("reports", [])
    log.info("Protocol %s finished in %.0f s: %s", p.name, took, ", ".join(reports))
    print("protocol finished: " + ", ".join(reports))
    return {"reports": reports, "seconds": math.floor(took)}
