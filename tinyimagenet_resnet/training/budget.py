"""A time budget for one run (`trainer.budget_minutes`): measure this machine's train-step and validation times on
the run's own model and data, then fix the number of optimiser steps that fit, so that the LR schedule ends at zero
on the last step and the whole command (start-up, data loading, cache build, compile, validations) ends in time.

The plan is made here before the first real step from a short calibration, then revised while the run goes on
(training/replan.py): every 5% of the steps and every 2% of the budget (whichever comes first), the step count is solved
again from the seconds each train size really took and the time left, so that a calibration that was off (the first
steps at a new size are slow, a neighbour loads the machine) neither wastes the end of the budget nor overruns it. The
LR schedule follows the new count at once (its closed form), and the train size never returns to an earlier phase. The
plan, with its revisions, is stored in every checkpoint: a resumed run continues it (no new calibration) and revises it
from its own measurements. A resumed run's budget counts the first command's start-up and the training time of every
command, not the time the run spent stopped nor the start-up of the command that continues it."""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import torch

from ..errors import ConfigError
from .batch import resize, to_device
from .engine import Trainer
from .resizing import fit_steps
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

    def __init__(self, trainer: Trainer):
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


def time_sizes(
    trainer: Trainer, x: torch.Tensor, y: torch.Tensor, sizes, warmup: int = 3, repeat: int = 3
) -> dict[int, float]:
    """Seconds of one train step of batch (x, y) at each of `sizes` (warm-up steps first, then the median)."""
    s, out = trainer.s, {}

    def step(size: int) -> None:
        trainer.step(resize(x, size, s.channels_last), y)  # the resize is part of a step's time

    for size in sizes:
        for _ in range(warmup):
            step(size)
        out[size] = _median_seconds(lambda size=size: step(size), repeat, s.device, trainer.clock)
    return out


def calibrate(trainer: Trainer, warmup: int = 3, repeat: int = 3, eval_batches: int = 2) -> tuple[dict, dict]:
    """(seconds per train step at each train size, seconds per validation pass), measured with the trainer's own
    model, optimizer, loss and data. Model, optimizer, scaler, weight average and RNG states are put back, so the
    run then starts exactly as it would have without the measurement.

    The first steps at a new size are slow (oneDNN/cuDNN set up their kernels, fresh memory is faulted in): on the
    2-core CPU of BENCHMARKS.md the first 64 px step took 1.2x the steady one and the third was steady, and one
    warm-up step left the plan 1.6 of 15 minutes short. Hence three warm-up steps, then the median of three. A step
    includes taking its batch from the train loader and resizing it (at 16 px, a fifth of the step on that CPU)."""
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


def remeasure(trainer: Trainer, x: torch.Tensor, y: torch.Tensor, current: int, ahead: list[int]) -> dict[int, float]:
    """Steps at the run's `current` size and at the sizes still `ahead`, timed again now on batch (x, y), states
    put back (a couple of warm-up steps each: the kernels are set up by now)."""
    with _Restored(trainer):
        return time_sizes(trainer, x, y, [current, *ahead], warmup=2, repeat=3)


def step_seconds_json(step_s: dict) -> dict:
    """Seconds per step by train size as a plan stores them: the estimate a re-plan starts from, so to the
    microsecond (a GPU step can take under a millisecond)."""
    return {str(size): round(t, 6) for size, t in step_s.items()}


def make_plan(trainer: Trainer, budget_minutes: float, evals: int) -> BudgetPlan:
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


def describe(plan: BudgetPlan, batch_size: int, train_images: int) -> str:
    passes = plan.total_steps * batch_size / train_images
    return (
        f"Budget plan: {plan.total_steps} steps of {batch_size} images ({passes:.2f} passes over {train_images} train "
        f"images) in {plan.epochs} epochs of {plan.steps_per_epoch} steps; planned after {plan.planned_at_s:.0f} s "
        f"(step s by train size {plan.step_s}, validation s {plan.eval_s}); expected end "
        f"{plan.expected_end:%H:%M:%S} ({plan.expected_end_s / 60:.1f} of {plan.budget_s / 60:g} min)"
    )
