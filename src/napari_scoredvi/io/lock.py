"""The lock a run holds on its output store, so that two runs never write into one store at once (two
napari windows, napari and the command line, or two runs in one napari).

An OS lock (:mod:`filelock`: ``flock`` on Unix, ``LockFileEx`` on Windows) on ``OUTPUT/.scoredvi.lock``,
taken when a run starts writing (:meth:`..pipeline.run.StackRun.steps`) and released at its end, also
when it is cancelled or fails. The kernel releases it when its process ends, however it ends, so a
killed run never leaves the store locked. The empty lock file stays in the store after a run (filelock
never deletes it on Unix: a deleted file would let two runs lock two different files); only the lock
counts, not the file. zarr warns that it is "not recognized as a component of a Zarr hierarchy" when
it lists the store's top level: harmless.

Only the process that drives a run holds the lock: dask workers writing slices into the store
(:func:`..pipeline.cluster.run_chain`) work under their driver's lock.
"""

from __future__ import annotations

import threading
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import Argument, ArgumentRemedy

#: the lock file's name inside a store
LOCK_NAME = ".scoredvi.lock"

#: the stores this process holds (resolved paths): a second run in this process is refused here, also
#: where the file system emulates flock with byte-range locks that one process never conflicts with (NFS)
_HELD: set[str] = set()
_GUARD = threading.Lock()


class StoreLocked(ArgumentRemedy, OSError):
    """The output store is in use by another run (the message says which store, and what to do)."""


def lock_path(store: str | Path) -> Path:
    """The lock file of ``store``."""
    return Path(store) / LOCK_NAME


def _key(store: str | Path) -> str:
    return str(Path(store).resolve())


def _locked(store: str | Path, here: bool) -> StoreLocked:
    holder = "in this process" if here else "in another process (a napari window or a command line)"
    return StoreLocked.of(
        "output %r is in use by another run %s; wait for that run to finish, or stop it and resume its finished "
        "slices afterwards (%s), or choose another output", str(store), holder, Argument("resume"))


class StoreLock:
    """The lock a run holds on its store; :meth:`release` (or leaving its ``with`` block) releases it."""

    def __init__(self, store: Path, lock: FileLock) -> None:
        self.store, self._lock = store, lock

    def release(self) -> None:
        """Release the lock (again: nothing)."""
        with _GUARD:
            if self._lock.is_locked:
                self._lock.release()
                _HELD.discard(_key(self.store))

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(store: str | Path) -> StoreLock:
    """Take the lock on the (existing) store folder ``store`` without waiting.

    Raises :class:`StoreLocked` (an OSError) while another run holds it, saying what to do, and
    OSError when the lock file cannot be created there.
    """
    store = Path(store)
    # thread_local=False: a run's steps may be closed (its finally: release) from another thread than
    # the one that took the lock (the widget's Cancel, the garbage collector)
    lock = FileLock(lock_path(store), timeout=0, thread_local=False)
    with _GUARD:
        if _key(store) in _HELD:
            raise _locked(store, here=True)
        try:
            lock.acquire()
        except Timeout:
            raise _locked(store, here=False) from None
        except OSError as exc:
            raise OSError(f"cannot create the lock file {str(lock_path(store))!r} ({exc.strerror or exc}); "
                          "choose an output in a folder you can write to") from exc
        _HELD.add(_key(store))
    return StoreLock(store, lock)


def check_unlocked(store: str | Path) -> None:
    """Raise :class:`StoreLocked` if a run holds ``store`` now (it may start one a moment later:
    :func:`acquire` is the lock). Creates nothing: a store without a lock file was never locked."""
    if not lock_path(store).exists():
        return
    try:
        acquire(store).release()
    except StoreLocked:
        raise
    except OSError:  # a read-only store: no run can write into it either
        return
