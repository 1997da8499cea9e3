"""A model process: loads the model, then answers its front process's messages until told to
stop."""

from __future__ import annotations

import os
import signal
from multiprocessing.connection import Connection

from triage.core.model import TriageModel, load_model
from triage.core.scoring import accept_all, score_reports
from triage.lifeline import die_with_parent
from triage.runtime.live import WARMUP_TEXTS


def run_model_process(conn: Connection, path: str, lifeline: Connection) -> None:
    """Load the model at ``path``, report ready, then score what ``conn`` brings.

    Messages: ``("score", reports)``, ``("prepare", path)`` to load a new model beside the
    current one, ``("commit",)`` or ``("abort",)`` to switch to it or drop it, ``("stop",)``.
    """
    die_with_parent(lifeline)  # a front killed outright takes its model processes with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the front process decides when to stop:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # and exits when the front's pipe closes
    try:
        current = load_warm(path)
    except Exception as err:
        conn.send(("error", str(err)))
        return
    conn.send(("ready", current.version, os.getpid()))
    pending: TriageModel | None = None
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return  # the front process is gone
        kind = message[0]
        try:
            if kind == "score":
                conn.send(("ok", current.version, score_reports(current, message[1], accept_all)))
            elif kind == "prepare":
                pending = load_warm(message[1])
                conn.send(("prepared", pending.version))
            elif kind == "commit" and pending is not None:
                current, pending = pending, None
                conn.send(("committed", current.version))
            elif kind == "abort":
                pending = None
                conn.send(("aborted",))
            elif kind == "stop":
                return
            else:
                conn.send(("error", f"unexpected message {kind!r}"))
        except Exception as err:
            conn.send(("error", f"{type(err).__name__}: {err}"))


def load_warm(path: str) -> TriageModel:
    """The model at ``path``, verified, loaded and warmed."""
    # Each process holds its own copy (skops loads into memory; see the README's "Model
    # artifacts" for what that costs).
    model = load_model(path)
    model.predict(list(WARMUP_TEXTS))
    return model
