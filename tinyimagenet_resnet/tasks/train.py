"""`task=train`: fit the model, keep best/last checkpoints, TensorBoard scalars and HParams, metrics.json."""

from __future__ import annotations

import logging
import time

from omegaconf import DictConfig

from ..config.hparams import hparams_of, run_hparams
from ..config.overrides import RUNTIME_KEYS
from ..errors import ConfigError
from ..model import count_parameters
from ..progress import use_progress_bar
from ..sweeps.pruning import pruning_callback
from ..training.budget import BudgetPlan, describe, make_plan
from ..training.callbacks import Checkpointing, MetricsFile, RunProgress, TensorBoardLogging
from ..training.engine import Trainer
from ..training.memory import OutOfMemory, is_oom, largest_fitting, memory_text, out_of_memory, scaled_lr, train_trial
from ..training.optim import build_optimizer, build_scheduler
from ..training.replan import apply_plan
from ..training.runtime import precision_name
from ..training.settings import TrainSettings
from .common import (
    config_from_checkpoint,
    hydra_overrides,
    hydra_run_dir,
    load_for_model,
    make_model,
    open_tb,
    resolved,
    run_context,
    setup_data,
)

log = logging.getLogger(__name__)


# What a command that continues a run may change besides where and how it runs: its length (an extension).
RESUME_KEYS = (*RUNTIME_KEYS, "trainer.epochs")


def resume_checkpoint(cfg: DictConfig, run_dir):
    """The checkpoint to continue from: `ckpt_path`, or `<run_dir>/checkpoints/last.ckpt` with `resume`.
    `resume=true` with no interrupted run to continue (none matches, or it died before its first checkpoint)
    starts a new run."""
    if cfg.ckpt_path:
        return cfg.ckpt_path
    if cfg.resume not in (None, False):
        path = run_dir / "checkpoints" / "last.ckpt"
        if path.is_file():
            return str(path)
        if cfg.resume is True:
            log.info("resume=true: no interrupted run with these overrides has a checkpoint; starting a new run")
            return None
        raise ConfigError(
            f"resume={cfg.resume!r}: no checkpoint to continue there (no {path}); allowed: true (the latest "
            "matching run under outputs/, else a new run), a run directory with checkpoints/last.ckpt, or "
            "ckpt_path=<run>/checkpoints/last.ckpt"
        )
    return None


def run(cfg: DictConfig) -> float:
    ckpt_file = resume_checkpoint(cfg, hydra_run_dir())
    ckpt = None
    if ckpt_file:
        ckpt, saved = load_for_model(ckpt_file)
        cfg = config_from_checkpoint(cfg, saved, hydra_overrides(), RESUME_KEYS, "continuing a run")
    ctx = run_context(cfg)
    dm = setup_data(cfg, ctx.run_dir)
    t = cfg.trainer
    model = make_model(cfg, dm.num_classes, ctx.device, ctx.channels_last)
    if cfg.data.batch_size == "auto":
        auto_batch_size(cfg, model, ctx, dm.num_classes)
    optimizer = build_optimizer(cfg.optim, model.parameters())
    split = dm.summary()
    callbacks = run_callbacks(cfg, ctx, model, dm.num_classes, split.fingerprint, ckpt)
    settings = TrainSettings.from_config(
        cfg,
        ctx.device,
        ctx.amp_dtype,
        ctx.channels_last,
        dm.num_classes,
        use_progress_bar(t.progress_bar),
        ctx.started_at,
        ctx.compile,
    )
    interim = dm.eval_loader("val", ctx.device, subset=t.interim_val_images) if t.interim_val_images else None
    trainer = build_trainer(
        cfg,
        ckpt,
        settings=settings,
        model=model,
        optimizer=optimizer,
        train_loader=dm.train_loader(ctx.device),
        val_loader=dm.eval_loader("val", ctx.device),
        callbacks=callbacks,
        checkpoint_meta={"config": resolved(cfg), "split": split.to_json()},
        interim_val_loader=interim,
    )
    try:
        state = trainer.fit()
    except Exception as exc:  # noqa: BLE001 - only an allocation failure is handled here
        if not is_oom(exc):
            raise
        del trainer, optimizer
        raise run_out_of_memory(exc, cfg, model, ctx, dm.num_classes) from None
    log.info(
        "Best val top-1 %.4f at epoch %s; checkpoints in %s",
        state.best.val_accuracy or 0.0,
        state.best.epoch,
        ctx.run_dir / "checkpoints",
    )
    if state.plan:
        log_budget_outcome(state.plan, ctx.started_at, state.global_step)
    return objective_values(cfg, state, count_parameters(model))


def build_trainer(cfg: DictConfig, ckpt: dict | None, **parts) -> Trainer:
    """The run's Trainer (`parts`: its keyword arguments but the scheduler), set up in the one order that works: a
    time budget is planned first (its calibration times the trainer's own steps), then the LR schedule spans the
    planned steps, then a checkpoint's state is restored (the schedule jumps to its step)."""
    trainer = Trainer(**parts)
    if cfg.trainer.budget_minutes:
        plan_budget(trainer, cfg.trainer, ckpt)
    trainer.scheduler = build_scheduler(cfg.scheduler, trainer.optimizer, trainer.total_steps)
    if ckpt is not None:
        trainer.restore(ckpt)
    return trainer


def run_callbacks(cfg: DictConfig, ctx, model, num_classes: int, split_fingerprint, ckpt: dict | None) -> list:
    """What surrounds the run's loop, in call order: TensorBoard (and the other trackers), checkpoints,
    metrics.json, Optuna pruning in a sweep, then the progress bar or lines."""
    t = cfg.trainer
    tb = open_tb(ctx, purge_step=ckpt["state"]["global_step"] if ckpt else None)
    callbacks = [
        TensorBoardLogging(
            tb, run_hparams(cfg, ctx.overrides), in_sweep=ctx.multirun, started_at=ctx.started_at, run_dir=ctx.run_dir
        ),
        Checkpointing(ctx.run_dir / "checkpoints"),
        MetricsFile(
            ctx.run_dir,
            num_classes,
            run_name=ctx.name,
            params=count_parameters(model),
            split=split_fingerprint,
            hparams=hparams_of(cfg),
            precision=precision_name(ctx.amp_dtype),
            device=str(ctx.device),
        ),
    ]
    callbacks += [cb for cb in (pruning_callback(cfg),) if cb is not None]
    bar = use_progress_bar(t.progress_bar)
    callbacks.append(RunProgress(bar, float(t.progress_every_s), str(ctx.device), precision_name(ctx.amp_dtype)))
    return callbacks


def run_out_of_memory(exc: BaseException, cfg: DictConfig, model, ctx, num_classes: int) -> OutOfMemory:
    """The one-line error of a run that ran out of memory, with a batch size that fits (training/memory.py)."""
    batch = int(cfg.data.batch_size)
    return out_of_memory(exc, *trial_parts(cfg, model, ctx), num_classes, batch, int(cfg.data.eval_batch_size or batch))


def trial_parts(cfg: DictConfig, model, ctx) -> tuple:
    """What a trial of steps at another batch size takes (training/memory.py): the model, a builder of the run's
    optimizer, the device, precision and memory format."""
    return model, lambda params: build_optimizer(cfg.optim, params), ctx.device, ctx.amp_dtype, ctx.channels_last


def log_budget_outcome(plan: dict, started_at: float, steps: int) -> None:
    """How a budgeted run used its time, against its plan and re-plans."""
    log.info(
        "Budget %.1f min: the run took %.1f min for %d steps (planned %d at the start, %d after %d re-plans; "
        "end expected at %.1f min)",
        plan["budget_s"] / 60,
        (time.time() - started_at) / 60,
        steps,
        plan.get("initial_steps") or plan["total_steps"],
        plan["total_steps"],
        len(plan.get("revisions") or []),
        plan["budget_s"] / 60 - plan["reserve_s"] / 60,
    )


def auto_batch_size(cfg: DictConfig, model, ctx, num_classes: int) -> None:
    """data.batch_size=auto: half the largest batch that fits (halving from data.auto_batch.max, a few train
    steps each; data.auto_batch.max itself when it fits), and optim.lr scaled to it from
    data.auto_batch.lr_reference by data.auto_batch.lr_rule."""
    ab = cfg.data.auto_batch
    trial = train_trial(*trial_parts(cfg, model, ctx), num_classes)
    largest, failed = largest_fitting(trial, int(ab.max))
    if largest is None:
        raise OutOfMemory(f"data.batch_size=auto: not even a batch of 1 fits on {memory_text(ctx.device)}")
    # a batch found at the edge of the memory leaves none for the run's own (its data, its loop, validation, a
    # fragmented heap): half of it, where a larger one did not fit
    found = max(1, largest // 2) if failed else largest
    lr = scaled_lr(float(cfg.optim.lr), found, int(ab.lr_reference), str(ab.lr_rule))
    log.info(
        "data.batch_size=auto: %d on %s (%s); optim.lr %g -> %g (%s rule from a batch of %d)",
        found,
        memory_text(ctx.device),
        f"half of {largest}, the largest that ran; {', '.join(map(str, failed))} did not"
        if failed
        else f"it ran, the largest tried, data.auto_batch.max={ab.max}",
        float(cfg.optim.lr),
        lr,
        ab.lr_rule,
        int(ab.lr_reference),
    )
    cfg.data.batch_size = found
    cfg.optim.lr = lr


def objective_values(cfg: DictConfig, state, n_params: int):
    """What the run returns to a sweeper: best val top-1 (-1 when never validated), or, in an Optuna sweep, its
    `optuna.objectives`: one number for one objective, a list for several."""
    top1 = float(state.best.val_accuracy if state.best.val_accuracy is not None else -1.0)
    names = list(cfg.optuna.objectives) if cfg.get("optuna") and cfg.optuna.get("objectives") else ["val_top1"]
    if names == ["val_top1"]:
        return top1
    times = [r.epoch_time_s for r in state.history]
    values = {
        "val_top1": top1,
        "params_m": n_params / 1e6,
        "epoch_s": sum(times) / len(times) if times else float("nan"),
    }
    return values[names[0]] if len(names) == 1 else [values[n] for n in names]


def plan_budget(trainer: Trainer, t, ckpt: dict | None) -> None:
    """Fix the run's steps to its time budget: the checkpoint's plan when resuming, else a new one."""
    saved = (ckpt or {}).get("state", {}).get("plan")
    if saved:
        plan = BudgetPlan.from_json(saved)
        log.info("Keeping the budget plan of the checkpoint: %d steps in %d epochs", plan.total_steps, plan.epochs)
    else:
        if t.epochs != 1 and t.budget_evals != t.epochs:
            log.info(
                "trainer.budget_minutes is set: trainer.epochs=%d is not used (%d validations, trainer.budget_evals)",
                t.epochs,
                t.budget_evals,
            )
        plan = make_plan(trainer, float(t.budget_minutes), int(t.budget_evals))
    apply_plan(trainer, plan)
    log.info("%s", describe(plan, trainer.train_loader.batch_size, trainer.train_loader.num_samples))
