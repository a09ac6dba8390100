"""`optimization_results.yaml` of an Optuna sweep, as the plugin writes it, plus the study's bookkeeping and, for
two objectives, the figure of its Pareto front (imported by the sweeper only)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ..artifacts.files import write_text
from .storage import redacted

# main.log names the logger on every line: these lines keep the name they have always had
log = logging.getLogger("tinyimagenet_resnet.sweeps.optuna_loop")


def write_results(study, folder: Path, storage_url, n_trials: int, directions: list) -> None:
    """optimization_results.yaml as the plugin writes it (`best_params`/`best_value`, or the Pareto front as
    `solutions` for several directions), plus the study's bookkeeping; a figure of the front for two."""
    states: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
    results: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "storage": redacted(storage_url),
        "n_trials": n_trials,
        "directions": list(directions),
        "trial_states": states,
    }
    if study.metric_names:
        results["metric_names"] = list(study.metric_names)
    if len(directions) == 1:
        results.update(_best(study))
    else:
        front = sorted(study.best_trials, key=lambda t: t.number)
        results["solutions"] = [{"params": t.params, "values": list(t.values), "trial": t.number} for t in front]
        log.info("Pareto front of %d trials: %s", len(front), [t.number for t in front])
        if len(directions) == 2 and front:
            from .pareto import pareto_figure  # lazy: matplotlib costs 1 s of start-up, paid by two objectives only

            pareto_figure(study, directions, folder / "pareto.png")
    write_text(folder / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results)))


def _best(study) -> dict:
    """The best trial of a one-objective study as the plugin names it ({} when no trial completed)."""
    try:
        best = study.best_trial
    except ValueError:
        log.warning("No completed trial in study %r", study.study_name)
        return {}
    log.info("Best trial %d: value %.4f, params %s", best.number, best.value, best.params)
    return {"best_params": best.params, "best_value": best.value, "best_trial": best.number}
