"""A time-budgeted run's plan, revised while the run goes on: the `Replanner` solves the step count again from the
seconds each train size and each validation really took, and `BudgetReplan` drives it from the trainer's step and
validation hooks. `apply_plan` puts a plan (training/budget.py) on a trainer."""

from __future__ import annotations

import logging
import time

from .budget import EPOCH_END_S, BudgetPlan, remeasure, step_seconds_json
from .callbacks import Callback
from .engine import Trainer
from .resizing import fit_steps

log = logging.getLogger(
    "tinyimagenet_resnet.training.budget"
)  # the budget's lines, planned or re-planned, under one name


def apply_plan(trainer: Trainer, plan: BudgetPlan) -> None:
    """Run the steps of a time budget's plan in its epochs, revising it as the run goes (first among the callbacks:
    the others see the revised length)."""
    trainer.s = trainer.s.replace(
        total_steps=plan.total_steps, epochs=plan.epochs, steps_per_epoch=plan.steps_per_epoch
    )
    trainer.train_loader.set_steps_per_epoch(plan.steps_per_epoch)
    trainer.state.plan = plan.to_json()

    def retime(current: int, ahead: list[int]) -> dict[int, float]:
        """Seconds per step at these train sizes, timed now on the batch in hand."""
        x, y = trainer.batch
        return remeasure(trainer, x, y, current, ahead)

    trainer.replanner = Replanner(
        plan, trainer.s.train_sizes, trainer.s.train_size_fractions, retime=retime, clock=trainer.clock
    )
    trainer.callbacks.insert(0, BudgetReplan(trainer.replanner))


class BudgetReplan(Callback):
    """Times every train step and validation for the Replanner, and re-plans when it is due: the trainer's length,
    its schedule and the state's plan follow."""

    def __init__(self, planner: Replanner):
        self.planner = planner
        self.epoch, self.mark = 0, 0.0

    def on_epoch_start(self, trainer, epoch):
        self.epoch, self.mark = epoch, trainer.clock()

    def on_step(self, trainer, step):
        now = trainer.clock()
        self.planner.add_step(trainer.s.train_sizes[trainer.state.size_index], now - self.mark)
        self.mark = now
        if self.planner.due(step):
            elapsed = self.elapsed_budget_s(trainer)
            trainer.set_total_steps(self.planner.replan(step, self.epoch, elapsed, trainer.state.size_index))
            trainer.state.plan = self.planner.plan.to_json()
            self.mark = trainer.clock()  # a re-plan (and a re-timing) is not a train step's time

    def elapsed_budget_s(self, trainer: Trainer) -> float:
        """Seconds of the budget spent: the run's start-up and calibration, then its training time (across resumes;
        the time a run spent stopped does not count)."""
        return self.planner.plan.planned_at_s + trainer.clock() - trainer.fit_t0

    def on_validation(self, trainer, final, seconds):
        self.planner.add_validation(final, seconds)


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
