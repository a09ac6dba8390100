"""Start-up validation of the composed config: one readable line per problem, before any work is done."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf

from .errors import ConfigError
from .model import ACTIVATIONS
from .optim import OPTIMIZERS, SCHEDULERS

TASKS = ("train", "evaluate", "inspect", "baselines", "lr_find")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fail(key: str, value, allowed: str):
    raise ConfigError(f"{key}={value!r}: allowed {allowed}")


def _check(cond: bool, key: str, value, allowed: str) -> None:
    if not cond:
        _fail(key, value, allowed)


def _plain(v):
    return list(v) if isinstance(v, ListConfig) else v


def check_model(m: DictConfig) -> None:
    blocks, widths = _plain(m.blocks), _plain(m.widths)
    _check(isinstance(blocks, list) and len(blocks) == 3 and all(_is_int(b) and b > 0 for b in blocks),
           "model.blocks", blocks, "three positive integers, e.g. [2,2,2] (or model/blocks=b222|b333)")
    _check(isinstance(widths, list) and len(widths) == 3 and all(_is_int(w) and w > 0 for w in widths),
           "model.widths", widths, "three positive integers, e.g. [64,128,256]")
    _check(_is_num(m.dropout) and 0 <= m.dropout < 1, "model.dropout", m.dropout,
           "a number in [0, 1) (or model/dropout=p00|p01|p03)")
    _check(isinstance(m.activation, str) and m.activation in ACTIVATIONS, "model.activation", m.activation, "|".join(ACTIVATIONS))
    _check(isinstance(m.batch_norm, bool), "model.batch_norm", m.batch_norm, "true|false")


def check_optim(o: DictConfig) -> None:
    _check(o.name in OPTIMIZERS, "optim.name", o.name, "|".join(OPTIMIZERS) + " (optim=adamw|adam|sgd)")
    _check(_is_num(o.lr) and o.lr > 0, "optim.lr", o.lr, "a number > 0")
    _check(_is_num(o.weight_decay) and o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "a number >= 0")
    if o.name in ("adam", "adamw"):
        betas = _plain(o.betas)
        _check(isinstance(betas, list) and len(betas) == 2 and all(_is_num(b) and 0 <= b < 1 for b in betas),
               "optim.betas", betas, "two numbers in [0, 1), e.g. [0.9, 0.999]")
    if o.name == "sgd":
        _check(_is_num(o.momentum) and 0 <= o.momentum < 1, "optim.momentum", o.momentum, "a number in [0, 1)")
        _check(isinstance(o.nesterov, bool), "optim.nesterov", o.nesterov, "true|false")
        _check(not o.nesterov or o.momentum > 0, "optim.nesterov", o.nesterov, "false when optim.momentum=0")


def check_data(d: DictConfig) -> None:
    _check(_is_int(d.batch_size) and d.batch_size >= 1, "data.batch_size", d.batch_size, "an integer >= 1")
    _check(_is_int(d.num_workers) and d.num_workers >= 0, "data.num_workers", d.num_workers, "an integer >= 0")
    _check(_is_int(d.num_classes) and d.num_classes >= 2, "data.num_classes", d.num_classes, "an integer >= 2")
    eval_bs = d.get("eval_batch_size")
    _check(eval_bs is None or (_is_int(eval_bs) and eval_bs >= 1), "data.eval_batch_size", eval_bs,
           "null (= data.batch_size) or an integer >= 1")
    _check(d.path is None or isinstance(d.path, str), "data.path", d.path, "null (the hub) or a folder path")
    for key in ("train_files", "val_files"):
        v = d.get(key)
        _check(v is None or isinstance(v, str), f"data.{key}", v, "null or a glob relative to data.path")
    for key, positive in (("mean", False), ("std", True)):
        v = _plain(d[key])
        _check(isinstance(v, list) and len(v) == 3 and all(_is_num(x) and (x > 0 if positive else True) for x in v),
               f"data.{key}", v, "three " + ("positive " if positive else "") + "numbers (one per RGB channel)")
    for key in ("train_subset", "val_subset", "test_subset"):
        v = d.get(key)
        _check(v is None or (_is_int(v) and v >= 1), f"data.{key}", v, "null (all) or an integer >= 1")
    _check(_is_num(d.test_fraction) and 0 < d.test_fraction < 1, "data.test_fraction", d.test_fraction,
           "a number in (0, 1)")
    _check(isinstance(d.stratify_subsets, bool), "data.stratify_subsets", d.stratify_subsets, "true|false")
    _check(d.pipeline in ("fast", "reference"), "data.pipeline", d.pipeline, "fast|reference")
    _check(d.device_resident in ("auto", True, False), "data.device_resident", d.device_resident, "auto|true|false")
    _check(d.cache_dir is None or isinstance(d.cache_dir, str), "data.cache_dir", d.cache_dir, "null or a folder")
    aug = d.augment
    for key in ("enabled", "random_resized_crop.enabled", "color_jitter.enabled"):
        v = OmegaConf.select(aug, key)
        _check(isinstance(v, bool), f"data.augment.{key}", v, "true|false")
    _check(_is_num(aug.hflip) and 0 <= aug.hflip <= 1, "data.augment.hflip", aug.hflip, "a probability in [0, 1]")
    scale = _plain(aug.random_resized_crop.scale)
    _check(isinstance(scale, list) and len(scale) == 2 and all(_is_num(s) for s in scale)
           and 0 < scale[0] <= scale[1] <= 1, "data.augment.random_resized_crop.scale", scale,
           "[min, max] with 0 < min <= max <= 1")
    ratio = _plain(aug.random_resized_crop.ratio)
    _check(isinstance(ratio, list) and len(ratio) == 2 and all(_is_num(r) and r > 0 for r in ratio)
           and ratio[0] <= ratio[1], "data.augment.random_resized_crop.ratio", ratio, "[min, max] with 0 < min <= max")
    for k in ("brightness", "contrast", "saturation"):
        v = aug.color_jitter[k]
        _check(_is_num(v) and v >= 0, f"data.augment.color_jitter.{k}", v, "a number >= 0")
    hue = aug.color_jitter.hue
    _check(_is_num(hue) and 0 <= hue <= 0.5, "data.augment.color_jitter.hue", hue, "a number in [0, 0.5]")


def check_trainer(t: DictConfig) -> None:
    _check(_is_int(t.epochs) and t.epochs >= 1, "trainer.epochs", t.epochs, "an integer >= 1")
    dev = t.device
    _check(isinstance(dev, str) and (dev in ("auto", "cpu", "mps", "cuda") or dev.startswith("cuda:")),
           "trainer.device", dev, "auto|cpu|cuda|cuda:N|mps")
    _check(t.precision in PRECISIONS, "trainer.precision", t.precision, "|".join(PRECISIONS))
    _check(t.progress_bar in ("auto", True, False), "trainer.progress_bar", t.progress_bar, "auto|true|false")
    for key in ("channels_last", "compile", "deterministic"):
        _check(isinstance(t[key], bool), f"trainer.{key}", t[key], "true|false")
    for key in ("limit_train_batches",):
        v = t.get(key)
        _check(v is None or (_is_int(v) and v >= 1), f"trainer.{key}", v, "null or an integer >= 1")
    for key in ("log_every_n_steps", "val_every_n_epochs", "jobs_per_gpu"):
        _check(_is_int(t[key]) and t[key] >= 1, f"trainer.{key}", t[key], "an integer >= 1")
    ls = t.get("label_smoothing", 0.0)
    _check(_is_num(ls) and 0 <= ls < 1, "trainer.label_smoothing", ls, "a number in [0, 1)")


def validate_config(cfg: DictConfig) -> None:
    _check(cfg.task in TASKS, "task", cfg.task, "|".join(TASKS))
    _check(_is_int(cfg.seed) and cfg.seed >= 0, "seed", cfg.seed, "an integer >= 0")
    _check(cfg.scheduler.name in SCHEDULERS, "scheduler.name", cfg.scheduler.name,
           "|".join(SCHEDULERS) + " (scheduler=none|cosine|onecycle)")
    if cfg.scheduler.name == "cosine":
        v = cfg.scheduler.eta_min
        _check(_is_num(v) and v >= 0, "scheduler.eta_min", v, "a number >= 0")
    if cfg.scheduler.name == "onecycle":
        v = cfg.scheduler.pct_start
        _check(_is_num(v) and 0 < v < 1, "scheduler.pct_start", v, "a number in (0, 1)")
    _check(cfg.resume in (True, False, None) or isinstance(cfg.resume, str), "resume", cfg.resume,
           "false, true (latest matching run) or a run directory")
    _check(cfg.run_name is None or isinstance(cfg.run_name, str), "run_name", cfg.run_name, "null or a string")
    check_model(cfg.model)
    check_optim(cfg.optim)
    check_data(cfg.data)
    check_trainer(cfg.trainer)
    _check(cfg.ckpt_path is None or isinstance(cfg.ckpt_path, str), "ckpt_path", cfg.ckpt_path,
           "null or a path to a .ckpt file")
    _check(cfg.task != "evaluate" or cfg.ckpt_path is not None, "ckpt_path", cfg.ckpt_path,
           "a checkpoint path with task=evaluate, e.g. ckpt_path=outputs/<date>/<time>/checkpoints/best.ckpt")
