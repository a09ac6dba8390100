"""The report being written: Markdown lines in the language's typography, the figures it copies, the runs it cites,
and the command it shows for a kind of run that is missing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..artifacts.runs import Run
from ..config.kinds import COMMAND
from .text import TEXT

HOW = {
    "inspect": f"{COMMAND} task=inspect data.path=<data>",
    "baselines": f"{COMMAND} task=baselines data.path=<data>",
    "overfit": f"{COMMAND} experiment=overfit_small data.path=<data>",
    "lr_find": f"{COMMAND} task=lr_find data.path=<data>",
    "lr_wd": f"{COMMAND} sweep=lr_wd data.path=<data>",
    "blocks_dropout": f"{COMMAND} sweep=blocks_dropout data.path=<data> optim.lr=<lr> optim.weight_decay=<wd>",
    "train": f"{COMMAND} data.path=<data> optim.lr=<lr> optim.weight_decay=<wd> model/blocks=<b> model/dropout=<p>",
    "evaluate": f"{COMMAND} task=evaluate ckpt_path=<train run>/checkpoints/best.ckpt data.path=<data>",
}

NNBSP, NBSP = "\u202f", "\u00a0"  # French typography: a narrow space groups thousands, a no-break space before ":"
_CODE = re.compile(r"(`[^`]*`|<sub>.*?</sub>|\]\([^)]*\))")  # inline code, source lines, link targets: untouched
# a number of prose: not inside a word, a key=value, a path, a version (2.14.1), a list ([64,128,256]), a range
# (1e-3, top-1), scientific notation (3.00e-03); a sentence's final period is not a decimal point
_NUMBER = re.compile(r"(?<![\w.,=/:\[])(?<!\w-)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w=/\]]|[.,]\d)")
_PERCENT = re.compile(r"(\d)%")
_COLON = re.compile(r"(?<=[^\s:/])\s?:(?=\s|\*|$)")


def g3(x) -> str:
    """A float with 3 significant figures (the precision of run names); '–' for none."""
    if x is None:
        return "–"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def french_number(m: re.Match) -> str:
    whole, decimals = m.group(1).replace(",", NNBSP), m.group(2)
    return f"{whole},{decimals}" if decimals is not None else whole


def localize(line: str, lang: str) -> str:
    """A line of the report in the language's typography: in French, `187,608` becomes 187 608 (narrow space),
    `0.00724` becomes 0,00724, `12%` 12 %, and a colon gets its no-break space; code, paths, config values (`a=0.1`,
    `lr=0.001_wd`), versions (2.14.1) and the source lines are left as they are."""
    if lang != "fr" or line.startswith(("```", "    ")):
        return line
    parts = _CODE.split(line)
    for i in range(0, len(parts), 2):  # the text between code spans
        text = _NUMBER.sub(french_number, parts[i])
        text = _PERCENT.sub(rf"\1{NNBSP}%", text)
        parts[i] = _COLON.sub(f"{NBSP}:", text)
    return "".join(parts)


class Doc:
    """The Markdown lines of a report in one language, with its figures folder and the runs it cited."""

    def __init__(self, out: Path, lang: str):
        self.out, self.t, self.lines, self.lang = out, TEXT[lang], [], lang
        self.figures = out / "figures"
        self.figures.mkdir(parents=True, exist_ok=True)
        self.used_runs: list[Run] = []
        self._code = False  # inside a ``` block

    def add(self, *lines: object) -> None:
        for line in lines:
            if str(line).startswith("```"):
                self._code = not self._code
                self.lines.append(line)
            else:
                self.lines.append(line if self._code else localize(str(line), self.lang))

    def num(self, x: float) -> str:
        """An integer as this language writes it: 4,000 / 4 000."""
        return localize(f"{int(x):,}", self.lang)

    def h2(self, key: str) -> None:
        self.add("", f"## {self.t[key]}", "")

    def h3(self, qid: str) -> None:
        self.add("", f"### {qid}. {self.t[qid]}", "")

    def table(self, header: list[str], rows) -> None:
        self.add("| " + " | ".join(header) + " |", "|" + "---|" * len(header))
        self.add(*("| " + " | ".join(str(c) for c in row) + " |" for row in rows))
        self.add("")

    def figure(self, src: Path | None, name: str, caption: str) -> None:
        if src is None or not Path(src).is_file():
            return
        dst = self.figures / name
        if Path(src).resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        self.add(f"![{caption}](figures/{name})", f"*{caption}*", "")

    def prompt(self, qid: str, facts: str = "") -> None:
        self.add(
            f"> ✏️ **{self.t['fill']} ({qid}):** {self.t['q_' + qid]}"
            + (f" — *{self.t['measured']}: {facts}*" if facts else ""),
            "",
        )

    def missing(self, kind: str) -> None:
        self.add(f"*{self.t['not_run']}* `{HOW[kind]}`", "")

    def use(self, run: Run) -> None:
        self.used_runs.append(run)
        self.add(f"<sub>{self.t['source']}: `{run.path}`</sub>", "")
