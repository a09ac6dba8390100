"""The sweeper's heartbeat: a thread that records a beat for every trial in flight, so that the trials of a killed
sweep are found stale after their grace period (any launcher: the beat comes from the sweeper, not the jobs)."""

from __future__ import annotations

import threading

from .. import compat


class Heartbeat:
    """Beats every `interval_s` seconds for the tracked trials until `stop()`, or the end of its `with` block:

    with Heartbeat(storage, 30) as heartbeat:
        heartbeat.track(trials)  # beats at once, then every 30 s
        ...
        heartbeat.untrack(trials)  # their jobs ended
    """

    def __init__(self, storage, interval_s: float):
        self.storage, self.interval = storage, interval_s
        self.trial_ids: set[int] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.enabled = storage is not None and storage.get_heartbeat_interval() is not None
        self.thread = threading.Thread(target=self._beat, daemon=True, name="optuna-heartbeat")
        if self.enabled:
            self.thread.start()

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _record(self) -> None:
        with self.lock:
            for trial_id in self.trial_ids:
                self.storage.record_heartbeat(trial_id)

    def _beat(self) -> None:
        while not self.stopped.wait(self.interval):
            self._record()

    def stop(self) -> None:
        """End the thread (it beats no more once this returns)."""
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()

    def track(self, trials) -> None:
        with self.lock:
            self.trial_ids |= {compat.trial_id(t) for t in trials}
        if self.enabled:
            self._record()

    def untrack(self, trials) -> None:
        with self.lock:
            self.trial_ids -= {compat.trial_id(t) for t in trials}
