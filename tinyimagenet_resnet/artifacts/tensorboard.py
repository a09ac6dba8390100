"""TensorBoard writer for one run: scalars, figures and HParams, all in the run's own event directory."""

from __future__ import annotations

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from .. import compat
from ..compared import GRID_COLUMNS
from . import tb_hparams as hp


class TBLogger:
    def __init__(self, log_dir: Path, purge_step: int | None = None):
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(str(self.log_dir), purge_step=purge_step)

    def scalars(self, values: dict, step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def figure(self, tag: str, fig, step: int = 0) -> None:
        self.writer.add_figure(tag, fig, step, close=False)

    def hparams(self, values: dict, metrics: dict, status: str, start_time: float, with_experiment: bool) -> None:
        """The run's HParams session (its values and end status) and its final metrics, in this run's own directory
        (SummaryWriter.add_hparams would open a timestamped sub-folder). `with_experiment`: also the columns, for a
        run outside a sweep (a sweep declares its own, with domains)."""
        file_writer = compat.summary_file_writer(self.writer)
        if with_experiment:
            columns = [hp.HParam(k, hp.kind_of(v), swept=k in GRID_COLUMNS) for k, v in values.items()]
            columns.append(hp.status_hparam())
            file_writer.add_summary(hp.experiment(columns, list(metrics)))
        for summary in hp.session({**values, "status": status}, status, start_time):
            file_writer.add_summary(summary)
        self.scalars(metrics, 0)

    def note(self, key: str, value: str) -> None:
        self.writer.add_text(key, value, 0)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, status: str | None = None) -> None:
        self.writer.close()
