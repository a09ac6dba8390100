"""Reading finished runs back: run/sweep directories, their configs and overrides, records and TensorBoard scalars."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import yaml

from . import legacy
from .records import EvalMetrics, R, TrainMetrics, read_metrics


@dataclass
class Run:
    path: Path

    @property
    def name(self) -> str:
        f = self.path / "run_name.txt"
        return f.read_text().strip() if f.is_file() else self.path.name

    @cached_property
    def config(self) -> dict:
        return yaml.safe_load((self.path / ".hydra" / "config.yaml").read_text())

    @property
    def overrides(self) -> list[str]:
        f = self.path / ".hydra" / "overrides.yaml"
        return (yaml.safe_load(f.read_text()) or []) if f.is_file() else []

    @property
    def choices(self) -> dict:
        f = self.path / ".hydra" / "hydra.yaml"
        return (
            (yaml.safe_load(f.read_text()) or {}).get("hydra", {}).get("runtime", {}).get("choices", {})
            if f.is_file()
            else {}
        )

    def read(self, record: type[R]) -> R | None:
        """One of the run's JSON records (artifacts.records), or None when the run did not write it."""
        return record.read(self.path)

    @property
    def metrics(self) -> TrainMetrics | EvalMetrics | None:
        return read_metrics(self.path)

    @property
    def event_dir(self) -> Path | None:
        """The folder of the run's TensorBoard events: `<run>/<name>/` (0.1.0 runs: legacy.event_dirs)."""
        dirs = sorted({p.parent for p in self.path.glob("*/events.out.tfevents.*")})
        dirs = dirs or legacy.event_dirs(self.path)
        return dirs[0] if dirs else None

    @cached_property
    def _events(self):
        """The run's event files, read once however many tags are asked for."""
        # lazy: tensorboard's event reader costs 1 s; only the figures that plot a run's scalars read its events
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        logging.getLogger("tensorboard").setLevel(logging.WARNING)  # its INFO lines ("No path found after ...")

        if self.event_dir is None:
            return None
        acc = EventAccumulator(str(self.event_dir), size_guidance={"scalars": 0})
        acc.Reload()
        return acc

    def scalars(self, tag: str) -> tuple[list, list]:
        """(steps, values) of one TensorBoard tag of this run, read from its event files."""
        acc = self._events
        if acc is None or tag not in acc.Tags()["scalars"]:
            return [], []
        events = acc.Scalars(tag)
        return [e.step for e in events], [e.value for e in events]


def is_run(path: Path) -> bool:
    return (path / ".hydra" / "config.yaml").is_file()


def job_dirs(sweep: Path) -> list[Path]:
    """The job directories of a sweep directory, in job order (0, 1, ..., 10)."""
    return sorted((j for j in Path(sweep).iterdir() if j.is_dir() and is_run(j)), key=lambda j: (len(j.name), j.name))


def expand(paths) -> list[Run]:
    """Run directories, or sweep directories (their numbered job directories), in order."""
    runs = []
    for p in map(Path, paths):
        if is_run(p):
            runs.append(Run(p))
        elif p.is_dir():
            runs.extend(Run(j) for j in job_dirs(p))
    return runs
