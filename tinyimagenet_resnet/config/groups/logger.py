"""The `logger` group: one node per chosen tracker (`logger=[tensorboard,mlflow]` chooses two)."""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import spec


@dataclass
class TensorBoardLoggerConfig:
    """`logger=tensorboard`: events in the run directory (`<task>-<run name>/`)."""


@dataclass
class CsvLoggerConfig:
    """`logger=csv`: `<run>/csv/metrics.csv`, hparams.json and figures/."""


@dataclass
class MlflowLoggerConfig:
    """`logger=mlflow` (pip install -e ".[mlflow]")."""

    tracking_uri: str | None = spec("null (a SQLite store beside the runs) or any MLflow tracking URI")
    experiment: str = spec("an MLflow experiment name")


@dataclass
class LoggerConfig:
    """The `logger` group: one node per chosen tracker (`logger=[tensorboard,mlflow]` chooses two)."""

    tensorboard: TensorBoardLoggerConfig | None = None
    csv: CsvLoggerConfig | None = None
    mlflow: MlflowLoggerConfig | None = None
