"""Optuna storages that several sweep workers can share, and the lock that keeps their trial count exact.

`hydra.sweeper.storage` accepts
- an SQLAlchemy URL: `sqlite:///multirun/optuna/study.db` (one machine), `postgresql://user:pw@host:5432/db`
  (a cluster; needs the `postgres` extra for the driver);
- `journal:<path>`: Optuna's journal file storage, for workers on a shared filesystem without a database server.

Every storage records heartbeats, so the trials of a killed worker are detected (optuna's RDBStorage does it
natively; `_HeartbeatJournalStorage` adds it to the journal storage).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .. import compat
from ..artifacts.files import check_writable, file_lock
from ..errors import EnvironmentFault

log = logging.getLogger(__name__)

JOURNAL = "journal:"
HEARTBEAT_S = 30  # seconds between two heartbeats of a running trial, for an app without this package's `optuna` node
GRACE_BEATS = 3  # heartbeats a trial may miss before it counts as interrupted (its grace period, by default)


def default_grace(heartbeat_s: int, grace_s: int | None = None) -> int:
    """Seconds without a heartbeat after which a running trial is stale: `grace_s`, else GRACE_BEATS heartbeats."""
    return int(grace_s or GRACE_BEATS * heartbeat_s)


def _local_path(url: str) -> Path | None:
    """The file behind a sqlite or journal storage (None for a database server)."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :]).expanduser()
    if url.startswith(JOURNAL):
        return Path(url[len(JOURNAL) :]).expanduser()
    return None


def redacted(url) -> str | None:
    """A storage URL fit for logs and result files: the password of a database URL replaced by ***."""
    if url is None:
        return None
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", str(url))


STORAGES = "sqlite:///<file>.db, journal:<file>, postgresql://user:pw@host:5432/db (the postgres extra), or null"


def check_storage(url: str | None, timeout_s: int = 5) -> None:
    """Refuse, before any job and creating nothing, an Optuna storage that cannot be opened: a file in a folder
    that cannot be written, a file that is not a database (sqlite) or not a journal, a database driver that is not
    installed, a server that does not answer within `timeout_s`. One line naming the (redacted) URL and what to do."""
    if url is None:
        return
    key = f"hydra.sweeper.storage={redacted(url)!r}"
    path = _local_path(url)
    if path is not None:
        _check_file(url, path, key)
    else:
        _check_server(url, key, timeout_s)


def _check_file(url: str, path: Path, key: str) -> None:
    """A sqlite or journal storage: a file of its kind (or none yet) in a folder that can be written."""
    if path.is_dir():
        raise EnvironmentFault(f"{key}: {path} is a folder; allowed {STORAGES}")
    if path.is_file() and url.startswith("sqlite:///"):
        with open(path, "rb") as f:
            head = f.read(16)
        if head and head != b"SQLite format 3\x00":
            raise EnvironmentFault(f"{key}: {path} is not an SQLite database; choose another file or study")
    if path.is_file() and url.startswith(JOURNAL) and path.stat().st_size:
        with open(path, "rb") as f:
            first = f.readline(4096).strip()
        if not first.startswith(b"{"):
            raise EnvironmentFault(f"{key}: {path} is not an Optuna journal; choose another file or study")
    check_writable(path.parent, "hydra.sweeper.storage")


def _check_server(url: str, key: str, timeout_s: int) -> None:
    """A database server: its driver installed, the URL well formed, the server answering within `timeout_s`."""
    import sqlalchemy  # lazy: SQLAlchemy costs 0.6 s of start-up, paid only by a command whose storage is a server

    try:
        timeout = {"connect_timeout": timeout_s} if url.startswith(("postgresql", "mysql")) else {}
        engine = sqlalchemy.create_engine(url, connect_args=timeout)
    except (ImportError, sqlalchemy.exc.NoSuchModuleError) as exc:
        extra = ' (pip install -e ".[postgres]")' if url.startswith("postgresql") else ""
        raise EnvironmentFault(
            f"{key}: its database driver is not installed ({exc}){extra}; allowed {STORAGES}"
        ) from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise EnvironmentFault(f"{key}: not a storage URL ({str(exc)[:120]}); allowed {STORAGES}") from None
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = " ".join(str(getattr(exc, "orig", exc)).split())[:160]
        raise EnvironmentFault(f"{key}: cannot connect ({reason}); check the server, or use {STORAGES}") from None
    finally:
        engine.dispose()


def make_storage(
    url: str | None, heartbeat_s: int | None = None, grace_s: int | None = None, stale_callback: Callable | None = None
):
    """The storage behind `url`, with heartbeats every `heartbeat_s` seconds when given."""
    import optuna  # lazy: optuna costs 0.5 s of start-up; a training run imports this module and opens no study

    if url is None:
        return None
    path = _local_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    beat = {}
    if heartbeat_s:
        beat = {
            "heartbeat_interval": int(heartbeat_s),
            "grace_period": default_grace(heartbeat_s, grace_s),
            "heartbeat_stale_trial_callback": stale_callback,
        }
    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock  # lazy: as optuna above

        # The open(O_EXCL) lock also works on NFS, where the default symlink lock may not.
        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        return _journal_heartbeat_storage()(backend, **beat)
    if url.startswith("postgresql"):
        # Workers started together on an empty database would race to create optuna's tables.
        import sqlalchemy  # lazy: SQLAlchemy costs 0.6 s of start-up, paid only with a database server

        engine = sqlalchemy.create_engine(url)
        try:
            with _pg_advisory_lock(engine, _pg_key("schema")):
                return optuna.storages.RDBStorage(url, **beat)
        finally:
            engine.dispose()
    return optuna.storages.RDBStorage(url, **beat)


@functools.cache
def _journal_heartbeat_storage():
    """The class, built on first use so that optuna is imported only when a sweep needs it."""
    from optuna.storages.journal import JournalStorage  # lazy: optuna costs 0.5 s of start-up (see the docstring)
    from optuna.trial import TrialState  # lazy: as the line above

    class _HeartbeatJournalStorage(JournalStorage, compat.optuna_base_heartbeat()):
        """Optuna's journal storage plus heartbeats (a system attribute with the time of the last beat), so that
        `optuna.storages.fail_stale_trials` finds the trials of a killed worker as it does with RDBStorage.
        Workers on several machines compare their clocks with the beat: keep them NTP-synchronised."""

        def __init__(
            self,
            backend,
            heartbeat_interval: int | None = None,
            grace_period: int | None = None,
            heartbeat_stale_trial_callback: Callable | None = None,
        ):
            super().__init__(backend)
            self.heartbeat_interval = heartbeat_interval
            self.grace_period = default_grace(heartbeat_interval or 0, grace_period)
            self.stale_callback = heartbeat_stale_trial_callback

        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, "heartbeat", time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()
            stale = []
            for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                last = t.system_attrs.get("heartbeat")
                if last is None and t.datetime_start is not None:
                    last = t.datetime_start.timestamp()
                if last is not None and now - last > self.grace_period:
                    stale.append(compat.trial_id(t))
            return stale

        def get_heartbeat_interval(self) -> int | None:
            return self.heartbeat_interval

        def get_heartbeat_stale_trial_callback(self):
            return self.stale_callback

    return _HeartbeatJournalStorage


def _pg_key(name: str) -> int:
    return int.from_bytes(hashlib.sha1(f"tinyimagenet_resnet/{name}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _pg_advisory_lock(engine, key: int) -> Iterator[None]:
    from sqlalchemy import text  # lazy: SQLAlchemy costs 0.6 s of start-up, paid only with a database server

    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


_warned: set[str] = set()


def study_lock(storage, url: str, study_name: str):
    """Held while a worker counts the study's trials and asks for new ones, so that concurrent workers never
    together start more than `n_trials`: a file lock beside a sqlite/journal file, a PostgreSQL advisory lock; none
    for an in-memory study (storage null: one worker)."""
    if url is None:
        return contextlib.nullcontext()
    path = _local_path(url)
    if path is not None:
        # not `<file>.lock`: that name is the journal backend's own lock, which only has to exist to be taken
        return file_lock(path.with_name(path.name + ".ask-lock"))
    if url.startswith("postgresql"):
        return _pg_advisory_lock(storage.engine, _pg_key(f"study/{study_name}"))
    if url not in _warned:
        _warned.add(url)
        log.warning(
            "optuna storage %s: no cross-worker lock for this database; concurrent workers may run up to "
            "(workers - 1) trials more than n_trials (locks exist for sqlite, postgresql and journal:)",
            url.split("@")[-1],
        )
    return contextlib.nullcontext()
