"""Composing `conf/` outside Hydra's own start-up: the pre-flight check of a command line (one line for every bad
value, before Hydra prints a dozen) and the config stored in a checkpoint, brought up to the current schema."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .overrides import override_key, override_value
from .schema import BY_NAME
from .validate import allowed_at, field_allowed, plain, validate_config

log = logging.getLogger(__name__)

# Hydra command-line flags that print something instead of running jobs (no pre-flight for them).
INFO_FLAGS = {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}
MULTIRUN_FLAGS = {"-m", "--multirun"}
FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
    "--info",
    "-i",
}


def config_dir() -> str:
    """`conf/` of a clone (editable install, or running from the source tree), else the copy shipped in the wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise RuntimeError(f"tinyimagenet_resnet: config folder not found next to {here}")


def composition_error(exc: BaseException) -> str:
    """Hydra/OmegaConf's multi-line composition error as our one line: key, value, what is allowed."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__
    if cause is None or not getattr(cause, "full_key", None):
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        return "; ".join(lines[:3]) if lines else type(exc).__name__
    key, schema = cause.full_key, getattr(cause, "object_type", None)
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        import dataclasses

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
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .schema import register

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
    from ..scale.launchers import missing_plugin

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
        for option in value.split(","):
            if option not in allowed:
                return f"{key}={option!r}: allowed {'|'.join(allowed)}"
    return None


def job_overrides(argv: list[str]) -> list[str] | None:
    """The overrides of a command line that runs ONE job, or None (a multirun, or a flag that prints instead)."""
    args, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in MULTIRUN_FLAGS or a in INFO_FLAGS or a.split("=", 1)[0] in INFO_FLAGS:
            return None
        if a in FLAGS_WITH_VALUE:
            skip = True
            continue
        if a.startswith("-"):
            continue
        args.append(a)
    return args


def preflight(argv: list[str]) -> None:
    """Compose and validate the config a single-run command line asks for; raises ConfigError (one line)."""
    overrides = job_overrides(argv)
    if overrides is not None:
        validate_config(compose_config(overrides))


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

    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.merge(cfg, prune(saved, known, ""))
    except OmegaConfBaseException as exc:
        raise ConfigError("checkpoint config: " + composition_error(exc)) from None
