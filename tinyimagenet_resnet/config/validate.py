"""Start-up validation against the schema: one readable line per problem (key, value, what is allowed), before any
work is done. Types are checked by OmegaConf at composition (`composition_error` turns its message into our line);
ranges, unknown keys and rules across keys are checked here."""

from __future__ import annotations

import dataclasses
import math
import typing
from enum import Enum
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from ..errors import ConfigError
from .choices import Task
from .schema import BY_NAME, Config


def plain(v: Any) -> Any:
    """A config value as plain Python (lists instead of ListConfig, enum values instead of members)."""
    if isinstance(v, (DictConfig, ListConfig)):
        return OmegaConf.to_container(v, resolve=True, enum_to_str=True)
    return v.value if isinstance(v, Enum) else v


def _allowed(meta: dict) -> str:
    allowed = meta.get("allowed", "")
    return allowed() if callable(allowed) else allowed


def fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{key}={plain(value)!r}: allowed {allowed}")


def schema_of(node: DictConfig, path: str) -> type | None:
    """The dataclass behind a config node (also for the name-selected `optim`/`scheduler` nodes)."""
    t = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(t):
        return t
    if path in BY_NAME and "name" in node:
        return BY_NAME[path].get(node.name)
    return None


def _check_node(node: DictConfig, schema: type, path: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node.keys():
        if key not in fields:
            known = ", ".join(fields)
            raise ConfigError(f"{path + '.' if path else ''}{key}: not a config key; allowed keys here: {known}")
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        value = node[name]
        if isinstance(value, DictConfig):
            sub = schema_of(value, key) or (f.type if dataclasses.is_dataclass(f.type) else None)
            if sub is not None:
                _check_node(value, sub, key)
            continue
        check = f.metadata.get("check")
        try:
            ok = check is None or bool(check(plain(value)))
        except (TypeError, ValueError, AttributeError):
            ok = False
        if not ok:
            fail(key, value, _allowed(f.metadata))
        if f.metadata.get("finite", True) and not finite(plain(value)):
            fail(key, value, f"{_allowed(f.metadata)}, finite (not inf or nan)")


def finite(value: Any) -> bool:
    """No infinite or NaN number in a value (a number, or a list of them): no schema key has a use for one, unless
    its spec says `finite=False`."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(finite(v) for v in value)
    return True


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) for the first bad value; the config is the composed root (no `hydra` node)."""
    _check_node(cfg, Config, "")
    optim = cfg.optim
    if optim.name == "sgd" and optim.nesterov and not optim.momentum > 0:
        fail("optim.nesterov", optim.nesterov, "false when optim.momentum=0")
    t = cfg.trainer
    if len(t.train_sizes) != len(t.train_size_fractions):
        fail(
            "trainer.train_size_fractions",
            t.train_size_fractions,
            f"one share per train size ({len(t.train_sizes)}: trainer.train_sizes={plain(t.train_sizes)})",
        )
    if not cfg.lr_find.min_lr < cfg.lr_find.max_lr:
        fail("lr_find.min_lr", cfg.lr_find.min_lr, f"a number below lr_find.max_lr={cfg.lr_find.max_lr}")
    if cfg.data.batch_size == "auto":
        if cfg.task != Task.train:
            fail("data.batch_size", "auto", f"an integer >= 1 with task={cfg.task} (only task=train searches one)")
        if t.budget_minutes:
            fail(
                "data.batch_size",
                "auto",
                "an integer >= 1 with trainer.budget_minutes (the budget plans its steps at one batch size)",
            )
    if cfg.task == Task.evaluate and cfg.ckpt_path is None:
        fail(
            "ckpt_path",
            None,
            "a checkpoint path with task=evaluate, e.g. ckpt_path=outputs/<date>/<time>/checkpoints/best.ckpt",
        )


def allowed_at(path: str) -> str | None:
    """What the schema allows at a dotted key (`model.widths`, `optim.betas`), found by walking the root schema;
    under `optim`/`scheduler` (chosen by name) the first option that has the key answers."""
    parts = path.split(".")
    candidates: list[type] = [Config]
    for i, part in enumerate(parts):
        found = None
        for schema in candidates:
            f = next((f for f in dataclasses.fields(schema) if f.name == part), None)
            if f is not None:
                found = f
                break
        if found is None:
            return None
        if i == len(parts) - 1:
            return _allowed(found.metadata) or None
        hints = typing.get_type_hints(schema)
        sub = hints.get(part)
        if dataclasses.is_dataclass(sub):
            candidates = [sub]
        elif parts[: i + 1] == [part] and part in BY_NAME:
            candidates = list(BY_NAME[part].values())
        else:
            args = [a for a in typing.get_args(sub) if dataclasses.is_dataclass(a)]
            if not args:
                return None
            candidates = args
    return None


def field_allowed(schema: type | None, key: str) -> str | None:
    """What a schema field allows, for the one-line form of OmegaConf's type errors."""
    if schema is None or not dataclasses.is_dataclass(schema):
        return None
    for f in dataclasses.fields(schema):
        if f.name == key:
            return _allowed(f.metadata) or None
    return None
