"""What a report is built from: the user's options, the kinds of runs and sweeps it has sections for, and `Ctx`,
what every section function gets (the document, the options, the runs found)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts.records import InspectRecord
from ..artifacts.runs import Run
from .document import Doc


@dataclass
class ReportOptions:
    lang: str = "en"
    out: str = "report"
    outputs: str = "outputs"
    multirun: str = "multirun"
    project: str | None = None  # None: the language's title of the course project
    runs: dict = field(default_factory=dict)  # kind -> run directory, chosen by the user
    sweeps: list = field(default_factory=list)  # sweep directories, chosen by the user
    author: str | None = None  # section 0 (None: a prompt to fill in)
    repo: str | None = None
    protocol: dict | None = None  # task=protocol's state: which choice came from which step
    discover: bool = True  # False: only the runs and sweeps given here (no search of outputs/ and multirun/)


@dataclass
class Ctx:
    doc: Doc
    opts: ReportOptions
    runs: dict[str, Run]  # kind -> run
    sweeps: dict[str, Path]  # sweep kind -> sweep directory

    @property
    def t(self) -> dict:
        return self.doc.t

    def run(self, kind: str) -> Run | None:
        return self.runs.get(kind)

    @property
    def ref_cfg(self) -> dict | None:
        ref = self.run("train") or self.run("inspect") or self.run("lr_find") or self.run("baselines")
        return ref.config if ref else None

    @property
    def inspect_record(self) -> InspectRecord | None:
        ins = self.run("inspect")
        return ins.read(InspectRecord) if ins else None

    def yes(self, flag) -> str:
        return self.t["yes"] if flag else self.t["no"]

    def found(self, kind: str, record, has=lambda rec: True):
        """(run, its record) of a kind of run that wrote one, cited as the section's source; else None, and the
        section says it was not run yet, with the command."""
        run = self.run(kind)
        rec = run.read(record) if run else None
        if not rec or not has(rec):
            self.doc.missing(kind)
            return None
        self.doc.use(run)
        return run, rec
