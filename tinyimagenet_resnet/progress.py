"""Progress of long work (training, validation, the LR range test, decoding the cache, evaluation): a tqdm bar on a
terminal, else one log line every `every_s` seconds of work, so that a log file, a notebook or a pipe is never
silent for long:

    train: step 120/10,560 (epoch 1/15) | 38.2 img/s | elapsed 3 min 20 s | ETA 4 h 49 min

The ETA covers the whole piece of work (a training's is the run's, not the epoch's).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

log = logging.getLogger("tinyimagenet_resnet.progress")


def use_progress_bar(setting) -> bool:
    """`trainer.progress_bar`: auto = a bar on an interactive terminal, else progress lines."""
    if setting == "auto":
        return sys.stderr.isatty()
    return bool(setting)


def duration(seconds: float) -> str:
    """`2 h 05 min`, `4 min 12 s`, `38 s`."""
    seconds = max(0.0, float(seconds))
    if seconds >= 3600:
        h, rest = divmod(int(round(seconds / 60)), 60)
        return f"{h} h {rest:02d} min"
    if seconds >= 60:
        m, s = divmod(int(round(seconds)), 60)
        return f"{m} min {s:02d} s"
    return f"{seconds:.0f} s"


class Progress:
    """`update(n)` after each unit of work. `bar`: a tqdm bar (a terminal); else a log line every `every_s`
    seconds. `images_per_unit` turns the rate into images per second. `clock` is the time source (a test injects
    one)."""

    def __init__(
        self,
        what: str,
        total: int,
        *,
        bar: bool,
        every_s: float = 30.0,
        initial: int = 0,
        unit: str = "step",
        images_per_unit: int | None = None,
        detail: str = "",
        clock: Callable[[], float] = time.monotonic,
        eta: Callable[[], float | None] | None = None,
    ):
        self.what, self.total, self.done, self.unit = what, int(total), int(initial), unit
        self.images_per_unit, self.detail, self.every_s, self.clock = images_per_unit, detail, every_s, clock
        self.start_done, self.t0 = self.done, clock()
        self.last_line = self.t0
        self.eta, self.postfix = eta, {}
        self.bar = None
        if bar:
            from tqdm.auto import tqdm  # lazy: tqdm.auto probes for a notebook; a run that logs lines never pays it

            # with an ETA of its own, the bar shows that one (in its postfix) instead of tqdm's mean-rate estimate
            fmt = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]" if eta else None
            self.bar = tqdm(total=self.total, initial=self.done, desc=self._desc(), unit=unit, leave=False,
                            dynamic_ncols=True, bar_format=fmt)  # fmt: skip

    def _desc(self) -> str:
        return f"{self.what}" + (f" ({self.detail})" if self.detail else "")

    def set_detail(self, detail: str) -> None:
        self.detail = detail
        if self.bar is not None:
            self.bar.set_description(self._desc())

    def set_total(self, total: int) -> None:
        self.total = int(total)
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def set_postfix(self, **values) -> None:
        self.postfix.update(values)
        if self.bar is not None:
            self.bar.set_postfix(**self.postfix)

    def rate(self) -> float | None:
        """Units per second since the start (None before the first unit)."""
        elapsed = self.clock() - self.t0
        n = self.done - self.start_done
        return n / elapsed if n > 0 and elapsed > 0 else None

    def eta_s(self) -> float | None:
        """Seconds left: the `eta` given (a training's, size by size) once it has one, else the units left at the
        mean rate."""
        eta = self.eta() if self.eta is not None else None
        if eta is not None:
            return eta
        r = self.rate()
        return (self.total - self.done) / r if r else None

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            if self.eta is not None and (eta := self.eta_s()) is not None:
                self.postfix["ETA"] = duration(eta)
                self.bar.set_postfix(**self.postfix, refresh=False)
            self.bar.update(n)
            return
        now = self.clock()
        if now - self.last_line >= self.every_s and self.done < self.total:
            self.last_line = now
            log.info("%s", self.line())

    def line(self) -> str:
        """`train: step 120/10,560 (epoch 1/15) | 38.2 img/s | elapsed 3 min 20 s | ETA 4 h 49 min`."""
        r, eta = self.rate(), self.eta_s()
        speed = ""
        if r is not None:
            speed = f" | {r * self.images_per_unit:.1f} img/s" if self.images_per_unit else f" | {r:.2f} {self.unit}/s"
        return (
            f"{self.what}: {self.unit} {self.done:,}/{self.total:,}" + (f" ({self.detail})" if self.detail else "")
            + f"{speed} | elapsed {duration(self.clock() - self.t0)}"
            + (f" | ETA {duration(eta)}" if eta is not None else "")
        )  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
