"""A lock file inside an output store, so that two runs never write into one store at once (two napari
windows, or the command line and the widget).

A run takes the lock when it starts writing (:meth:`..pipeline.run.StackRun.steps`) by creating
``OUTPUT/.scoredvi.lock`` with ``O_CREAT | O_EXCL`` (atomic, also on NFS v3+), holding JSON
``{"pid", "host", "started", "program", "id"}`` (plus, on Linux, the boot id and the process's start
time, which tell a live holder from a reused process id), and removes it at its end, also when it is
cancelled or fails. A run that was killed leaves its lock behind; the next run on the same host takes
it over once the recorded process no longer exists. A lock from another host cannot be checked from
here: it is reported with its host name and the advice to delete the lock file if that run is gone.

Only the process that drives a run holds the lock: dask workers writing slices into the store
(:func:`..pipeline.cluster.run_chain`) work under their driver's lock.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

#: the lock file's name inside a store
LOCK_NAME = ".scoredvi.lock"
#: a lock file without readable JSON younger than this is being written right now (else it is debris)
_WRITING_S = 10.0

#: locks held by this process: resolved store path -> lock id (two runs in one napari process)
_HELD: dict[str, str] = {}
_HELD_GUARD = threading.Lock()


class StoreLocked(OSError):
    """The output store is in use by another run (the message says which, and what to do)."""


def lock_path(store: str | Path) -> Path:
    return Path(store) / LOCK_NAME


def _host() -> str:
    return socket.gethostname()


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _boot_id() -> str | None:
    """Linux: an id that changes at every boot (process ids and start times restart then)."""
    text = _read_text(Path("/proc/sys/kernel/random/boot_id"))
    return text.strip() if text else None


def _process_start(pid: int) -> int | None:
    """Linux: the process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    text = _read_text(Path(f"/proc/{pid}/stat"))
    if not text or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _pid_exists(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (also one of another user's)."""
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it there
        return _pid_exists_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to another user
        return True
    except OSError:
        return True  # cannot tell: assume the run is alive rather than write beside it
    return True


def _pid_exists_windows(pid: int) -> bool:  # pragma: no cover - exercised on Windows only
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: it exists
    try:
        code = ctypes.c_ulong()
        if kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return code.value == 259  # STILL_ACTIVE
        return True
    finally:
        kernel32.CloseHandle(handle)


def read_lock(store: str | Path) -> dict | None:
    """The lock file's record, or None when there is none; ``{}`` when it is unreadable (being written,
    or debris)."""
    path = lock_path(store)
    if not path.exists():
        return None
    return read_lock_file(path)


def holder_state(store: str | Path, info: dict) -> str:
    """``"alive"`` (a run on this host, or in this process, holds the store), ``"dead"`` (the recorded
    process is gone: a stale lock) or ``"unknown"`` (a run on another host: cannot be checked here)."""
    if not info:  # unreadable: being written right now, or debris left by a crash while writing it
        try:
            age = time.time() - lock_path(store).stat().st_mtime
        except OSError:
            return "dead"
        return "alive" if age < _WRITING_S else "dead"
    if info.get("host") != _host():
        return "unknown"
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return "dead"
    if pid == os.getpid():  # this process: held by one of its own runs, or left by an earlier process with our pid
        with _HELD_GUARD:
            return "alive" if _HELD.get(_key(store)) == info.get("id") else "dead"
    boot = _boot_id()
    if info.get("boot_id") and boot and info["boot_id"] != boot:
        return "dead"  # recorded before the last reboot
    if not _pid_exists(pid):
        return "dead"
    start = _process_start(pid)
    if info.get("process_start") is not None and start is not None and start != info["process_start"]:
        return "dead"  # the process id was reused by another program
    return "alive"


def _key(store: str | Path) -> str:
    return str(Path(store).resolve())


def _describe(info: dict) -> str:
    program = info.get("program") or "a napari-scoredvi run"
    return (f"{program} (process {info.get('pid', '?')} on host {info.get('host', '?')!r}, "
            f"started {info.get('started', '?')})")


def locked_error(store: str | Path, info: dict, state: str) -> StoreLocked:
    """The error for a store held by a run in ``state`` (``"alive"`` or ``"unknown"``)."""
    store = str(store)
    if not info:
        return StoreLocked(f"output {store!r} is being locked by another run just now; wait for that run to finish, "
                           "or choose another output")
    if state == "unknown":
        return StoreLocked(
            f"output {store!r} is in use by a run on another host: {_describe(info)}; wait for it to finish "
            f"(or stop it there), or choose another output. If that run is gone (its machine crashed or was "
            f"switched off), delete {str(lock_path(store))!r} and run again (with --resume to keep its slices)"
        )
    if info.get("pid") == os.getpid():
        return StoreLocked(f"output {store!r} is in use by another run in this process (started "
                           f"{info.get('started', '?')}); wait for it to finish or cancel it, or choose another output")
    return StoreLocked(
        f"output {store!r} is in use by another run: {_describe(info)}; wait for it to finish, or stop it "
        f"(its finished slices are kept) and run again with --resume, or choose another output"
    )


def check_unlocked(store: str | Path) -> None:
    """Raise :class:`StoreLocked` if a live run (or one on another host) holds ``store``; a stale lock
    (its process is gone) is left for :func:`acquire` to take over."""
    info = read_lock(store)
    if info is None:
        return
    state = holder_state(store, info)
    if state != "dead":
        raise locked_error(store, info, state)


@dataclass
class StoreLock:
    """The lock a run holds on its store; :meth:`release` (or leaving its ``with`` block) removes it."""

    store: Path
    id: str
    info: dict

    def release(self) -> None:
        """Remove the lock file if it is still this lock's (never another run's)."""
        with _HELD_GUARD:
            if _HELD.get(_key(self.store)) == self.id:
                del _HELD[_key(self.store)]
        current = read_lock(self.store)
        if current and current.get("id") == self.id:
            try:
                lock_path(self.store).unlink()
            except FileNotFoundError:  # the store was deleted meanwhile
                pass

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(store: str | Path) -> StoreLock:
    """Take the lock on the (existing) store folder ``store``, atomically; take over a stale one.

    Raises :class:`StoreLocked` (an OSError) while another run holds it, saying which run (process id,
    host, start time) and what to do.
    """
    store = Path(store)
    path = lock_path(store)
    lock_id = uuid.uuid4().hex
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    program = "python" if program in ("", "-c", "__main__.py") else program
    info = {"pid": os.getpid(), "host": _host(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "program": program, "id": lock_id}
    boot, start = _boot_id(), _process_start(os.getpid())
    if boot and start is not None:
        info.update(boot_id=boot, process_start=start)
    for _ in range(5):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = read_lock(store)
            if held is None:  # released between our attempt and this look
                continue
            state = holder_state(store, held)
            if state != "dead":
                raise locked_error(store, held, state) from None
            _remove_stale(path, held)
            continue
        except OSError as exc:
            raise OSError(f"cannot create the lock file {str(path)!r} ({exc.strerror or exc}); "
                          "choose an output in a folder you can write to") from exc
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
            f.flush()
            os.fsync(f.fileno())
        with _HELD_GUARD:
            _HELD[_key(store)] = lock_id
        return StoreLock(store, lock_id, info)
    raise StoreLocked(f"could not lock output {str(store)!r}: other runs keep taking and releasing it; "
                      "make sure only one run writes into it")


def _remove_stale(path: Path, seen: dict) -> None:
    """Remove the stale lock ``seen`` at ``path``, unless another run replaced it since it was read."""
    aside = path.with_name(f"{LOCK_NAME}.stale-{uuid.uuid4().hex}")
    try:
        os.rename(path, aside)  # atomic: of several runs taking over, one moves it
    except FileNotFoundError:
        return
    moved = read_lock_file(aside)
    if seen and moved != seen:  # a fresh lock taken meanwhile by another run: put it back
        os.replace(aside, path)
        return
    aside.unlink(missing_ok=True)


def read_lock_file(path: Path) -> dict:
    """A lock file's record; ``{}`` when it is unreadable."""
    text = _read_text(path)
    try:
        info = json.loads(text) if text else None
    except ValueError:
        info = None
    return info if isinstance(info, dict) else {}
