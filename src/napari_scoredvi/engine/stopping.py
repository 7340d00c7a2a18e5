"""Stopping the work inside a prior network's pass, which takes seconds on a CPU for a large tile.

Between passes the work stops when its generator is closed (:func:`.api.denoise_steps`). A front end
that runs the engine in a thread of its own (the napari widget's worker) also wraps the run in
:func:`stop_when`: every layer of the prior networks then checks the condition first
(:func:`check`, a forward pre-hook) and raises :class:`~.result.Cancelled` once it holds, so a Cancel
lands within one layer. The condition is per thread: runs in other threads are not affected.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .result import Cancelled

_local = threading.local()


@contextmanager
def stop_when(condition: Callable[[], bool]) -> Iterator[None]:
    """Within this block, in this thread, the prior networks raise :class:`~.result.Cancelled` before
    their next layer once ``condition()`` is true."""
    previous = getattr(_local, "condition", None)
    _local.condition = condition
    try:
        yield
    finally:
        _local.condition = previous


def check(*_) -> None:
    """Raise :class:`~.result.Cancelled` if this thread's :func:`stop_when` condition holds (a forward
    pre-hook of the prior networks' layers; the arguments are the hook's, unused)."""
    condition = getattr(_local, "condition", None)
    if condition is not None and condition():
        raise Cancelled("stopped")
