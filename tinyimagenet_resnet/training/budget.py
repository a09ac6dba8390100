"""A time budget for one run (`trainer.budget_minutes`): measure this machine's train-step and validation times on
the run's own model and data, then fix the number of optimiser steps that fit, so that the LR schedule ends at zero
on the last step and the whole command (start-up, data loading, cache build, compile, validations) ends in time.

The plan is made once, before the first real step, and stored in every checkpoint: a resumed run keeps it."""

from __future__ import annotations

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
    step_s: dict = field(default_factory=dict)  # train resolution -> seconds per optimiser step
    eval_s: dict = field(default_factory=dict)  # "interim" / "final" -> seconds per validation pass
    reserve_s: float = 0.0

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


def _median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def calibrate(trainer, warmup: int = 1, repeat: int = 2) -> tuple[dict, dict]:
    """(seconds per train step at each train size, seconds per validation pass), measured with the trainer's own
    model, optimizer, loss and data. Model, optimizer, scaler, weight average and RNG states are put back, so the
    run then starts exactly as it would have without the measurement."""
    snapshot = [copy.deepcopy(o.state_dict()) for o in (trainer.model, trainer.optimizer, trainer.scaler)]
    ema = copy.deepcopy(trainer.ema.state_dict()) if trainer.ema is not None else None
    rng = get_rng_state()
    step_s, eval_s = {}, {}
    try:
        x, y = trainer.first_batch()
        for size in sorted(set(trainer.s.train_sizes)):
            xs = trainer.resize(x, size)
            for _ in range(warmup):
                trainer.step(xs, y)
            step_s[size] = _median_seconds(lambda xs=xs: trainer.step(xs, y), repeat)
        loaders = {"final": trainer.val_loader}
        if trainer.interim_val_loader is not None:
            loaders["interim"] = trainer.interim_val_loader
        for name, loader in loaders.items():
            trainer.validate(final=name == "final", max_batches=1)  # warm-up: the first batch sets kernels up
            t0 = time.perf_counter()
            trainer.validate(final=name == "final", max_batches=1)
            eval_s[name] = (time.perf_counter() - t0) * len(loader)
    finally:
        for obj, state in zip((trainer.model, trainer.optimizer, trainer.scaler), snapshot, strict=True):
            obj.load_state_dict(state)
        if ema is not None:
            trainer.ema.load_state_dict(ema)
        set_rng_state(rng)
    return step_s, eval_s


def make_plan(trainer, budget_minutes: float, evals: int) -> BudgetPlan:
    """The number of optimiser steps that fits in what is left of the budget, after calibration."""
    s = trainer.s
    step_s, eval_s = calibrate(trainer)
    budget_s = 60.0 * budget_minutes
    now_s = time.time() - s.started_at
    reserve = RESERVE * budget_s
    validations = eval_s["final"] + (evals - 1) * eval_s.get("interim", eval_s["final"])
    fixed = validations + evals * EPOCH_END_S
    per_step = sum(f * step_s[size] for size, f in zip(s.train_sizes, s.train_size_fractions, strict=True))
    steps = math.floor((budget_s - now_s - reserve - fixed) / per_step)
    if steps < evals:
        need = (now_s + reserve + fixed + evals * per_step) / 60
        raise ConfigError(
            f"trainer.budget_minutes={budget_minutes:g}: too short on this machine (start-up and calibration "
            f"took {now_s:.0f} s, a train step {per_step:.2f} s, the validations {validations:.0f} s); "
            f"allowed: at least {math.ceil(need)} minutes, fewer trainer.budget_evals or a smaller val split"
        )
    per_epoch = math.ceil(steps / evals)
    plan = BudgetPlan(
        budget_s=budget_s,
        started_at=s.started_at,
        planned_at_s=round(now_s, 2),
        total_steps=steps,
        steps_per_epoch=per_epoch,
        epochs=math.ceil(steps / per_epoch),
        step_s={str(k): round(v, 4) for k, v in step_s.items()},
        eval_s={k: round(v, 2) for k, v in eval_s.items()},
        reserve_s=round(reserve, 1),
    )
    return plan


def describe(plan: BudgetPlan, batch_size: int, train_images: int) -> str:
    passes = plan.total_steps * batch_size / train_images
    return (
        f"Budget plan: {plan.total_steps} steps of {batch_size} images ({passes:.2f} passes over {train_images} train "
        f"images) in {plan.epochs} epochs of {plan.steps_per_epoch} steps; planned after {plan.planned_at_s:.0f} s "
        f"(step s by train size {plan.step_s}, validation s {plan.eval_s}); expected end "
        f"{plan.expected_end:%H:%M:%S} ({plan.expected_end_s / 60:.1f} of {plan.budget_s / 60:g} min)"
    )
