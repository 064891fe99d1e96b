"""Cooperative cancellation of a running selection.

:func:`selector.select` and :func:`selector.select_batch` take ``should_stop``, a callable
without arguments; the search calls :func:`checkpoint` between its steps (each greedy or beam
step, each problem's finishing), which raises :class:`~selector.errors.SelectionCancelled`
once ``should_stop()`` is true. The check is kept per thread, so concurrent selections on
other threads each see their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from selector.errors import SelectionCancelled

_current = threading.local()


@contextmanager
def stop_when(should_stop: Callable[[], bool] | None) -> Iterator[None]:
    """Make :func:`checkpoint` consult ``should_stop`` on this thread inside the block."""
    previous = getattr(_current, "check", None)
    _current.check = should_stop
    try:
        yield
    finally:
        _current.check = previous


def checkpoint() -> None:
    """Raise :class:`SelectionCancelled` if this thread's selection was asked to stop."""
    check: Callable[[], bool] | None = getattr(_current, "check", None)
    if check is not None and check():
        raise SelectionCancelled("the selection was stopped by its caller")
