"""The status a finished call ended with, named as the call reports (metrics, access log) say it."""

from __future__ import annotations

import grpc


def final_status(context: grpc.ServicerContext, finished: bool) -> str:
    """The name of the call's status code; ``finished``: its behaviour returned (or its stream
    ran out) instead of raising."""
    code = context.code()
    if code is not None:  # aborted (a mapped error, a refused token), or set by the servicer
        return str(code.name)
    if finished:
        return "OK"
    # Stopped without a status: the client went away, or an error escaped every interceptor.
    return "UNKNOWN" if context.is_active() else "CANCELLED"
