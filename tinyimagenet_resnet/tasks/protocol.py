"""`task=protocol`: the course protocol as one resumable command.

    inspect -> baselines -> overfit_small -> lr_find -> LR x WD grid -> blocks x dropout grid at the best LR/WD
    -> full training with the best configuration -> evaluate its best.ckpt on test -> the report (each language)

Each step is the entry point run in a child process, in its own folder of `<protocol.dir>/<protocol.name>/`, with
the scale's settings (`SCALES`), the user's overrides, and what the earlier steps chose. `state.json` records each
step's status, folder and choice; `steps.log` one line per step started, skipped, finished or failed. Re-running the
same command skips finished steps, continues an interrupted training from its `last.ckpt`, and runs a failed or
interrupted step again (a grid from where it stopped). The children die with the protocol (PR_SET_PDEATHSIG on
Linux), so a SIGKILL of the protocol leaves no training running on its own.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from ..artifacts.files import write_json
from ..artifacts.records import LRFindRecord, TrainMetrics
from ..artifacts.runs import Run, expand
from ..errors import UserError
from ..progress import duration
from ..sweeps.rows import collect
from .protocol_time import ProtocolClock

log = logging.getLogger(__name__)
MAIN = [sys.executable, "-m", "tinyimagenet_resnet.main"]

# The settings of each scale, step by step (Hydra overrides; the user's own come after them and win).
# smoke: minutes on a 2-core CPU, narrow widths, small subsets, 1-3 epochs: every section gets real numbers.
# cpu: full widths on subsets, a few hours on a CPU with native bf16. full: the course on the full data (a GPU).
QUIET = ["trainer.progress_bar=false"]
SCALES: dict[str, dict[str, list[str]]] = {
    "smoke": {
        "all": ["model.widths=[16,32,64]", "data.val_subset=500", *QUIET],
        "inspect": ["inspect.stats_images=1000"],
        "baselines": [],
        # a sample of 32 (one batch) at these widths needs a higher LR and more epochs than the course's 64 images
        # at 1e-3 (which ended at a loss of 1.1 after 100 epochs) to get near zero: 0.02 over the last 5 epochs,
        # in 85 s (BENCHMARKS.md, "Smoke protocol")
        "overfit": [
            "data.train_subset=32",
            "data.batch_size=32",
            "optim.lr=1e-2",
            "trainer.epochs=150",
            "trainer.val_every_n_epochs=75",
            "data.val_subset=200",
        ],
        # 200 iterations over 1e-4 -> 0.3 at EMA 0.95: a suggestion on the 20k subset and on one real shard at
        # these widths (0.0025 and 0.0036 measured; 150 iterations at 0.9 over 1e-5 -> 1 found none on the 20k
        # subset: BENCHMARKS.md, "Smoke protocol")
        "lr_find": [
            "data.train_subset=12800",  # 200 iterations of 64: one pass, each image once
            "data.batch_size=64",
            "lr_find.num_iters=200",
            "lr_find.min_lr=1e-4",
            "lr_find.max_lr=0.3",
        ],
        "lr_wd": ["data.train_subset=1600", "data.batch_size=64", "trainer.epochs=1"],
        "blocks_dropout": [
            "data.train_subset=1600",
            "data.batch_size=64",
            "trainer.epochs=1",
            "model/blocks=b111,b222",
            "model/dropout=p01,p03",
        ],
        "train": ["data.train_subset=3000", "data.batch_size=64", "trainer.epochs=3"],
        "evaluate": ["data.test_subset=2000"],
    },
    "cpu": {
        "all": QUIET,
        "inspect": [],
        "baselines": [],
        "overfit": [],
        "lr_find": ["data.train_subset=20000", "data.batch_size=64"],
        "lr_wd": ["data.train_subset=5000", "data.val_subset=2000", "trainer.epochs=2"],
        "blocks_dropout": ["data.train_subset=5000", "data.val_subset=2000", "trainer.epochs=3"],
        "train": ["trainer.budget_minutes=60"],
        "evaluate": [],
    },
    "full": {
        "all": QUIET,
        "inspect": [],
        "baselines": [],
        "overfit": [],
        "lr_find": [],
        "lr_wd": [],
        "blocks_dropout": [],
        "train": [],
        "evaluate": [],
    },
}
# LR grid around lr_find's suggestion (factors), and the weight decays beside it, per scale
LR_FACTORS = {"smoke": (0.5, 2.0), "cpu": (1 / 3, 1.0, 3.0), "full": (0.1, 1 / 3, 1.0, 3.0, 10.0)}
WEIGHT_DECAYS = {"smoke": (0.0, 1e-4), "cpu": (0.0, 1e-4), "full": (0.0, 1e-5, 1e-4, 1e-3)}
STEPS = ("inspect", "baselines", "overfit", "lr_find", "lr_wd", "blocks_dropout", "train", "evaluate", "report")
SWEEPS = ("lr_wd", "blocks_dropout")


COST_FREE = ("optim.lr", "optim.weight_decay", "model/dropout", "model.dropout", "seed")  # same cost whatever value


def grid_configs(jobs: list[list[str]], compose) -> list:
    """The config of each job of a grid for its cost: jobs that differ only in COST_FREE keys cost the same, so
    one of them is composed (~0.8 s a job) and stands for the others."""
    from ..config.overrides import override_key

    composed: dict[tuple, object] = {}
    out = []
    for job in jobs:
        key = tuple(o for o in job if override_key(o) not in COST_FREE)
        if key not in composed:
            composed[key] = compose(job)
        out.append(composed[key])
    return out


def sweep_params(name: str) -> dict:
    """The values a grid's YAML sweeps over (`hydra.sweeper.params` of conf/sweep/<name>.yaml)."""
    import yaml

    from ..config.loader import config_dir

    data = yaml.safe_load((Path(config_dir()) / "sweep" / f"{name}.yaml").read_text()) or {}
    return {k: str(v) for k, v in (((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}).items()}


class StepFailed(UserError):
    exit_code = 1


class ProtocolInterrupted(UserError):
    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


def _die_with_parent() -> None:
    """In the child, before exec: receive SIGKILL when the protocol process dies (Linux; elsewhere nothing)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):  # not Linux: the child may outlive a killed protocol
        pass


def sig3(x: float) -> str:
    """A value for an override with 3 significant figures (1e-3 -> 0.001, 0.000316 -> 0.000316)."""
    return f"{float(f'{x:.3g}'):g}"


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

    def folder(self, name: str) -> Path:
        return self.root / name

    # ------------------------------------------------------------------------------------------ running
    def args(self, name: str, handoff: list[str]) -> list[str]:
        scale = SCALES[self.scale]
        return [*scale["all"], *scale[name], *self.user, *handoff]

    def child(self, name: str, args: list[str], allow_failure: bool = False) -> int:
        """Run a step's command in its own process group (its launcher's workers included), recorded in the state
        so that a re-run after a SIGKILL of the protocol can end what is left of it first."""
        import shlex

        cmd = [*MAIN, *args]
        st = self.step(name)
        st.setdefault("commands", []).append("python -m tinyimagenet_resnet.main " + shlex.join(args))
        st["command"] = st["commands"][0]
        proc = subprocess.Popen(
            cmd,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            start_new_session=sys.platform != "win32",
        )
        st["pgid"] = proc.pid if sys.platform != "win32" else None
        self.save()
        stopped: list[str] = []

        def forward(signum, frame):  # ctrl-C / SIGTERM: the step stops cleanly (a training writes its last.ckpt)
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
        st["pgid"] = None
        self.save()
        if stopped and proc.returncode == 0:
            self.stop_after = stopped[0]  # the step had just finished: stop before the next one
        if stopped and proc.returncode != 0:
            raise ProtocolInterrupted(
                f"protocol interrupted by {stopped[0]} during step {name}; run the same command again: finished "
                "steps are skipped and an interrupted training continues from its last.ckpt",
                exit_code=143 if stopped[0] == "SIGTERM" else 130,
            )
        if proc.returncode != 0 and not allow_failure:
            raise StepFailed(
                f"protocol step {name} failed (exit {proc.returncode}); its output is above; fix the cause and run "
                "the same command again: finished steps are skipped"
            )
        return proc.returncode

    def end_leftovers(self, name: str) -> None:
        """A step whose protocol was killed may have left processes of its group running (a launcher's workers,
        or a child where the parent-death signal does not exist): end them before running the step again."""
        pgid = self.step(name).get("pgid")
        if not pgid or sys.platform == "win32":
            return
        try:  # only a group whose leader is still one of ours (a pid can be reused by another program)
            ours = "tinyimagenet_resnet" in Path(f"/proc/{pgid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            ours = False  # gone, or no /proc (macOS): nothing we can safely end
        if not ours:
            self.step(name)["pgid"] = None
            return
        try:
            os.killpg(pgid, signal.SIGKILL)
            log.warning("protocol: ended what was left running of step %s (process group %d)", name, pgid)
            time.sleep(0.5)
        except (ProcessLookupError, PermissionError):
            pass
        self.step(name)["pgid"] = None

    def run_step(self, name: str, fn) -> None:
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
            pending = [s for s in STEPS[k - 1 :] if self.step(s)["status"] != "done" or s == "report"]
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
        from .. import STARTED_AT
        from ..config.loader import compose_config
        from ..sweeps.grid import grid_jobs
        from ..training.runtime import resolve_precision, select_device
        from .protocol_time import estimate, time_step, work_of

        startup = max(2.0, time.time() - STARTED_AT)  # a step's process start: imports, composing (not this one's)

        pending = [s for s in STEPS if self.step(s)["status"] != "done" or s == "report"]
        works = {}
        for name in pending:
            # the LR grid counted as it will run: around a suggestion (its value does not change the cost)
            handoff = self.lr_wd_handoff(self.choice("lr_find").get("lr", 1e-3)) if name == "lr_wd" else []
            args = self.args(name, handoff) if name != "report" else []
            extra = {"inspect": ["task=inspect"], "baselines": ["task=baselines"], "lr_find": ["task=lr_find"],
                     "overfit": ["experiment=overfit_small"], "evaluate": []}.get(name, [])  # fmt: skip
            if name in SWEEPS:
                cfgs = grid_configs(grid_jobs(sweep_params(name), [f"sweep={name}", *args]), compose_config)
            else:
                cfgs = [compose_config([*extra, *args])]
            works[name] = work_of(name, cfgs)
        device = select_device(cfg.trainer.device)
        amp = resolve_precision(cfg.trainer.precision, device)

        def timer(model, batch):
            return time_step(model, batch, device, amp, device.type != "cpu" or min(model[1]) > 8)

        self.clock = estimate(works, startup, timer)
        total = sum(self.clock.estimates.values())
        log.info(
            "Protocol %s: %d steps to run, about %s on this machine (%s)",
            self.root.name,
            len(pending),
            duration(total),
            ", ".join(f"{n} {duration(self.clock.estimates[n])}" for n in pending),
        )

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
    def choice(self, name: str) -> dict:
        return self.state["steps"].get(name, {}).get("choice", {})

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

    def lr_wd_handoff(self, lr: float | None) -> list[str]:
        """The LR x WD grid's values: LRs around lr_find's suggestion (the sweep's own without one)."""
        handoff = []
        if lr is not None:
            handoff.append("optim.lr=" + ",".join(sig3(lr * f) for f in LR_FACTORS[self.scale]))
        return [*handoff, "optim.weight_decay=" + ",".join(f"{w:g}" for w in WEIGHT_DECAYS[self.scale])]

    def lr_wd(self, again: bool) -> dict:
        lr = self.choice("lr_find").get("lr")
        result = self.best_of_grid(
            "lr_wd",
            self.lr_wd_handoff(lr),
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
        from ..reporting.context import RUN_KINDS, ReportOptions
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
    best = rows[0]
    return jobs.get(Path(best.job).name) or next(j for j in jobs.values() if str(j.path).endswith(str(best.job)))


OWN_KEYS = ("sweep", "experiment", "ckpt_path", "resume")  # what the protocol chooses for each step itself


def check_overrides(overrides: list[str]) -> None:
    """Refuse the keys the protocol chooses itself (also called by the entry point's pre-flight, before a
    `sweep=` turns the command into a multirun)."""
    clash = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in OWN_KEYS]
    if clash:
        raise UserError(
            f"{clash[0]}: task=protocol chooses each step's sweep, experiment and checkpoint itself; allowed: "
            "settings of the runs (data.*, model.*, trainer.*, optim.* ...) and hydra/launcher"
        )


def user_overrides() -> tuple[list[str], list[str]]:
    """(the user's overrides for every step, their hydra/launcher overrides for the grids)."""
    hc = HydraConfig.get()
    own = ("task=", "protocol.", "report.", "hydra.")
    user = [o for o in hc.overrides.task if not o.startswith(own) and not o.startswith("~protocol")]
    launcher = [o for o in hc.overrides.hydra if o.startswith(("hydra/launcher=", "hydra.launcher."))]
    launcher += [o for o in hc.overrides.task if o.startswith(("hydra/launcher=", "hydra.launcher."))]
    return user, launcher


def run(cfg) -> dict:
    p = cfg.protocol
    root = Path(str(p.dir)) / str(p.name)
    root = root if root.is_absolute() else Path.cwd() / root
    root.mkdir(parents=True, exist_ok=True)
    user, launcher = user_overrides()
    check_overrides(user)
    state_path = root / "state.json"
    if state_path.is_file():
        try:
            state = json.loads(state_path.read_text())
        except ValueError:
            state = None
        if not (
            isinstance(state, dict)
            and isinstance(state.get("steps"), dict)
            and isinstance(state.get("overrides"), list)
        ):
            raise UserError(
                f"{state_path}: not a protocol state this version can read; move the folder away or choose "
                "another protocol.name"
            ) from None
        if state.get("scale") != str(p.scale) or state.get("overrides") != user:
            raise UserError(
                f"protocol {root} was started with protocol.scale={state.get('scale')} and overrides "
                f"{state.get('overrides')}; run it with those to resume, or choose another protocol.name"
            )
    else:
        state = {"name": str(p.name), "scale": str(p.scale), "overrides": user, "steps": {}}
    proto = Protocol(root, str(p.scale), user, launcher, [str(x) for x in p.lang], state)
    proto.save()
    log.info("Protocol %s (scale %s): state in %s", p.name, p.scale, state_path)
    t0 = time.perf_counter()
    proto.estimate(cfg)

    def single(name, task_args):
        return lambda again: {"dir": str(proto.single(name, [*task_args, *proto.args(name, [])], again))}

    plan = {
        "inspect": single("inspect", ["task=inspect"]),
        "baselines": single("baselines", ["task=baselines"]),
        "overfit": single("overfit", ["experiment=overfit_small"]),
        "lr_find": proto.lr_find,
        "lr_wd": proto.lr_wd,
        "blocks_dropout": proto.blocks_dropout,
        "train": proto.train,
        "evaluate": proto.evaluate,
        "report": lambda again: proto.report(again, cfg),
    }
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
