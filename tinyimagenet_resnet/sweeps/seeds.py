"""Several seeds per configuration (`seeds=N`): the mean ± std of every configuration over its seeds, a 95%
confidence interval of the mean, and which configurations the sweep cannot tell apart from the best."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from ..artifacts.files import write_csv
from ..artifacts.records import SummaryRow

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


def config_key(row: SummaryRow) -> tuple:
    """A configuration: the job's overrides except its seed."""
    return tuple(sorted((k, str(v)) for k, v in row.params.items() if k != "seed"))


def objective(row: SummaryRow) -> float | None:
    if row.status != "ok":
        return None
    return row.values[0] if row.values else row.best_val_top1


def by_config(rows: list[SummaryRow], maximize: bool = True) -> list[dict]:
    """One entry per configuration, best mean first: n, mean, std, the 95% interval of the mean, the seeds and
    jobs, and `tied`: its interval overlaps the best configuration's (the sweep cannot tell them apart)."""
    groups: dict[tuple, list[SummaryRow]] = {}
    for r in rows:
        groups.setdefault(config_key(r), []).append(r)
    out = []
    for members in groups.values():
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
    best = out[0] if out and out[0]["ci95_low"] is not None else None
    for i, g in enumerate(out, 1):
        g["rank"] = i
        g["tied_with_best"] = (
            best is not None
            and g["ci95_low"] is not None
            and g["ci95_low"] <= best["ci95_high"]
            and g["ci95_high"] >= best["ci95_low"]
        )
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
        mark = "best" if g["rank"] == 1 else ("≈ best" if g["tied_with_best"] else "worse")
        lines.append(
            f"| {g['rank']} | `{g['configuration']}` | {g['n']} | {spread} | {interval} | {mark} | {g['seeds']} |"
        )
    tied = [g["configuration"] for g in groups[1:] if g["tied_with_best"]]
    if groups and groups[0]["ci95_low"] is not None:
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
