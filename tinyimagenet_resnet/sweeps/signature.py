"""A study's signature: its search space and the settings of its jobs, stored with the study so that a run resumed
with other ones is refused instead of mixing two experiments in one study (imported by the sweeper only)."""

from __future__ import annotations

import json
import logging

from optuna.distributions import distribution_to_json

from ..config.overrides import RUNTIME_KEYS, override_key, override_value
from ..errors import ConfigError
from .storage import redacted

# main.log names the logger on every line: these lines keep the name they have always had
log = logging.getLogger("tinyimagenet_resnet.sweeps.optuna_loop")


def distribution_text(as_json: str) -> str:
    """An Optuna distribution as the sweeper's own syntax reads it: `tag(log, interval(1e-05, 0.1))`,
    `choice(0.0, 0.0001)`, `range(1, 5, step=2)`."""
    d = json.loads(as_json)
    a = d.get("attributes", {})
    if d.get("name") == "CategoricalDistribution":
        return f"choice({', '.join(str(c) for c in a.get('choices', []))})"
    kind = "range" if d.get("name") == "IntDistribution" else "interval"
    text = f"{kind}({a.get('low')}, {a.get('high')}" + (f", step={a['step']}" if a.get("step") else "") + ")"
    return f"tag(log, {text})" if a.get("log") else text


def study_signature(distributions, fixed_params, arguments) -> dict:
    """What makes two runs of a study the same study: its search space and the settings of its jobs (the
    command line's overrides that are not searched, but for where and how the jobs run: data.path, the device,
    the sweep's folder...)."""
    searched = set(distributions) | set(fixed_params)
    settings = {
        override_key(o): override_value(o)
        for o in arguments
        if override_key(o) not in searched
        and not override_key(o).startswith(("hydra", "optuna."))
        and override_key(o) not in RUNTIME_KEYS
    }
    settings.update({k: str(v) for k, v in fixed_params.items()})
    return {
        "space": {k: distribution_text(distribution_to_json(d)) for k, d in sorted(distributions.items())},
        "settings": dict(sorted(settings.items())),
    }


def check_signature(study, signature: dict, storage_url) -> None:
    """A study resumed with another search space or other job settings would mix two experiments in one study
    and one summary: refused, naming what differs. A study without a signature (from an earlier version), or
    whose every trial failed (the cause fixed, the same command runs it anew), takes this run's."""
    stored = study.user_attrs.get("tir_signature")
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED")]
    if stored is None or (stored != signature and not finished):
        if stored is not None:  # every earlier trial failed: a re-run after fixing the cause takes its settings
            log.info("Study %r: no trial finished with its earlier settings; it takes these", study.study_name)
        study.set_user_attr("tir_signature", signature)
        return
    diffs = differences(stored, signature)
    if diffs:
        raise ConfigError(
            f"study {study.study_name!r} in {redacted(storage_url) or 'memory'} was run with other settings "
            f"({'; '.join(diffs)}); run it again with its own settings, or start a new study with "
            "hydra.sweeper.study_name=<another name>"
        )


def differences(stored: dict, signature: dict) -> list[str]:
    """Each setting, then each searched parameter, whose value differs between two signatures: `key: old -> new`."""
    diffs = []
    for part, what in (("settings", "{k}: {a} -> {b}"), ("space", "search space of {k}: {a} -> {b}")):
        old, new = stored.get(part, {}), signature[part]
        for k in sorted(set(old) | set(new)):
            if old.get(k) != new.get(k):
                diffs.append(what.format(k=k, a=old.get(k, "unset"), b=new.get(k, "unset")))
    return diffs
