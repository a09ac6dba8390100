"""Several seeds per configuration (`seeds=N`): the mean ± std of every configuration over its seeds, a 95%
confidence interval of the mean, and which configurations the sweep cannot tell apart from the best."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from ..artifacts.files import write_csv
from ..artifacts.summary_row import SummaryRow

# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (then the normal 1.96)
_T95 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t95(df: int) -> float:
    return _T95[df - 1] if 1 <= df <= len(_T95) else 1.96


def differing(rows: list[SummaryRow], keys) -> list[str]:
    """The `keys` whose value differs between the jobs that have one (a row rebuilt from a study for another
    worker's trial has only the trial's parameters), in their order."""
    return [k for k in keys if len({str(r.params[k]) for r in rows if k in r.params}) > 1]


def varying_keys(rows: list[SummaryRow]) -> list[str]:
    """The parameters that tell configurations apart: those that differ, except the seed."""
    return differing(rows, sorted({k for r in rows for k in r.params if k != "seed"}))


def config_key(row: SummaryRow, keys: list[str]) -> tuple:
    return tuple((k, str(row.params[k])) for k in keys if k in row.params)


def objective(row: SummaryRow) -> float | None:
    if row.status != "ok":
        return None
    return row.values[0] if row.values else row.best_val_top1


def overlap(a: dict, b: dict) -> bool | None:
    """Whether two configurations' 95% intervals overlap; None when either has fewer than two values."""
    if a["ci95_low"] is None or b["ci95_low"] is None:
        return None
    return a["ci95_low"] <= b["ci95_high"] and a["ci95_high"] >= b["ci95_low"]


def by_config(rows: list[SummaryRow], maximize: bool = True) -> list[dict]:
    """One entry per configuration, best mean first: n (the seeds that finished), mean, std, the 95% interval of
    the mean, those seeds and jobs, and `tied_with_best`: its interval overlaps the best configuration's (the sweep
    cannot tell them apart); None when either has fewer than two finished seeds (nothing can be said)."""
    keys = varying_keys(rows)
    groups: dict[tuple, list[SummaryRow]] = {}
    for r in rows:
        groups.setdefault(config_key(r, keys), []).append(r)
    out = []
    for members in groups.values():
        members = [r for r in members if objective(r) is not None] or members
        vals = [v for r in members if (v := objective(r)) is not None]
        n = len(vals)
        mean = statistics.fmean(vals) if vals else None
        std = statistics.stdev(vals) if n > 1 else None
        half = t95(n - 1) * std / math.sqrt(n) if std is not None else None
        out.append(
            {
                "configuration": members[0].run_name,
                "n": n,
                "mean": mean,
                "std": std,
                "ci95_low": mean - half if half is not None else None,
                "ci95_high": mean + half if half is not None else None,
                "seeds": " ".join(str(r.seed) for r in members),
                "jobs": " ".join(r.job for r in members),
            }
        )
    sign = -1.0 if maximize else 1.0
    out.sort(key=lambda g: (g["mean"] is None, sign * (g["mean"] or 0.0)))
    for i, g in enumerate(out, 1):
        g["rank"] = i
        g["tied_with_best"] = overlap(g, out[0]) if i > 1 else None
    return out


COLUMNS = ["rank", "configuration", "n", "mean", "std", "ci95_low", "ci95_high", "tied_with_best", "seeds", "jobs"]


def seed_section(sweep_dir: Path, rows: list[SummaryRow], directions) -> list[str]:
    """summary_by_config.csv and its Markdown section, when some configuration ran with more than one seed; else
    nothing (and no file)."""
    groups = by_config(rows, maximize=directions[0] == "maximize")
    if not any(g["n"] > 1 for g in groups):
        return []
    write_csv(Path(sweep_dir) / "summary_by_config.csv", COLUMNS, groups)

    def f(v):
        return "–" if v is None else f"{v:.4f}"

    lines = [
        "",
        "## By configuration, over seeds",
        "",
        "Mean ± std of the objective over each configuration's seeds, best mean first; the 95% interval is the "
        "mean's (Student's t). `≈ best`: its interval overlaps the best configuration's, so this sweep cannot "
        "tell the two apart.",
        "",
        "| rank | configuration | n | mean ± std | 95% interval | vs best | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in groups:
        spread = f"{f(g['mean'])} ± {f(g['std'])}"
        interval = f"[{f(g['ci95_low'])}, {f(g['ci95_high'])}]"
        mark = {True: "≈ best", False: "worse", None: "n < 2: cannot tell"}[g["tied_with_best"]]
        mark = "best" if g["rank"] == 1 else mark
        lines.append(
            f"| {g['rank']} | `{g['configuration']}` | {g['n']} | {spread} | {interval} | {mark} | {g['seeds']} |"
        )
    tied = [g["configuration"] for g in groups[1:] if g["tied_with_best"]]
    if groups and groups[0]["ci95_low"] is None:
        lines += [
            "",
            f"The best mean (`{groups[0]['configuration']}`) comes from fewer than two finished seeds: no "
            "configuration can be called better or worse than it.",
        ]
    elif groups:
        lines += [
            "",
            (
                f"Not distinguishable from the best (`{groups[0]['configuration']}`): "
                + ", ".join(f"`{t}`" for t in tied)
                + ". More seeds or longer runs would be needed to rank them."
            )
            if tied
            else f"`{groups[0]['configuration']}` is ahead of every other configuration beyond the 95% intervals.",
        ]
    return lines
