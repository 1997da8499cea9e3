"""Where the model path leads now, and whether that is worth a reload, for the server's watcher."""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from triage.core.errors import ModelLoadError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Target:
    """What the model path leads to: a directory and the files in it, or why it leads nowhere."""

    directory: Path | None
    files: tuple[tuple[str, int, int], ...] = ()  # (name, size, mtime in ns), sorted
    problem: str = ""


class ModelWatch:
    """The model path (normally ``models/current``) as the watcher sees it.

    A target that was refused is not tried again by the watcher until it changes: ``current``
    switched elsewhere, or a file in the refused directory rewritten. Otherwise a refused model
    left in place would be reloaded, refused and logged on every poll, forever. An explicit
    reload (SIGHUP, ``ReloadModel``) always tries.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._refused: _Target | None = None

    def locate(self) -> Path:
        """The version directory the path leads to now (which the loader then reads, and
        refuses if it is missing); :class:`ModelLoadError` (naming no path: the caller may be
        remote) if the path cannot even be resolved, as in a symlink loop."""
        target = self._target()
        if target.directory is None:
            log.warning("the model path %s leads nowhere: %s", self.path, target.problem)
            raise ModelLoadError(f"the model path leads to no model directory ({target.problem})")
        return target.directory

    def changed(self, serving: Path | None) -> bool:
        """Whether the path leads somewhere other than ``serving`` and not to the target that
        was last refused."""
        target = self._target()
        if target == self._refused:
            return False
        return serving is None or target.directory != serving

    def refused(self) -> None:
        """Note that a reload of what the path leads to now was refused."""
        self._refused = self._target()

    def accepted(self) -> None:
        self._refused = None

    @property
    def refusing(self) -> bool:
        """Whether the path still leads to the target that was last refused."""
        return self._refused is not None and self._refused == self._target()

    def _target(self) -> _Target:
        try:
            directory = self.path.resolve(strict=True)
        except RuntimeError:  # how Python 3.11 reports a symlink loop
            return _Target(None, problem="a symlink loop")
        except OSError as err:
            if err.errno == errno.ELOOP:
                return _Target(None, problem="a symlink loop")
            # Missing: nothing loops, so it resolves as far as it exists.
            return _Target(self.path.resolve(), problem=err.strerror or type(err).__name__)
        try:
            entries = [(e.name, e.stat()) for e in os.scandir(directory)]
        except OSError as err:
            return _Target(directory, problem=err.strerror or type(err).__name__)
        files = tuple(sorted((name, st.st_size, st.st_mtime_ns) for name, st in entries))
        return _Target(directory, files)
