"""Show batch progress: a tqdm bar on a terminal, periodic log lines otherwise, or nothing."""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any

log = logging.getLogger("triage.archive.progress")


class ProgressDisplay:
    """Counts finished rows; ``mode`` is "bar", "log" or "off"."""

    def __init__(
        self, mode: str, total: int | None, done: int = 0, every_seconds: float = 10.0
    ) -> None:
        self.mode = mode
        self.total = total
        self.done = done
        self.every = every_seconds
        self._bar: Any = None
        self._started = time.monotonic()
        self._start_done = done
        self._last_log = self._started

    def __enter__(self) -> ProgressDisplay:
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total,
                initial=self.done,
                unit="rows",
                unit_scale=True,
                dynamic_ncols=True,
                smoothing=0.1,
            )
        return self

    def update(self, rows: int) -> None:
        self.done += rows
        if self._bar is not None:
            self._bar.update(rows)
        elif self.mode == "log" and time.monotonic() - self._last_log >= self.every:
            self._last_log = time.monotonic()
            log.info("%s", self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = (self.done - self._start_done) / elapsed
        text = f"{self.done:,} rows scored, {rate:,.0f} rows/s"
        if self.total:
            left = max(self.total - self.done, 0)
            eta = left / rate if rate > 0 else float("inf")
            text += f", {self.done / self.total:.1%} of {self.total:,}, ETA {eta:,.0f} s"
        return text

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()
