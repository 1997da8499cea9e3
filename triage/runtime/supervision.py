"""How long a model process may take before it counts as hung, how restarts are paced, and how
a child process is ended."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from triage.core.scoring import Report

# What a server starts from the fork server (model processes, the shadow candidate, the decision
# journal's writer): imported there once, whichever of them starts it first, so that each
# process (a restart too) starts without importing scikit-learn again.
FORK_SERVER_PRELOAD = ("triage.runtime.model_process", "triage.runtime.shadow")


@dataclass(frozen=True)
class Supervision:
    """The bounds the front process holds its model processes to (README "Operations").

    A batch that has not come back within :meth:`batch_bound` is taken as hung: its process is
    killed and restarted and the batch's callers get UNAVAILABLE. The bound grows with the
    batch's text, at a rate far below what any model scores at (about 2-16 million characters
    a second for the default one on one core), so that only a process that is not working trips
    it: the default allows 5 s plus 1 s per 100,000 characters.
    """

    batch_seconds: float = 5.0
    chars_per_second: float = 100_000.0
    start_seconds: float = 120.0  # a process not ready by then has failed to start
    first_retry_seconds: float = 1.0  # after a failed restart; doubling up to the next
    last_retry_seconds: float = 60.0
    check_seconds: float = 0.1  # how often deadlines and idle processes are looked at

    def batch_bound(self, reports: Sequence[Report]) -> float:
        """Seconds a model process may take to answer a batch of ``reports``."""
        return self.batch_seconds + sum(len(r.text) for r in reports) / self.chars_per_second

    def retry_delay(self, failed_starts: int) -> float:
        """Seconds before another attempt to start a lane's process after ``failed_starts``
        attempts in a row failed."""
        doubled = self.first_retry_seconds * 2.0 ** max(failed_starts - 1, 0)
        return min(doubled, self.last_retry_seconds)


def stop_child(process: Any, conn: Connection, kill: bool = False) -> None:
    """End a child process (a model process, a shadow candidate): asked to stop over ``conn`` (it
    finishes what it is doing), or killed; then reaped and its pipe closed."""
    if not kill:
        with contextlib.suppress(OSError):  # already gone: nothing to tell
            conn.send(("stop",))
        process.join(10)
    if process.is_alive():
        process.kill()
    process.join(5)
    conn.close()
