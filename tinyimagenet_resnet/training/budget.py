"""A time budget for one run (`trainer.budget_minutes`): measure this machine's train-step and validation times on
the run's own model and data, then fix the number of optimiser steps that fit, so that the LR schedule ends at zero
on the last step and the whole command (start-up, data loading, cache build, compile, validations) ends in time.

The plan is made before the first real step from a short calibration, then revised while the run goes on: every 5% of
the steps and every 2% of the budget (whichever comes first), the step count is solved again from the seconds each train
size really took and the time left, so that a calibration that was off (the first steps at a new size are slow, a
neighbour loads the machine) neither wastes the end of the budget nor overruns it. The LR schedule follows the new count
at once (its closed form), and the train size never returns to an earlier phase. The plan, with its revisions, is stored
in every checkpoint: a resumed run continues it (no new calibration) and revises it from its own measurements. A resumed
run's budget counts the first command's start-up and the training time of every command, not the time the run spent
stopped nor the start-up of the command that continues it."""

from __future__ import annotations

import bisect
import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from ..errors import ConfigError
from .runtime import get_rng_state, set_rng_state

log = logging.getLogger(__name__)

EPOCH_END_S = 1.0  # checkpoints and metrics.json after an epoch (0.1-0.5 s measured on the CPU)
RESERVE = 0.02  # share of the budget kept back for what varies (a noisy neighbour on the machine)


@dataclass
class BudgetPlan:
    budget_s: float
    started_at: float  # epoch seconds: when the command (or the sweep job) started
    planned_at_s: float  # seconds from the start when the plan was made (start-up, data, calibration)
    total_steps: int
    steps_per_epoch: int
    epochs: int
    step_s: dict = field(default_factory=dict)  # train resolution -> seconds per optimiser step (latest estimate)
    eval_s: dict = field(default_factory=dict)  # "interim" / "final" -> seconds per validation pass
    reserve_s: float = 0.0
    calibrated_step_s: dict = field(default_factory=dict)  # step_s as calibrated before the first step...
    initial_steps: int | None = None  # ...and total_steps as first planned from it
    revisions: list = field(default_factory=list)  # [global step, new total_steps] each time a re-plan moved it

    @property
    def expected_end_s(self) -> float:
        return self.budget_s - self.reserve_s

    @property
    def expected_end(self) -> datetime:
        return datetime.fromtimestamp(self.started_at) + timedelta(seconds=self.expected_end_s)

    def to_json(self) -> dict:
        return {**asdict(self), "expected_end": self.expected_end.isoformat(timespec="seconds")}

    @classmethod
    def from_json(cls, data: dict) -> BudgetPlan:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def _median_seconds(fn, repeat: int, device=None, clock=time.perf_counter) -> float:
    import torch

    def sync():
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    for _ in range(repeat):
        sync()
        t0 = clock()
        fn()
        sync()
        times.append(clock() - t0)
    return sorted(times)[len(times) // 2]


class _Restored:
    """Model, optimizer, scaler, weight average and RNG states put back on exit: a measurement leaves the run as
    it found it."""

    def __init__(self, trainer):
        self.trainer = trainer

    def __enter__(self):
        t = self.trainer
        self.snapshot = [copy.deepcopy(o.state_dict()) for o in (t.model, t.optimizer, t.scaler)]
        self.ema = copy.deepcopy(t.ema.state_dict()) if t.ema is not None else None
        self.rng = get_rng_state()
        self.skipped = t._skipped  # fp16: the steps a measurement skips are not the run's
        return self

    def __exit__(self, *exc):
        t = self.trainer
        for obj, state in zip((t.model, t.optimizer, t.scaler), self.snapshot, strict=True):
            obj.load_state_dict(state)
        if self.ema is not None:
            t.ema.load_state_dict(self.ema)
        set_rng_state(self.rng)
        t._skipped = self.skipped
        return False


def time_sizes(trainer, x, y, sizes, warmup: int = 3, repeat: int = 3) -> dict[int, float]:
    """Seconds of one train step of batch (x, y) at each of `sizes` (warm-up steps first, then the median)."""
    s, out = trainer.s, {}
    for size in sizes:
        for _ in range(warmup):
            trainer.step(trainer.resize(x, size), y)
        out[size] = _median_seconds(lambda size=size: trainer.step(trainer.resize(x, size), y), repeat, s.device,
                                    trainer.clock)  # fmt: skip
    return out


def calibrate(trainer, warmup: int = 3, repeat: int = 3, eval_batches: int = 2) -> tuple[dict, dict]:
    """(seconds per train step at each train size, seconds per validation pass), measured with the trainer's own
    model, optimizer, loss and data. Model, optimizer, scaler, weight average and RNG states are put back, so the
    run then starts exactly as it would have without the measurement.

    The first steps at a new size are slow (oneDNN/cuDNN set up their kernels, fresh memory is faulted in): on the
    2-core CPU of BENCHMARKS.md the first 64 px step took 1.2x the steady one and the third was steady, and one
    warm-up step left the plan 1.6 of 15 minutes short. Hence three warm-up steps, then the median of three. A step
    includes taking its batch from the train loader and resizing it (at 16 px, a fifth of the step on that CPU)."""
    from .engine import to_device

    eval_s = {}
    with _Restored(trainer):
        s = trainer.s
        stream = iter(trainer.train_loader.epoch(0))

        def fetch():
            return to_device(next(stream), s.device, s.channels_last)

        x, y = fetch()
        fetch_s = _median_seconds(fetch, repeat, s.device, trainer.clock)
        timed = time_sizes(trainer, x, y, sorted(set(s.train_sizes)), warmup, repeat)
        step_s = {size: fetch_s + t for size, t in timed.items()}
        loaders = {"final": trainer.val_loader}
        if trainer.interim_val_loader is not None:
            loaders["interim"] = trainer.interim_val_loader
        for name, loader in loaders.items():
            trainer.validate(final=name == "final", max_batches=1)  # warm-up: the first batch sets kernels up
            batches = min(eval_batches, len(loader))
            t0 = trainer.clock()
            trainer.validate(final=name == "final", max_batches=batches)
            eval_s[name] = (trainer.clock() - t0) / batches * len(loader)
    return step_s, eval_s


def remeasure(trainer, x, y, current: int, ahead: list[int]) -> dict[int, float]:
    """Steps at the run's `current` size and at the sizes still `ahead`, timed again now on batch (x, y), states
    put back (a couple of warm-up steps each: the kernels are set up by now)."""
    with _Restored(trainer):
        return time_sizes(trainer, x, y, [current, *ahead], warmup=2, repeat=3)


def step_seconds_json(step_s: dict) -> dict:
    """Seconds per step by train size as a plan stores them: the estimate a re-plan starts from, so to the
    microsecond (a GPU step can take under a millisecond)."""
    return {str(size): round(t, 6) for size, t in step_s.items()}


def size_bounds(total_steps: int, fractions) -> list[int]:
    """The global steps where progressive resizing moves to the next train size (trainer.train_size_fractions)."""
    bounds, cumulative = [], 0.0
    for f in list(fractions)[:-1]:
        cumulative += f
        bounds.append(round(cumulative * total_steps))
    return bounds


def size_index(step: int, total_steps: int, fractions, reached: int = 0) -> int:
    """The index of the train size of global step `step`; never below `reached` (the latest phase reached)."""
    return max(bisect.bisect_right(size_bounds(total_steps, fractions), step), reached)


def steps_by_size(start: int, total_steps: int, fractions, reached: int = 0) -> list[int]:
    """How many of the steps start..total_steps-1 run at each train size."""
    bounds = [0, *size_bounds(total_steps, fractions), total_steps]
    counts = [0] * len(list(fractions))
    for i in range(len(counts)):
        lo, hi = max(bounds[i], start), min(bounds[i + 1], total_steps)
        counts[max(i, reached)] += max(0, hi - lo)
    return counts


def fit_steps(start: int, seconds: float, step_s: list[float], fractions, reached: int = 0) -> int:
    """The largest total_steps whose remaining steps (from `start`, each at its size's seconds) fit in `seconds`;
    `start` when not even one does. The cost grows with every added step, so a bisection finds it."""

    def cost(total: int) -> float:
        return sum(n * t for n, t in zip(steps_by_size(start, total, fractions, reached), step_s, strict=True))

    lo, hi = start, start + int(max(seconds, 0.0) / min(step_s)) + 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(mid) <= seconds:
            lo = mid
        else:
            hi = mid - 1
    return lo


def make_plan(trainer, budget_minutes: float, evals: int) -> BudgetPlan:
    """The number of optimiser steps that fits in what is left of the budget, after calibration."""
    s = trainer.s
    step_s, eval_s = calibrate(trainer)
    budget_s = 60.0 * budget_minutes
    now_s = time.time() - s.started_at
    reserve = RESERVE * budget_s
    validations = eval_s["final"] + (evals - 1) * eval_s.get("interim", eval_s["final"])
    fixed = validations + evals * EPOCH_END_S
    seconds = [step_s[size] for size in s.train_sizes]
    steps = fit_steps(0, budget_s - now_s - reserve - fixed, seconds, s.train_size_fractions)
    if steps < evals:
        per_step = sum(f * t for f, t in zip(s.train_size_fractions, seconds, strict=True))
        need = (now_s + reserve + fixed + evals * per_step) / 60
        raise ConfigError(
            f"trainer.budget_minutes={budget_minutes:g}: too short on this machine (start-up and calibration "
            f"took {now_s:.0f} s, a train step {per_step:.2f} s, the validations {validations:.0f} s); "
            f"allowed: at least {math.ceil(need)} minutes, fewer trainer.budget_evals or a smaller val split"
        )
    note = final_validation_note(eval_s["final"], budget_s, getattr(trainer.val_loader, "num_samples", None))
    if note:
        log.warning("%s", note)
    per_epoch = math.ceil(steps / evals)
    step_json = step_seconds_json(step_s)
    return BudgetPlan(
        budget_s=budget_s,
        started_at=s.started_at,
        planned_at_s=round(now_s, 2),
        total_steps=steps,
        steps_per_epoch=per_epoch,
        epochs=math.ceil(steps / per_epoch),
        step_s=step_json,
        eval_s={k: round(v, 2) for k, v in eval_s.items()},
        reserve_s=round(reserve, 1),
        calibrated_step_s=dict(step_json),
        initial_steps=steps,
    )


def final_validation_note(final_s: float, budget_s: float, images: int | None) -> str | None:
    """One line when the final validation takes more than a third of the budget (a short budget on a CPU spends
    it validating, not training), with its measured cost and the two ways out; None otherwise."""
    if final_s <= budget_s / 3:
        return None
    on = f" on {images:,} val images" if images else ""
    return (
        f"trainer.budget_minutes={budget_s / 60:g}: the final validation{on} is planned to take {final_s:.0f} s, "
        f"{final_s / budget_s:.0%} of the budget, leaving the rest for training; for more training, validate on a "
        f"stratified subset (data.val_subset=2000) or give a longer budget"
    )


class Replanner:
    """Revises a plan while its run goes on, from the seconds each train size and each validation really took."""

    SKIP = 3  # the first steps at each size are slow (kernels set up): not measured, as in the calibration
    MIN_STEPS = 3  # measured steps at a size before they replace its estimate
    EVERY_BUDGET = 0.02  # also re-plan after this share of the budget: one expensive size can take most of the time

    DRIFT = 0.25  # steps this much slower or faster than timed: the machine's load changed, time the sizes ahead

    def __init__(self, plan: BudgetPlan, sizes, fractions, retime=None, clock=time.perf_counter):
        """`retime(current, ahead)`: seconds per step at those sizes, timed now (None: never re-timed); `clock`:
        the run's time source (the re-timing's own seconds count against the budget)."""
        self.plan, self.sizes, self.fractions = plan, list(sizes), list(fractions)
        self.retime, self.clock = retime, clock
        self.basis = {int(k): v for k, v in (plan.calibrated_step_s or plan.step_s).items()}  # as last timed
        self.retimed: set[int] = set()  # the phases that re-timed the sizes ahead (once each)
        self.every = max(1, plan.total_steps // 20)
        self.measured = {size: [0.0, 0] for size in self.sizes}  # size -> [seconds, steps]
        self.seen = dict.fromkeys(self.sizes, 0)  # steps run at each size, measured or not
        self.val_ratio: float | None = None  # measured / planned seconds of the interim validations
        self.since = 0.0  # train seconds since the last re-plan

    def add_step(self, size: int, seconds: float) -> None:
        self.seen[size] += 1
        self.since += seconds
        if self.seen[size] <= self.SKIP:
            return
        m = self.measured[size]
        m[0] += seconds
        m[1] += 1

    def add_validation(self, final: bool, seconds: float) -> None:
        if not final and self.plan.eval_s.get("interim"):
            self.val_ratio = seconds / self.plan.eval_s["interim"]

    def due(self, step: int) -> bool:
        by_time = self.since >= self.EVERY_BUDGET * self.plan.budget_s
        return (step % self.every == 0 or by_time) and step < self.plan.total_steps - 1

    def step_seconds(self) -> list[float]:
        """Seconds per step at each size: measured where enough steps ran, else the last estimate scaled by how
        the measured sizes compare with theirs."""
        estimate = {int(k): v for k, v in self.plan.step_s.items()}
        done = [(size, t, n) for size, (t, n) in self.measured.items() if n >= self.MIN_STEPS]
        expected = sum(estimate[size] * n for size, _, n in done)
        ratio = sum(t for _, t, _ in done) / expected if expected else 1.0
        return [
            self.measured[s][0] / self.measured[s][1] if self.measured[s][1] >= self.MIN_STEPS else estimate[s] * ratio
            for s in self.sizes
        ]

    def replan(self, step: int, epoch: int, elapsed_s: float, reached: int) -> int:
        """The new total_steps for a run at global step `step` (in epoch `epoch`), `elapsed_s` seconds into its
        budget; the plan is updated in place."""
        plan, self.since = self.plan, 0.0
        elapsed_s += self.follow_the_load(reached)  # the re-timing's own steps took some of the budget
        seconds = self.step_seconds()
        interim_left = max(0, plan.epochs - 1 - epoch)
        val = self.val_ratio or 1.0
        fixed = val * (plan.eval_s["final"] + interim_left * plan.eval_s.get("interim", plan.eval_s["final"]))
        fixed += (plan.epochs - epoch) * EPOCH_END_S
        left = plan.budget_s - plan.reserve_s - elapsed_s - fixed
        total = fit_steps(step, left, seconds, self.fractions, reached)
        # An end inside an earlier epoch is fine: that epoch ends there and its validation is the final one.
        total = max(total, step + 1)
        plan.step_s = step_seconds_json(dict(zip(self.sizes, seconds, strict=True)))
        if total != plan.total_steps:
            if abs(total - plan.total_steps) >= 0.01 * plan.total_steps:
                log.info(
                    "Budget re-plan at step %d: %d steps instead of %d (step s by train size %s, %.0f s left)",
                    step,
                    total,
                    plan.total_steps,
                    plan.step_s,
                    left,
                )
            plan.revisions.append([step, total])
            plan.total_steps = total
        return total

    def follow_the_load(self, reached: int) -> float:
        """When the steps at the current size take more than DRIFT off what they were timed at (a calibration
        taken while the machine was busy, or a neighbour that started since), time the sizes still ahead again
        (once per phase): a phase boundary still ahead then follows the machine as it is, instead of an estimate
        scaled from another size. The current size's measured time less its re-timed step is the loop's own
        overhead (taking the batch), added to the sizes ahead."""
        current = self.sizes[reached]
        ahead = [s for s in dict.fromkeys(self.sizes[reached + 1 :]) if s != current]
        t, n = self.measured[current]
        if self.retime is None or not ahead or reached in self.retimed or n < self.MIN_STEPS:
            return 0.0
        now, before = t / n, self.basis[current]
        if before <= 0 or abs(now / before - 1) <= self.DRIFT:
            return 0.0
        self.retimed.add(reached)
        t0 = self.clock()
        timed = self.retime(current, ahead)
        spent = self.clock() - t0
        overhead = max(0.0, now - timed[current])
        estimate = {int(k): v for k, v in self.plan.step_s.items()}
        for size in ahead:
            estimate[size] = self.basis[size] = timed[size] + overhead
        estimate[current] = self.basis[current] = now
        log.info(
            "Budget: steps at %d px take %.3g s, not the %.3g s timed before (the machine's load changed): "
            "the sizes ahead timed again (%s)",
            current,
            now,
            before,
            ", ".join(f"{s} px {estimate[s]:.3g} s" for s in ahead),
        )
        self.plan.step_s = step_seconds_json(estimate)
        return spent


def describe(plan: BudgetPlan, batch_size: int, train_images: int) -> str:
    passes = plan.total_steps * batch_size / train_images
    return (
        f"Budget plan: {plan.total_steps} steps of {batch_size} images ({passes:.2f} passes over {train_images} train "
        f"images) in {plan.epochs} epochs of {plan.steps_per_epoch} steps; planned after {plan.planned_at_s:.0f} s "
        f"(step s by train size {plan.step_s}, validation s {plan.eval_s}); expected end "
        f"{plan.expected_end:%H:%M:%S} ({plan.expected_end_s / 60:.1f} of {plan.budget_s / 60:g} min)"
    )
