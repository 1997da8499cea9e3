"""A lifeline: child processes end when the process that started them ends, however it ends."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing import forkserver
from multiprocessing.connection import Connection

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
EXIT_ORPHANED = 70  # the exit code of a child whose parent went away


class Lifeline:
    """A pipe whose writing end only the parent holds, and never writes to: it closes when the
    parent exits, by any means (a SIGKILL included), which every child given :attr:`end`
    notices at once (:func:`die_with_parent`)."""

    def __init__(self) -> None:
        # os.pipe() descriptors are not inherited by exec'd programs, and a fork-server child
        # receives only the descriptors sent to it: no child ever holds the writing end.
        self.end, self._held = multiprocessing.Pipe(duplex=False)

    def close(self) -> None:
        """Cut it: the children still alive exit (normally they have been stopped already)."""
        self._held.close()
        self.end.close()


def die_with_parent(end: Connection) -> None:
    """In a child, first thing: exit as soon as the parent's :class:`Lifeline` closes.

    A watcher thread exits the process when the pipe reports end-of-file. A thread cannot run
    while the process is stopped (SIGSTOP) or stuck in C code that holds the GIL, so the kernel
    is asked too: a fork-server child gets SIGKILL when the fork server exits
    (``PR_SET_PDEATHSIG``), and the fork server exits when its last client is gone, which,
    once this child lets go of its copy of the fork server's "alive" descriptor, is as soon as
    the parent is.
    """
    _release_fork_server()
    _kill_with_parent()
    watcher = threading.Thread(target=_exit_when_cut, args=(end,), name="lifeline", daemon=True)
    watcher.start()


def _exit_when_cut(end: Connection) -> None:
    with contextlib.suppress(EOFError, OSError):
        while True:
            end.recv_bytes()  # nothing is ever sent: this returns only at end-of-file
    os._exit(EXIT_ORPHANED)  # no clean-up: the parent that would want results is gone


def _kill_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return  # the watcher thread alone, elsewhere
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _release_fork_server() -> None:
    # A fork-server child inherits the descriptor that keeps the fork server alive (so that it
    # could start processes of its own, which ours never do); held here, the fork server and so
    # the kernel's parent-death signal would wait for this child instead of the parent.
    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(fd, int):
        with contextlib.suppress(OSError):
            os.close(fd)
        server._forkserver_alive_fd = None  # type: ignore[union-attr]
