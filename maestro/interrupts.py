"""Ctrl-C and SIGTERM that always stop a run before its outputs are committed.

Python runs a signal handler between bytecodes wherever the main thread happens to be, including inside a weakref
callback or a `__del__` method (an import's module-lock callback, a tensor being freed). An exception raised there is
printed as "Exception ignored in ..." and dropped, and the run would go on to finish. So the handler also records the
request, `check()` raises it again at the points of no return (a stage starting, outputs being committed), and the
dropped copy is not printed.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Any, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds (and cleans up) exactly as Ctrl-C does."""


_requested: int | None = None  # the signal number of a stop asked for while `stop_on_signals` is active


def check() -> None:
    """Raise the stop a signal asked for, if one did (its first raise may have been dropped)."""
    if _requested is not None:
        raise _exception(_requested)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the command runs, SIGINT and SIGTERM (`kill`, a scheduler's time limit) unwind it: staging is removed."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def request_stop(signum: int, frame: Any) -> None:
        global _requested
        _requested = signum
        raise _exception(signum)

    def quiet_when_dropped(unraisable: Any) -> None:
        if _requested is not None and isinstance(unraisable.exc_value, KeyboardInterrupt):
            return  # remembered: check() raises it again
        previous_hook(unraisable)

    _requested = None
    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    previous_hook, sys.unraisablehook = sys.unraisablehook, quiet_when_dropped
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = previous_hook
        _requested = None


def _exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
