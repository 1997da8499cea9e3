"""The serving model's directory, held open so that a process started later loads the same one."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from triage.core.errors import ModelLoadError

log = logging.getLogger(__name__)


class PinnedDirectory:
    """A model version directory held open by the front process while its model serves.

    A model process restarted later (after a crash or a hang) must load the model that is
    serving, from wherever it is now: an operator may have moved or renamed the version
    directory meanwhile (archiving it, say), and ``models/current`` may point elsewhere or
    nowhere. So every process loads through :attr:`path`, ``/proc/<front>/fd/<n>``, which the
    kernel resolves to the directory the descriptor was opened on, wherever it has moved
    (within its filesystem). Loading still verifies everything as usual. Holding a descriptor
    costs nothing; holding the artifact's bytes instead would cost its size in the front for
    as long as it serves. A directory deleted outright cannot be loaded again: its running
    processes keep serving, and a lane whose process is lost then stays down (see
    :class:`~triage.runtime.model_processes.ModelWorkerPool`).
    """

    def __init__(self, directory: Path) -> None:
        self.real = Path(directory)  # where it was when pinned: for logs and comparisons
        try:
            self._fd: int | None = os.open(self.real, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as err:
            log.warning("cannot open the model directory %s: %s", self.real, err.strerror)
            # The caller may be remote (ReloadModel): no path in what it is told.
            raise ModelLoadError(
                f"cannot open the model version {self.real.name!r}: {err.strerror}"
            ) from None
        through_proc = Path(f"/proc/{os.getpid()}/fd/{self._fd}")
        # Without /proc (not Linux), a restart loads from where the directory was.
        self.path = through_proc if through_proc.is_dir() else self.real

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
