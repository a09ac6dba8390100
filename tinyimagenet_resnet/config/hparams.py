"""A run's hyper-parameters as TensorBoard's HParams table shows them, and a sweep's columns with their domains.

The same names and value types on both sides: a job reports `run_hparams(cfg, overrides)`; its sweep declares
`grid_hparams` (Hydra's basic sweeper) or `optuna_hparams` (an Optuna search space) before the first job starts."""

from __future__ import annotations

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from ..artifacts.tb_hparams import HParam, kind_of, status_hparam
from ..compared import BY_COLUMN, COLUMN_OF_KEY, COMPARED, format_blocks
from .overrides import SWEEPER_KEYS, override_key, override_value
from .paths import config_dir


def hparams_of(cfg) -> dict:
    """This package's hyper-parameters of a run, most often compared first (also metrics.json `hparams`)."""
    return {c.column: c.value(cfg) for c in COMPARED}


def _typed(text: str):
    """An override's value as the HParams table compares it: a number where it reads as one (an int as an int, so
    that MLflow's text params say 2000, not 2000.0), else the text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def run_hparams(cfg, overrides) -> dict:
    """`hparams_of(cfg)` plus every other key the command line set (a sweep over `model.widths` shows it), under
    the override key's own name."""
    values = hparams_of(cfg)
    for o in overrides or []:
        key, text = override_key(o), override_value(o)
        if text is None or key in COLUMN_OF_KEY or key.startswith(SWEEPER_KEYS) or key in ("data.path", "task"):
            continue
        values[key] = _typed(text)
    return values


def option_value(group: str, option: str, conf_dir: str | None = None):
    """The value a group option sets, as `hparams_of` shows it: model/blocks=b333 -> '333', model/dropout=p03 -> 0.3,
    optim=sgd -> 'sgd'."""
    if group in ("model/blocks", "model/dropout"):
        node = OmegaConf.load(Path(conf_dir or config_dir()) / group / f"{option}.yaml")
        return format_blocks(node.blocks) if group == "model/blocks" else float(node.dropout)
    return option


def _column(key: str, value):
    name = COLUMN_OF_KEY.get(key, key)
    if "/" in key:
        return name, option_value(key, str(value))
    if name == "blocks":
        return name, format_blocks(value) if isinstance(value, (list, tuple)) else str(value)
    if name in BY_COLUMN and BY_COLUMN[name].number:
        return name, float(value)
    return name, value if isinstance(value, (bool, int, float)) else str(value)


def _discrete(key: str, choices) -> HParam:
    """A swept key's column with its choices, as the jobs will report them, as a discrete domain."""
    cols = [_column(key, v) for v in choices]
    values = sorted({v for _, v in cols}, key=lambda v: (str(type(v)), v))
    return HParam(cols[0][0], kind_of(values[0]), values=values, swept=len(values) > 1)


def ordered(swept: list[HParam], cfg) -> list[HParam]:
    """The sweep's columns first, then this package's fixed ones (their one value as domain), then `status`."""
    names = {h.name for h in swept}
    fixed = [HParam(k, kind_of(v), values=[v]) for k, v in hparams_of(cfg).items() if k not in names]
    return [*swept, *fixed, status_hparam()]


def grid_hparams(sweep_overrides: list[str], cfg) -> list[HParam]:
    """The columns of a grid: every sweep override (`optim.lr=1e-3,1e-2`, `model/blocks=b222,b333`) with its values
    as a discrete domain."""
    swept: dict[str, HParam] = {}
    for o in OverridesParser.create().parse_overrides(sweep_overrides):
        if not o.is_sweep_override() or o.get_key_element().startswith(SWEEPER_KEYS):
            continue
        key = o.get_key_element().lstrip("+~")
        column = _discrete(key, o.sweep_iterator())
        swept[column.name] = column
    return ordered(list(swept.values()), cfg)


def optuna_hparams(distributions: dict, cfg) -> list[HParam]:
    """The columns of an Optuna search space: a float or int distribution as an interval, a categorical one as its
    choices."""
    from optuna.distributions import CategoricalDistribution  # lazy: optuna costs 0.5 s; only Optuna sweeps ask

    swept = []
    for key, d in distributions.items():
        if isinstance(d, CategoricalDistribution):
            swept.append(_discrete(key, d.choices))
        else:
            swept.append(HParam(COLUMN_OF_KEY.get(key, key), "float", interval=(d.low, d.high), swept=d.low < d.high))
    return ordered(swept, cfg)
