"""Composing `conf/` outside Hydra's own start-up: the pre-flight check of a command line (one line for every bad
value, before Hydra prints a dozen) and the config stored in a checkpoint, brought up to the current schema."""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from .. import compat
from ..artifacts.files import check_writable
from ..errors import ConfigError
from ..scale.launchers import missing_plugin
from .flags import FLAGS_WITH_VALUE, INFO_FLAGS, MULTIRUN_FLAGS
from .overrides import override_key, override_value
from .paths import config_dir, default_cache_dir
from .schema import BY_NAME, register
from .validate import allowed_at, field_allowed, plain, validate_config

log = logging.getLogger(__name__)


# How to bring an optional node into the config, for the one line that names a key set under it while it is null.
NODE_CHOICES = {"logger": "logger={name} (or several: logger=[tensorboard,{name}])", "optuna": "sweep=optuna"}


def composition_error(exc: BaseException) -> str:
    """Hydra/OmegaConf's multi-line composition error as our one line: key, value, what is allowed."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__
    unset = compat.unset_parent(cause) if cause is not None else None
    if unset:  # a key under an optional node the command did not choose (logger.mlflow, optuna)
        key, node = unset
        how = NODE_CHOICES.get(node.split(".")[0], "").format(name=node.split(".")[-1])
        return f"{key}: {node} is not part of this command's config" + (f"; choose it first with {how}" if how else "")
    if cause is None or not getattr(cause, "full_key", None):
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        text = "; ".join(lines[:3]) if lines else type(exc).__name__
        if "Error when parsing" in text and any(c.isspace() or not c.isascii() for c in text.split("string:")[-1]):
            text += " (quote a value with spaces or accents: \"data.path='/my data/tiny-imagenet'\")"
        return text
    key, schema = cause.full_key, getattr(cause, "object_type", None)
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        known = ", ".join(f.name for f in dataclasses.fields(schema)) if dataclasses.is_dataclass(schema) else ""
        return f"{key}: not a config key" + (f"; allowed keys here: {known}" if known else "")
    if "[" in key:  # an item of a list: what the list's key allows
        allowed = allowed_at(key.split("[", 1)[0])
    else:
        allowed = field_allowed(schema, str(cause.key)) or allowed_at(key)
    return f"{key}={plain(cause.value)!r}: allowed {allowed or str(cause.msg).splitlines()[0]}"


def compose_config(overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """`conf/config.yaml` with `overrides`, composed as the entry point does (inside a running Hydra app or outside
    one); composition errors become one ConfigError line."""
    register()
    try:
        if GlobalHydra.instance().is_initialized():
            return compose("config", overrides=overrides, return_hydra_config=return_hydra_config)
        with initialize_config_dir(config_dir=config_dir()):
            return compose("config", overrides=overrides, return_hydra_config=return_hydra_config)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(composition_error(exc)) from None


def check_group_choices(argv: list[str], conf: Path) -> str | None:
    """One readable line for `group=option` overrides naming an option that does not exist (Hydra's own message
    spans a dozen lines). Sweep expressions (`a,b`) are checked item by item; function syntax is left to Hydra."""
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = override_key(arg), override_value(arg)
        if key == "hydra/launcher" and (problem := missing_plugin(value)):
            return problem
        group = conf / key
        if (
            key.startswith("hydra")
            or key.startswith("schema")
            or not group.is_dir()
            or "(" in value
            or value in ("null", "")
        ):
            continue
        allowed = sorted(p.stem for p in group.glob("*.yaml"))
        options = [o.strip() for o in value.strip("[]").split(",") if o.strip()]  # a sweep a,b or a list [a,b]
        for option in options:
            if option not in allowed:
                return f"{key}={option!r}: allowed {'|'.join(allowed)}"
    return None


def command_overrides(argv: list[str]) -> tuple[list[str], bool] | None:
    """(the overrides of a command line, whether it is a multirun), or None for a flag that prints instead."""
    args, skip, multirun = [], False, False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in INFO_FLAGS or a.split("=", 1)[0] in INFO_FLAGS:
            return None
        if a in MULTIRUN_FLAGS:
            multirun = True
        elif a in FLAGS_WITH_VALUE:
            skip = True
        elif not a.startswith("-"):
            args.append(a)
    return args, multirun


def _sweep_values(override) -> list[str]:
    """The values a swept override takes (a grid's choices; an interval's two ends)."""
    if override.is_discrete_sweep():
        return list(override.sweep_string_iterator())
    value = override.value()
    return [str(value.start), str(value.end)]


def parse_overrides(parser, overrides: list[str]):
    """Hydra's parse of override strings; a sweep it cannot read (`choice()`, an unknown function) is one line."""
    try:
        return parser.parse_overrides(overrides)
    except OverrideParseException as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        bad = next((ln.split("'")[1] for ln in lines if ln.startswith("Error parsing override '")), "an override")
        why = lines[-2] if len(lines) >= 2 else lines[-1] if lines else "not an override Hydra can read"
        raise ConfigError(f"{bad}: {why}; see https://hydra.cc/docs/advanced/override_grammar/basic") from None


def job_override_sets(overrides: list[str], params: dict | None) -> tuple[list[list[str]], dict]:
    """Override lists that together give every value of every swept key (the command line's sweeps and the
    sweeper's `params`) at least once, the other swept keys at their first value: 1 + sum(values - 1) configs
    instead of the whole product. Returns (sets, {key: values})."""
    parser = OverridesParser.create()
    parsed = parse_overrides(parser, overrides)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    sweeps = {o.get_key_element(): _sweep_values(o) for o in parsed if o.is_sweep_override()}
    for key, value in (params or {}).items():
        if key in sweeps:
            continue  # the command line wins, as in Hydra's sweepers
        (o,) = parse_overrides(parser, [f"{key}={value}"])
        if o.is_sweep_override():
            sweeps[o.get_key_element()] = _sweep_values(o)
        else:
            fixed.append(o.input_line)
    for key, values in sweeps.items():
        if not values:  # range(0), an empty choice: Hydra would start a sweep of no jobs, then fail on it
            expr = next((o for o in overrides if override_key(o) == key), f"{key}=...")
            raise ConfigError(f"{expr}: this sweep has no values, so the grid has no job; allowed: at least one value")
    first = {k: v[0] for k, v in sweeps.items()}
    sets = [fixed + [f"{k}={v}" for k, v in first.items()]]
    for key, values in sweeps.items():
        for value in values[1:]:
            sets.append(fixed + [f"{k}={value if k == key else v}" for k, v in first.items()])
    return sets, sweeps


def check_sweeper(sweeper) -> None:
    """The Optuna sweeper's own keys (Hydra's plugin types them, we check the ranges)."""
    target = str(sweeper.get("_target_", ""))
    if "Optuna" not in target:
        return
    checks = [
        ("n_trials", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        ("n_jobs", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        ("max_failure_rate", lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, "a number in [0, 1]"),
    ]
    for key, ok, allowed in checks:
        if not ok(sweeper.get(key)):
            raise ConfigError(f"hydra.sweeper.{key}={plain(sweeper.get(key))!r}: allowed {allowed}")
    directions = plain(sweeper.get("direction"))
    directions = directions if isinstance(directions, list) else [directions]
    if not directions or any(str(d).lower() not in ("minimize", "maximize") for d in directions):
        raise ConfigError(
            f"hydra.sweeper.direction={plain(sweeper.get('direction'))!r}: allowed minimize|maximize, or a list "
            "of them (one per objective)"
        )


def _assignments(overrides: list[str]) -> list[tuple[str, object]] | None:
    """`key=value` overrides as Hydra reads them (escapes, quotes, lists, dicts, interpolations); None where one is
    not a plain assignment to the config (`+key`, `++key`, `~key`, a `hydra.` key), which only a compose applies as
    Hydra does."""
    parsed = parse_overrides(OverridesParser.create(), overrides)
    if any(o.is_add() or o.is_force_add() or o.is_delete() or o.key_or_group.startswith("hydra") for o in parsed):
        return None
    return [(o.key_or_group, o.value()) for o in parsed]


def _job_config(fixed: list[str], swept: list[str], composed: dict[tuple, DictConfig]) -> DictConfig:
    """One job's validated config: its fixed overrides and the swept values that select a config group option
    (model/blocks=b333, optim=sgd) composed once per distinct choice (`composed` keeps them), its other swept values
    assigned onto a copy as Hydra assigns an override (OmegaConf.update, merge=True). A compose takes ~0.2 s of a
    core, an assignment ~0.01 s: an Optuna search space whose 9 configs cover every value composes 2 of them (one
    per choice of model/blocks). A job with an override that is not a plain assignment is composed whole."""
    groups = Path(config_dir())
    chosen = tuple(o for o in swept if "/" in override_key(o) or (groups / override_key(o)).is_dir())
    values = _assignments([o for o in swept if o not in chosen])
    if values is None:
        cfg = compose_config([*fixed, *swept])
    else:
        key = (*fixed, *chosen)
        if key not in composed:
            composed[key] = compose_config(list(key))
        cfg = copy.deepcopy(composed[key])
        try:
            for name, value in values:
                OmegaConf.update(cfg, name, value, merge=True)
        except OmegaConfBaseException as exc:
            raise ConfigError(composition_error(exc)) from None
    validate_config(cfg)
    return cfg


@dataclass
class Checked:
    """What the pre-flight composed: the configs that cover every value of every job, the sweeper's config (a
    multirun), and the command's overrides."""

    jobs: list[DictConfig]
    sweeper: DictConfig | None
    overrides: list[str]
    multirun: bool


def preflight(argv: list[str]) -> Checked | None:
    """Compose and validate, before any work, every job of the command line: the single run, or each value of
    each swept key of a multirun (its sweeper's settings too); check that its output and cache folders can be
    written. None for a flag that prints instead of running. Raises ConfigError / EnvironmentFault (one line)."""
    command = command_overrides(argv)
    if command is None:
        return None
    overrides, multirun = command
    sweeper = None
    if not multirun:
        cfg = compose_config(overrides)
        validate_config(cfg)
        jobs = [cfg]
    else:
        parsed = parse_overrides(OverridesParser.create(), overrides)
        fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
        base = compose_config(fixed, return_hydra_config=True)
        check_sweeper(base.hydra.sweeper)
        sweeper = base.hydra.sweeper
        params = base.hydra.sweeper.get("params")
        sets, sweeps = job_override_sets(overrides, OmegaConf.to_container(params) if params else {})
        swept_keys = {override_key(k) for k in sweeps}
        plain_cfg = copy.deepcopy(base)  # what compose_config(fixed) gives, in ~0.01 s instead of ~0.2
        with open_dict(plain_cfg):
            del plain_cfg["hydra"]
        composed = {tuple(fixed): plain_cfg}
        jobs = []
        for job in sets:
            swept = [o for o in job if override_key(o) in swept_keys]
            try:
                jobs.append(_job_config([o for o in job if o not in swept], swept, composed))
            except ConfigError as exc:
                raise ConfigError(f"{exc} (a job of the sweep: {' '.join(swept)})" if swept else str(exc)) from None
    folder = "multirun" if multirun else "outputs"
    for o in overrides:  # the user's own run/sweep folder
        if override_key(o) == f"hydra.{'sweep' if multirun else 'run'}.dir":
            folder = override_value(o)
    check_writable(Path(folder), f"hydra.{'sweep' if multirun else 'run'}.dir")
    for cfg in jobs[:1]:
        if cfg.data.pipeline == "fast" and cfg.task != "baselines":
            check_writable(Path(cfg.data.cache_dir or default_cache_dir()), "data.cache_dir")
    return Checked(jobs, sweeper, overrides, multirun)


def from_checkpoint(saved: dict) -> DictConfig:
    """A checkpoint's config on the current schema: the defaults of its optimizer and scheduler (keys added since the
    checkpoint was written take them), then every saved value. A saved value the schema no longer knows is dropped
    with a warning; a saved value of the wrong type is a ConfigError."""
    choices = [
        f"{group}={saved[group]['name']}"
        for group in BY_NAME
        if isinstance(saved.get(group), dict) and saved[group].get("name") in BY_NAME[group]
    ]
    cfg = compose_config(choices)
    known = OmegaConf.to_container(cfg, resolve=False)

    def prune(values: dict, ref: dict, prefix: str) -> dict:
        kept = {}
        for k, v in values.items():
            if k not in ref:
                log.warning("checkpoint config key %s%s is not in this version's schema: ignored", prefix, k)
            elif isinstance(v, dict) and isinstance(ref[k], dict):
                kept[k] = prune(v, ref[k], f"{prefix}{k}.")
            else:
                kept[k] = v
        return kept

    try:
        return OmegaConf.merge(cfg, prune(saved, known, ""))
    except OmegaConfBaseException as exc:
        raise ConfigError("checkpoint config: " + composition_error(exc)) from None
