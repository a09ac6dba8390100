"""Where a run's scalars, hyper-parameters, final metrics, figures and best checkpoint go: the `logger` config group.

`logger=tensorboard` (the default), `logger=csv`, `logger=mlflow`, or several at once (`logger=[tensorboard,mlflow]`).
Every task writes through one `Trackers` object, which hands each call to every configured tracker, so they all get
the same values. TensorBoard is `TBLogger` (artifacts/tensorboard.py); the others are here. MLflow is an optional
extra (`pip install -e ".[mlflow]"`), imported only when asked for."""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from ..errors import EnvironmentFault
from . import legacy
from .files import atomic_path, check_writable, write_json

log = logging.getLogger(__name__)


class Trackers:
    """Fans every call out to the configured trackers (same interface as each of them)."""

    def __init__(self, trackers: list):
        self.trackers = trackers

    def __getattr__(self, name):
        def call(*args, **kwargs):
            for t in self.trackers:
                getattr(t, name)(*args, **kwargs)

        return call


class CsvTracker:
    """`<run>/csv/`: metrics.csv (tag, step, value, wall time: every scalar, one line each), hparams.json (the
    hyper-parameters, status and final metrics, the best checkpoint) and figures/*.png. Plain files any tool reads."""

    def __init__(self, folder: Path, resumed_step: int | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "metrics.csv"
        rows = []
        if resumed_step is not None and path.is_file():  # a resumed run: drop what came after its checkpoint
            with open(path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.reader(f)][1:]
            rows = [r for r in rows if int(r[1]) <= resumed_step]
        self.file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - open for the run's lifetime
        self.writer = csv.writer(self.file)
        self.writer.writerow(["tag", "step", "value", "wall_time"])
        self.writer.writerows(rows)
        self.summary: dict = {}

    def scalars(self, values: dict, step: int) -> None:
        now = time.time()
        for tag, value in values.items():
            self.writer.writerow([tag, int(step), float(value), f"{now:.3f}"])

    def figure(self, tag: str, fig, step: int = 0) -> None:
        path = self.folder / "figures" / (tag.replace("/", "_") + ".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")

    def hparams(self, values: dict, metrics: dict, status: str, start_time: float, with_experiment: bool) -> None:
        self.summary.update(hparams=values, metrics=metrics, status=status)
        self.scalars(metrics, 0)

    def note(self, key: str, value: str) -> None:
        self.summary[key] = value

    def flush(self) -> None:
        self.file.flush()

    def close(self, status: str | None = None) -> None:
        if not self.file.closed:
            self.file.close()
        if self.summary:
            write_json(self.folder / "hparams.json", self.summary)


def mlflow_module():
    """mlflow, or the one-line error that names the extra."""
    try:
        import mlflow
    except ImportError:
        raise EnvironmentFault(
            'logger=mlflow: mlflow is not installed; install it with pip install -e ".[mlflow]" (or pick '
            "logger=tensorboard|csv)"
        ) from None
    return mlflow


def mlflow_uri(cfg_uri: str | None, run_dir: Path, sweep_dir: Path | None) -> str:
    """The tracking URI: the config's, else a SQLite store beside the run (in its sweep folder for a sweep job, in
    outputs/<date>/ for a single run)."""
    if cfg_uri:
        return str(cfg_uri)
    folder = Path(sweep_dir) if sweep_dir is not None else Path(run_dir).parent
    folder.mkdir(parents=True, exist_ok=True)
    return "sqlite:///" + str((folder / "mlflow.db").resolve()).replace("\\", "/")


MLFLOW_URIS = "null (SQLite beside the runs), sqlite:///<file>.db, http(s)://<server>, databricks, or a database URL"


def _sqlite_readable(path: Path) -> str | None:
    """Why an existing SQLite file cannot serve as a store (None when it can)."""
    try:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                return "not an SQLite database"
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            con.close()
    except (OSError, sqlite3.Error) as exc:
        return f"unreadable ({type(exc).__name__}: {str(exc)[:100]})"
    return None


def check_tracking_uri(uri: str | None, timeout_s: float = 5.0) -> None:
    """Refuse, before any work and creating nothing, a tracking URI MLflow will not serve: a scheme it does not
    know, a file store (MLflow 3 keeps it read-only, in maintenance mode), a SQLite file that is not a database or
    sits in a folder that cannot be written, a server that does not answer within `timeout_s`."""
    if not uri:
        return
    key = f"logger.mlflow.tracking_uri={uri!r}"
    scheme = urlparse(str(uri)).scheme.split("+")[0]
    if scheme in ("", "file") or len(scheme) == 1:  # a path (c:\ included) or file://
        raise EnvironmentFault(
            f"{key}: MLflow 3 no longer writes file stores (maintenance mode); allowed {MLFLOW_URIS}"
        )
    if scheme == "sqlite":
        path = Path(str(uri)[len("sqlite:///") :]).expanduser()
        if path.is_file() and (why := _sqlite_readable(path)):
            raise EnvironmentFault(f"{key}: {path} is {why}; point it at another file, or move that one away")
        check_writable(path.parent, "logger.mlflow.tracking_uri")
    elif scheme in ("http", "https"):
        try:
            urllib.request.urlopen(str(uri).rstrip("/") + "/health", timeout=timeout_s).close()
        except urllib.error.HTTPError:
            pass  # it answered (a server without /health, or one behind a proxy that wants a login)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EnvironmentFault(
                f"{key}: the server does not answer ({reason}); start it (mlflow server ...) or use {MLFLOW_URIS}"
            ) from None
    elif scheme not in ("databricks", "postgresql", "mysql", "mssql", "uc", "databricks-uc"):
        raise EnvironmentFault(f"{key}: MLflow does not know the scheme {scheme!r}; allowed {MLFLOW_URIS}")


def experiment_id(client, name: str, uri: str) -> str:
    """The experiment's id, created if new; with our SQLite default its artifacts (figures) go beside the database,
    not into ./mlruns of whatever folder the command ran in."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = Path(uri[len("sqlite:///") :]).with_name("mlflow-artifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


PARENT_FILE = "mlflow_parent.json"


def start_mlflow_parent(sweep_dir: Path, cfg_uri: str | None, experiment: str, name: str) -> None:
    """A sweep's parent run (its jobs are its children, grouped in the MLflow UI); its id in the sweep folder."""
    mlflow = mlflow_module()
    uri = mlflow_uri(cfg_uri, sweep_dir, sweep_dir)
    existing = json.loads((sweep_dir / PARENT_FILE).read_text()) if (sweep_dir / PARENT_FILE).is_file() else None
    if existing and existing.get("tracking_uri") == uri:
        return  # a re-run of the same sweep (a resumed Optuna study) keeps its parent
    client = mlflow.tracking.MlflowClient(uri)
    exp_id = experiment_id(client, experiment, uri)
    run = client.create_run(exp_id, run_name=name, tags={"tir.sweep_dir": str(sweep_dir)})
    client.set_terminated(run.info.run_id, "FINISHED")
    write_json(sweep_dir / PARENT_FILE, {"run_id": run.info.run_id, "tracking_uri": uri, "experiment": experiment})


class MlflowTracker:
    """One MLflow run per run of this package: params (the hyper-parameters), metrics per step, final metrics,
    figures as artifacts, the best checkpoint's path as a tag; a child of its sweep's parent run."""

    STATUS = {"ok": "FINISHED", "interrupted": "KILLED"}  # every other status: FAILED

    def __init__(self, run_dir: Path, name: str, cfg, sweep_dir: Path | None, resumed: bool):
        mlflow = mlflow_module()
        self.uri = mlflow_uri(cfg.tracking_uri, run_dir, sweep_dir)
        self.client = mlflow.tracking.MlflowClient(self.uri)
        exp_id = experiment_id(self.client, cfg.experiment, self.uri)
        id_file = Path(run_dir) / "mlflow_run.json"
        known = json.loads(id_file.read_text()) if resumed and id_file.is_file() else None
        if known and known.get("tracking_uri") == self.uri:  # a resumed run continues its MLflow run
            self.run_id = known["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            tags = {"tir.run_dir": str(Path(run_dir).resolve())}
            parent = Path(sweep_dir) / PARENT_FILE if sweep_dir is not None else None
            if parent is not None and parent.is_file():
                tags["mlflow.parentRunId"] = json.loads(parent.read_text())["run_id"]
            self.run_id = self.client.create_run(exp_id, run_name=name, tags=tags).info.run_id
            write_json(id_file, {"run_id": self.run_id, "tracking_uri": self.uri})
        self.closed = False

    def scalars(self, values: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(tag, float(v), now, int(step)) for tag, v in values.items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def figure(self, tag: str, fig, step: int = 0) -> None:
        self.client.log_figure(self.run_id, fig, f"figures/{tag.replace('/', '_')}.png")

    def hparams(self, values: dict, metrics: dict, status: str, start_time: float, with_experiment: bool) -> None:
        from mlflow.entities import Param

        params = [Param(k, str(v)) for k, v in values.items()]
        existing = self.client.get_run(self.run_id).data.params
        params = [p for p in params if p.key not in existing]  # a resumed run logged them already (same values)
        if params:
            self.client.log_batch(self.run_id, params=params)
        self.client.set_tag(self.run_id, "tir.status", status)
        self.scalars(metrics, 0)

    def note(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, f"tir.{key}", value)

    def flush(self) -> None:
        pass

    def close(self, status: str | None = None) -> None:
        if not self.closed:
            self.closed = True
            self.client.set_terminated(self.run_id, self.STATUS.get(status or "ok", "FAILED"))


def open_trackers(logger_cfg, tb_dir: Path, run_dir: Path, name: str, purge_step: int | None, sweep_dir: Path | None):
    """The trackers `logger` asks for (a run without the node, a 0.1.0 run's config: legacy.LOGGER_0_1_0)."""
    from .tensorboard import TBLogger  # lazy: torch's SummaryWriter costs 4 s; main's pre-flight imports this module

    chosen = [k for k, v in (logger_cfg or legacy.LOGGER_0_1_0).items() if v is not None]
    trackers = []
    for kind in chosen:
        if kind == "tensorboard":
            trackers.append(TBLogger(tb_dir, purge_step=purge_step))
        elif kind == "csv":
            trackers.append(CsvTracker(Path(run_dir) / "csv", resumed_step=purge_step))
        elif kind == "mlflow":
            trackers.append(MlflowTracker(run_dir, name, logger_cfg.mlflow, sweep_dir, purge_step is not None))
    if not trackers:
        log.warning("logger: no tracker chosen; metrics.json is the only record of this run")
    return Trackers(trackers)
