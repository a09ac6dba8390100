"""`task=train`: fit the model, keep best/last checkpoints, TensorBoard scalars and HParams, metrics.json."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from ..engine import Trainer
from ..errors import ConfigError
from ..model import count_parameters
from ..optim import build_optimizer, build_scheduler
from ..sweeps.pruning import pruning_callback
from .common import config_from_checkpoint, load_for_model, make_model, open_tb, run_context, setup_data

log = logging.getLogger(__name__)


def hparams_of(cfg: DictConfig) -> dict:
    return {
        "optim": cfg.optim.name, "lr": float(cfg.optim.lr), "weight_decay": float(cfg.optim.weight_decay),
        "blocks": "".join(str(b) for b in cfg.model.blocks), "dropout": float(cfg.model.dropout),
        "activation": cfg.model.activation, "batch_norm": bool(cfg.model.batch_norm),
        "batch_size": int(cfg.data.batch_size), "epochs": int(cfg.trainer.epochs), "seed": int(cfg.seed),
        "scheduler": cfg.scheduler.name,
    }


def resume_checkpoint(cfg: DictConfig, run_dir):
    """The checkpoint to continue from: `ckpt_path`, or `<run_dir>/checkpoints/last.ckpt` with `resume`."""
    if cfg.ckpt_path:
        return cfg.ckpt_path
    if cfg.resume not in (None, False):
        path = run_dir / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise ConfigError(
                f"resume={cfg.resume!r}: no interrupted run with these overrides (no {path}); allowed: true to "
                "continue the latest matching run under outputs/, a run directory, or ckpt_path=<run>/checkpoints/last.ckpt"
            )
        return str(path)
    return None


def run(cfg: DictConfig) -> float:
    ctx = run_context(cfg)
    ckpt_file = resume_checkpoint(cfg, ctx.run_dir)
    ckpt = None
    if ckpt_file:
        ckpt = load_for_model(ckpt_file)
        keep = ("trainer.epochs",) if any(o.startswith("trainer.epochs=") for o in ctx.overrides) else ()
        cfg = config_from_checkpoint(cfg, ckpt, ctx.overrides, keep=keep)
        ctx.cfg = cfg
    dm = setup_data(cfg, ctx.run_dir)
    model = make_model(cfg, dm.num_classes, ctx.device, ctx.channels_last)
    optimizer = build_optimizer(cfg.optim, model.parameters())
    train_loader = dm.train_loader(ctx.device)
    steps = len(train_loader)
    if cfg.trainer.get("limit_train_batches"):
        steps = min(steps, int(cfg.trainer.limit_train_batches))
    scheduler, interval = build_scheduler(cfg.scheduler, optimizer, int(cfg.trainer.epochs), steps)
    purge = ckpt["state"]["global_step"] if ckpt else None
    tb = open_tb(ctx.run_dir, ctx.name, purge_step=purge)
    epoch_callbacks = [cb for cb in (pruning_callback(cfg),) if cb is not None]
    trainer = Trainer(cfg, model, optimizer, scheduler, interval, train_loader, dm.eval_loader("val", ctx.device),
                      ctx.device, ctx.run_dir, tb, dm.num_classes, ctx.amp_dtype, ctx.channels_last, epoch_callbacks)
    trainer.ckpt_extra = {"split": dm.summary()}
    if ckpt is not None:
        trainer.restore(ckpt)
    extra = {"run_name": ctx.name, "params": count_parameters(model), "split": dm.summary()["fingerprint"],
             "hparams": hparams_of(cfg)}
    try:
        state = trainer.fit()
    except Exception:
        if trainer.state.status == "running":
            trainer.state.status = "failed"
        raise
    finally:
        trainer.write_metrics(extra)
        best = trainer.state.best
        if trainer.state.history:
            tb.hparams(hparams_of(cfg), {"hparam/best_val_accuracy": max(best["val/accuracy"], 0.0),
                                         "hparam/best_val_loss": best.get("val/loss", float("nan")),
                                         "hparam/epochs_run": float(trainer.state.epoch)})
        tb.close()
    log.info("Best val top-1 %.4f at epoch %s; checkpoints in %s", state.best["val/accuracy"], state.best["epoch"],
             ctx.run_dir / "checkpoints")
    return float(state.best["val/accuracy"])
