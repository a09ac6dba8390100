"""TensorBoard writer for one run: scalars, figures and HParams, all in the run's own event directory."""

from __future__ import annotations

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from .. import compat


class TBLogger:
    def __init__(self, log_dir: Path, purge_step: int | None = None):
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(str(self.log_dir), purge_step=purge_step)

    def scalars(self, values: dict, step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def figure(self, tag: str, fig, step: int = 0) -> None:
        self.writer.add_figure(tag, fig, step, close=False)

    def hparams(self, hparam_dict: dict, metric_dict: dict) -> None:
        """Written into this run's own directory (SummaryWriter.add_hparams would open a timestamped sub-folder)."""
        file_writer = compat.summary_file_writer(self.writer)
        for summary in hparams(hparam_dict, metric_dict):
            file_writer.add_summary(summary)
        self.scalars(metric_dict, 0)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
