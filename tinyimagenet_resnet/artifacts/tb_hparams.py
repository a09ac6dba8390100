"""TensorBoard HParams records, built from the plugin's own protocol buffers (torch's `add_hparams` writes an
experiment per run, every hyper-parameter as a number or string without a domain, and every session as a success).

- each run writes a session: its hyper-parameters (booleans as booleans) and its end status (a pruned, failed or
  diverged run is not a success; `status` is also a discrete hyper-parameter, so the table can filter on it);
- a sweep writes ONE experiment into its own folder: the swept hyper-parameters, marked as differing (TensorBoard
  sorts columns by "differs", then by name, and its table shows the first few), with their domains (the values of a
  grid or of a categorical distribution, the interval of a float distribution), then the fixed ones, then the
  metrics. A single run writes its own experiment (the same columns, without domains; the course's compared ones,
  lr, weight_decay, blocks and dropout, marked as differing so that they are the ones shown).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

from .. import compat

STATUSES = ("ok", "pruned", "failed", "diverged", "interrupted", "running")
_TB_STATUS = {"ok": "STATUS_SUCCESS", "running": "STATUS_RUNNING"}  # every other status is a failure


@dataclass
class HParam:
    """One column of the HParams table: `values` for a discrete domain, `interval` (min, max) for a float one."""

    name: str
    kind: str  # float | string | bool
    values: list | None = None
    interval: tuple[float, float] | None = None
    description: str = ""
    swept: bool = False  # TensorBoard lists columns whose values differ first (then by name), up to a limit

    def info(self) -> api_pb2.HParamInfo:
        kinds = {"float": "DATA_TYPE_FLOAT64", "string": "DATA_TYPE_STRING", "bool": "DATA_TYPE_BOOL"}
        info = api_pb2.HParamInfo(
            name=self.name,
            type=api_pb2.DataType.Value(kinds[self.kind]),
            description=self.description,
            differs=self.swept,
        )
        if self.interval is not None:
            info.domain_interval.min_value, info.domain_interval.max_value = map(float, self.interval)
        elif self.values is not None:
            info.domain_discrete.extend([_plain(v) for v in self.values])
        return info


def kind_of(value) -> str:
    if isinstance(value, bool):
        return "bool"
    return "float" if isinstance(value, (int, float)) else "string"


def _plain(v):
    """A domain value as protobuf's ListValue takes it: bool, float or str."""
    if isinstance(v, bool):
        return v
    return float(v) if isinstance(v, (int, float)) else str(v)


def _summary(tag: str, **plugin_data) -> Summary:
    content = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **plugin_data)
    smd = SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString())
    )
    return Summary(value=[Summary.Value(tag=tag, metadata=smd)])


def experiment(hparams: list[HParam], metrics: list[str], description: str = "") -> Summary:
    exp = api_pb2.Experiment(
        description=description,
        time_created_secs=time.time(),
        hparam_infos=[h.info() for h in hparams],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in metrics],
    )
    return _summary(metadata.EXPERIMENT_TAG, experiment=exp)


def session(values: dict, status: str, start_time: float | None = None) -> list[Summary]:
    """The session start (hyper-parameter values) and end (status) of one run."""
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=start_time or time.time())
    for k, v in values.items():
        if isinstance(v, bool):
            start.hparams[k].bool_value = v
        elif isinstance(v, (int, float)):
            start.hparams[k].number_value = float(v)
        else:
            start.hparams[k].string_value = str(v)
    end = plugin_data_pb2.SessionEndInfo(
        status=api_pb2.Status.Value(_TB_STATUS.get(status, "STATUS_FAILURE")), end_time_secs=time.time()
    )
    return [
        _summary(metadata.SESSION_START_INFO_TAG, session_start_info=start),
        _summary(metadata.SESSION_END_INFO_TAG, session_end_info=end),
    ]


def status_hparam() -> HParam:
    """How the run ended, marked as differing so that TensorBoard shows it among the first columns."""
    return HParam("status", "string", values=list(STATUSES), description="how the run ended", swept=True)


def write_experiment(folder: Path, hparams: list[HParam], metrics: list[str], description: str = "") -> None:
    """The sweep's experiment, in an event file of the sweep folder itself (TensorBoard reads the first experiment it
    finds, so a folder of sweeps shows one of them). A resumed sweep (the same settings: another grid or study is
    refused before) keeps the file its first run wrote."""
    if any(Path(folder).glob("events.out.tfevents.*")):
        return
    from torch.utils.tensorboard import SummaryWriter  # lazy: torch costs 4 s; config.hparams imports this module

    writer = SummaryWriter(str(folder))
    try:
        compat.summary_file_writer(writer).add_summary(experiment(hparams, metrics, description))
    finally:
        writer.close()
