"""`task=lr_find`: LR range test on the configured model/optimizer; curve to TensorBoard, PNG, CSV, JSON."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..artifacts.files import write_csv
from ..artifacts.records import LRFindRecord
from ..progress import Progress, use_progress_bar
from ..reporting import figures
from ..training.batch import to_device
from ..training.lr_range import RangeTestResult, range_test
from ..training.optim import build_optimizer
from ..training.runtime import autocast
from .common import make_model, open_tb, run_context, setup_data

log = logging.getLogger(__name__)


def endless(loader):
    """Train batches across as many epochs as the range test needs."""
    epoch = 0
    while True:
        yield from loader.epoch(epoch)
        epoch += 1


def run(cfg) -> float | None:
    ctx = run_context(cfg)
    dm = setup_data(cfg, ctx.run_dir)
    model = make_model(cfg, dm.num_classes, ctx.device, ctx.channels_last)
    lf = cfg.lr_find
    loader = dm.train_loader(ctx.device)
    tb = open_tb(ctx)
    batches = (to_device(b, ctx.device, ctx.channels_last) for b in endless(loader))
    loss_fn = torch.nn.CrossEntropyLoss()

    def make_optimizer(params, lr):
        opt_cfg = cfg.optim.copy()
        opt_cfg.lr = lr
        return build_optimizer(opt_cfg, params)

    def step(m, x, y):
        with autocast(ctx.device, ctx.amp_dtype):
            return loss_fn(m(x).float(), y)

    watch = Progress(
        "lr_find",
        int(lf.num_iters),
        bar=use_progress_bar(cfg.trainer.progress_bar),
        every_s=float(cfg.trainer.progress_every_s),
        unit="iteration",
        images_per_unit=int(cfg.data.batch_size),
    )

    def on_step(i, lr, loss, smooth):
        tb.scalars({"lr_find/loss": loss, "lr_find/smoothed_loss": smooth, "lr_find/lr": lr}, i)
        watch.update(1)
        watch.set_postfix(lr=f"{lr:.2g}", loss=f"{smooth:.3f}")

    result = range_test(
        model,
        make_optimizer,
        batches,
        loss_fn,
        float(lf.min_lr),
        float(lf.max_lr),
        int(lf.num_iters),
        float(lf.beta),
        float(lf.diverge_factor),
        step_fn=step,
        on_step=on_step,
        min_drop=float(lf.min_drop),
    )
    watch.close()
    write_outputs(cfg, ctx.run_dir, tb, result)
    tb.close()
    log_suggestion(result, float(lf.min_drop))
    return result.suggestion


def write_outputs(cfg, run_dir: Path, tb, result: RangeTestResult) -> None:
    """lr_find.csv (the curve), lr_find.json (the suggestion and the test's settings), the curve's figure as PNG
    and in TensorBoard."""
    lf = cfg.lr_find
    write_csv(
        run_dir / "lr_find.csv",
        ["step", "lr", "loss", "smoothed_loss"],
        zip(range(len(result.lrs)), result.lrs, result.losses, result.smoothed, strict=True),
    )
    LRFindRecord(
        **result.to_json(),
        min_lr=float(lf.min_lr),
        max_lr=float(lf.max_lr),
        num_iters=int(lf.num_iters),
        optimizer=cfg.optim.name,
        weight_decay=float(cfg.optim.weight_decay),
        batch_size=int(cfg.data.batch_size),
    ).write(run_dir)
    fig = figures.lr_curve(result.lrs, result.losses, result.smoothed, result.suggestion, result.window)
    tb.figure("lr_find/curve", fig)
    figures.save(fig, run_dir / "lr_find.png")


def log_suggestion(result: RangeTestResult, min_drop: float) -> None:
    if result.suggestion:
        log.info(
            "Suggested lr %.3g; stable window %.3g .. %.3g (%d iterations%s)",
            result.suggestion,
            result.window[0],
            result.window[1],
            len(result.lrs),
            ", stopped on divergence" if result.stopped_early else "",
        )
    else:
        log.warning(
            "No clear descent: the smoothed loss never fell by lr_find.min_drop=%g of its start; raise "
            "lr_find.num_iters or data.batch_size (200 classes need a few hundred steps), or widen "
            "lr_find.min_lr/max_lr",
            min_drop,
        )
