"""Sections 5 and 7 of the report: the sweeps' tables (grids, Optuna's Pareto front, mean ± std over seeds) and the
val curves that compare the values of a grid."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from ..artifacts import names
from ..artifacts.runs import expand
from ..config.kinds import GRIDS, SWEEP_KINDS
from ..sweeps.rows import collect
from .context import Ctx
from .document import Doc, g3
from .flags import within_noise
from .overlay import overlay
from .redraw import csv_rows


def grids(c: Ctx) -> None:
    """M5: each sweep's table, best first, with its Pareto front or seed statistics; the grids not run yet."""
    doc, t = c.doc, c.t
    doc.h3("M5")
    for kind in SWEEP_KINDS:
        sweep = c.sweeps.get(kind)
        if sweep is None:
            continue
        rows = collect(sweep)
        doc.add(t["m5_sweep"].format(kind=kind, path=sweep, n=len(rows)), "")
        doc.table(
            t["h_grid"],
            [
                (
                    r.rank,
                    r.run_name,
                    g3(r.lr),
                    g3(r.weight_decay),
                    r.blocks,
                    g3(r.dropout),
                    g3(r.best_val_top1),
                    g3(r.val_loss_at_best),
                    r.epochs_run,
                    r.status,
                )
                for r in rows[:12]
            ],
        )
        best = next((r for r in rows if r.status == "ok"), None)
        if best:
            doc.add(t["m5_best"].format(run=best.run_name, top1=g3(best.best_val_top1)), "")
            noise = within_noise(rows, sweep)
            if noise:
                doc.add(f"> ⚠️ {t['flag_noise'].format(**noise)}", "")
        sweep_extras(doc, sweep, len(rows))
    for kind in GRIDS:  # what was not run, below what was (never a "not run yet" above results)
        if kind not in c.sweeps:
            doc.missing(kind)
    doc.prompt("M5")


def sweep_extras(doc: Doc, sweep: Path, total: int) -> None:
    """A sweep's Pareto front (several objectives: optimization_results.yaml, pareto.png) and its mean ± std per
    configuration (seeds=N: summary_by_config.csv), where it has them."""
    results = (
        OmegaConf.load(sweep / "optimization_results.yaml") if (sweep / "optimization_results.yaml").is_file() else {}
    )
    solutions = results.get("solutions") if results else None
    if solutions:
        metric_names = list(results.get("metric_names") or [f"value_{i}" for i in range(len(solutions[0]["values"]))])
        doc.add(f"**{doc.t['pareto'].format(n=len(solutions), total=total)}**", "")
        doc.table(
            [doc.t["h_pareto"][0], *metric_names, doc.t["h_pareto"][1]],
            [
                (s.trial, *(f"{v:.3g}" for v in s["values"]), ", ".join(f"{k}={v}" for k, v in s.params.items()))
                for s in solutions
            ],
        )
        doc.figure(
            sweep / "pareto.png", f"pareto_{sweep.name}.png", doc.t["pareto"].format(n=len(solutions), total=total)
        )
    groups = sweep / "summary_by_config.csv"
    if groups.is_file():
        rows = csv_rows(groups)
        doc.add(f"**{doc.t['by_seed']}**", "")
        doc.table(
            doc.t["h_seeds"],
            [
                (
                    g["rank"],
                    g["configuration"],
                    g["n"],
                    f"{g3(_num(g['mean']))} ± {g3(_num(g['std']))}",
                    f"[{g3(_num(g['ci95_low']))}, {g3(_num(g['ci95_high']))}]",
                    doc.t["best"]
                    if g["rank"] == "1"
                    else {"True": doc.t["near_best"], "False": ""}.get(g["tied_with_best"], "n < 2"),
                )
                for g in rows
            ],
        )


def _num(text: str) -> float | None:
    """A CSV cell as a float; None where it is empty."""
    return float(text) if text not in ("", None) else None


def comparisons(c: Ctx) -> None:
    """M7: val top-1 curves of the lr_wd grid around its best job (LR at its wd, wd at its LR) and of the
    blocks_dropout grid."""
    doc, t = c.doc, c.t
    doc.h3("M7")
    if "lr_wd" in c.sweeps:
        jobs = expand([c.sweeps["lr_wd"]])
        rows = collect(c.sweeps["lr_wd"])
        best = next((r for r in rows if r.status == "ok"), rows[0] if rows else None)
        if best:
            same_wd = [j for j in jobs if j.config["optim"]["weight_decay"] == best.weight_decay]
            same_lr = [j for j in jobs if j.config["optim"]["lr"] == best.lr]
            for subset, label, name, what in (
                (
                    same_wd,
                    lambda r: f"lr={g3(r.config['optim']['lr'])}",
                    "compare_lr.png",
                    t["m7_lr"].format(wd=g3(best.weight_decay)),
                ),
                (
                    same_lr,
                    lambda r: f"wd={g3(r.config['optim']['weight_decay'])}",
                    "compare_wd.png",
                    t["m7_wd"].format(lr=g3(best.lr)),
                ),
            ):
                path = overlay(subset, names.VAL_ACC, doc.figures / name, what, label, t["val_acc"], t["epoch"])
                if path:
                    doc.figure(path, name, what)
    if "blocks_dropout" in c.sweeps:
        runs = expand([c.sweeps["blocks_dropout"]])
        out = doc.figures / "compare_blocks_dropout.png"
        path = overlay(runs, names.VAL_ACC, out, t["m7_bd"], None, t["val_acc"], t["epoch"])
        if path:
            doc.figure(path, "compare_blocks_dropout.png", t["m7_bd"])
    for kind in GRIDS:  # below the figures that were drawn
        if kind not in c.sweeps:
            doc.missing(kind)
    doc.prompt("M7")
