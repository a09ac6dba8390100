"""TensorBoard writer for one run: scalars, images and HParams, all in the run's own event directory."""

from __future__ import annotations

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams


class TBLogger:
    def __init__(self, log_dir: Path, purge_step: int | None = None):
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(str(self.log_dir), purge_step=purge_step)

    def scalars(self, values: dict, step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, img, step: int = 0, dataformats: str = "CHW") -> None:
        self.writer.add_image(tag, img, step, dataformats=dataformats)

    def figure(self, tag: str, fig, step: int = 0) -> None:
        self.writer.add_figure(tag, fig, step, close=False)

    def hparams(self, hparam_dict: dict, metric_dict: dict) -> None:
        """Written into this run's own directory (SummaryWriter.add_hparams would open a timestamped sub-folder)."""
        exp, ssi, sei = hparams(hparam_dict, metric_dict)
        fw = self.writer._get_file_writer()
        for summary in (exp, ssi, sei):
            fw.add_summary(summary)
        for k, v in metric_dict.items():
            self.writer.add_scalar(k, v, 0)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
