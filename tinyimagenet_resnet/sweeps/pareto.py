"""The figure of a two-objective study's Pareto front (`pareto.png` in its folder), with its words in a sidecar
`pareto.png.json` as every figure of the package has (titles, axis labels, legends)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..artifacts.files import atomic_path  # noqa: E402


def pareto_figure(study, directions: list[str], path: Path) -> Path:
    """Every completed trial of a two-objective study as a point, the Pareto front joined as a step line and
    labelled with trial numbers; axes named after the study's metric names."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.values]
    front = sorted(study.best_trials, key=lambda t: t.values[1])
    names = list(study.metric_names or ["objective 0", "objective 1"])
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.scatter([t.values[1] for t in trials], [t.values[0] for t in trials], s=18, c="0.6", label="trials")
    ax.plot(
        [t.values[1] for t in front],
        [t.values[0] for t in front],
        "o-",
        c="C3",
        drawstyle="steps-post",
        label="Pareto front",
    )
    for t in front:
        ax.annotate(str(t.number), (t.values[1], t.values[0]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    words = {
        "title": [f"Study {study.study_name}: {len(front)} of {len(trials)} trials on the front"],
        "xlabel": [f"{names[1]} ({directions[1]})"],
        "ylabel": [f"{names[0]} ({directions[0]})"],
        "legend": ["trials", "Pareto front"],
    }
    ax.set_xlabel(words["xlabel"][0])
    ax.set_ylabel(words["ylabel"][0])
    ax.set_title(words["title"][0])
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        with atomic_path(path.with_name(path.name + ".json")) as tmp:
            tmp.write_text(json.dumps(words, ensure_ascii=False, indent=1), encoding="utf-8")
    finally:
        plt.close(fig)
    return path
