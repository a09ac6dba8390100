"""`tinyimagenet-report [--lang fr|en] [--out report] [--run KIND=DIR ...] [--sweep DIR ...]`

Builds `report/REPORT.md` and `report/figures/` following the course outline, from the run directories the other
tasks wrote. By default it takes the latest run of each kind under `outputs/` and `multirun/`; `--run KIND=DIR`
(KIND: inspect, baselines, overfit, lr_find, train, evaluate) and `--sweep DIR` (repeatable) pick them by path.
Missing runs give sections marked "not run yet", with the command to run. Judgement questions are left as marked
prompts carrying the measured facts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..artifacts.files import write_text
from ..artifacts.runs import is_run
from ..cli import UsageError, parser, run_tool
from ..config.kinds import RUN_KINDS
from .context import Ctx, ReportOptions
from .discovery import discover
from .document import Doc
from .sections import SECTIONS
from .text import TEXT


def build(cfg: ReportOptions) -> Path:
    """REPORT.md (and figures/) in cfg.out: the sections of `sections.SECTIONS`, in order."""
    out = Path(cfg.out)
    doc = Doc(out, cfg.lang)
    runs, sweeps = discover(cfg)
    ctx = Ctx(doc, cfg, runs, sweeps)
    doc.add(f"# {doc.t['title']}: {cfg.project or doc.t['project_title']}", "")
    for key, section in SECTIONS:
        doc.h2(key)
        section(ctx)
    return write_text(out / "REPORT.md", "\n".join(doc.lines) + "\n")


def main(argv=None) -> int:
    d = ReportOptions()
    p = parser("tinyimagenet-report", __doc__)
    p.add_argument("--lang", default=d.lang, choices=sorted(TEXT), help="report language (default en)")
    p.add_argument("--out", default=d.out, help="output folder (default report/)")
    p.add_argument("--outputs", default=d.outputs, help="where single runs are found (default outputs/)")
    p.add_argument("--multirun", default=d.multirun, help="where sweeps are found (default multirun/)")
    p.add_argument("--project", default=d.project, help="the project title (default: the course project's)")
    p.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="KIND=DIR",
        help=f"use this run directory for KIND ({'|'.join(RUN_KINDS)}); repeatable",
    )
    p.add_argument("--sweep", action="append", default=[], metavar="DIR", help="use this sweep directory; repeatable")
    args = p.parse_args(argv)
    runs = {}
    for item in args.run:
        kind, _, path = item.partition("=")
        if kind not in RUN_KINDS or not path:
            raise UsageError(f"--run={item!r}: allowed KIND=DIR with KIND one of {'|'.join(RUN_KINDS)}")
        if not is_run(Path(path)):
            raise UsageError(f"--run {kind}={path!r}: not a run directory (no .hydra/config.yaml)")
        runs[kind] = path
    for sweep in args.sweep:
        if not Path(sweep).is_dir():
            raise UsageError(f"--sweep={sweep!r}: no such folder; allowed: a multirun/<date>/<time> folder")
    cfg = ReportOptions(args.lang, args.out, args.outputs, args.multirun, args.project, runs, list(args.sweep))
    path = build(cfg)
    print(f"wrote {path} and {path.parent / 'figures'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
