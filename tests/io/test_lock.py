"""The output store's lock file (napari_scoredvi.io.lock): one run at a time writes into a store, and a
killed run never leaves it locked."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_scoredvi.cli import main
from napari_scoredvi.engine.presets import PRESETS, Preset
from napari_scoredvi.engine.settings import DenoiseSettings
from napari_scoredvi.io import lock
from napari_scoredvi.io.lock import LOCK_NAME, StoreLocked
from napari_scoredvi.io.read import open_volume
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack
from napari_scoredvi.pipeline.events import SliceStep
from napari_scoredvi.pipeline.run import denoise_volume, prepare_run

MICRO = Preset("micro", iterations=3, crop=16, crops=1, samples=1, unet_levels=1, unet_base=4,
               aux_depth=1, aux_width=4, warm_iterations=2)
SETTINGS = DenoiseSettings(MICRO, "cpu")


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, noisy_fluorescence_stack(3, (32, 32), seed=1)[0], ome=True, metadata={"axes": "ZYX"})
    return path


@pytest.fixture
def gone_pid():
    """A process id that no longer exists (a process that has exited)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def other_process():
    """A live process on this host that is not this one."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def write_lock(store: Path, **info) -> Path:
    store.mkdir(exist_ok=True)
    record = {"host": socket.gethostname(), "started": "2026-11-30T10:00:00+00:00", "program": "napari",
              "id": "theirs", **info}
    (store / LOCK_NAME).write_text(json.dumps(record))
    return store / LOCK_NAME


def test_second_lock_is_refused_and_release_removes_it(tmp_path):
    store = tmp_path / "out.zarr"
    store.mkdir()
    first = lock.acquire(store)
    record = json.loads((store / LOCK_NAME).read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname() and record["started"]
    with pytest.raises(StoreLocked, match=r"in use by another run in this process \(started 20"):
        lock.acquire(store)
    with pytest.raises(StoreLocked):
        lock.check_unlocked(store)
    first.release()
    assert not (store / LOCK_NAME).exists()
    with lock.acquire(store):
        assert (store / LOCK_NAME).exists()
    assert not (store / LOCK_NAME).exists()


def test_a_live_run_on_this_host_is_named_with_pid_host_and_start(tmp_path, other_process):
    path = write_lock(tmp_path / "out.zarr", pid=other_process.pid)
    message = (rf"is in use by another run: napari \(process {other_process.pid} on host "
               rf"'{socket.gethostname()}', started 2026-11-30T10:00:00\+00:00\); wait for it to finish, or stop it")
    with pytest.raises(StoreLocked, match=message):
        lock.acquire(tmp_path / "out.zarr")
    assert json.loads(path.read_text())["id"] == "theirs"  # left alone


def test_stale_lock_of_a_process_that_is_gone_is_taken_over(tmp_path, gone_pid):
    path = write_lock(tmp_path / "out.zarr", pid=gone_pid)
    lock.check_unlocked(tmp_path / "out.zarr")  # stale: no error
    held = lock.acquire(tmp_path / "out.zarr")
    assert json.loads(path.read_text())["pid"] == os.getpid()
    held.release()
    assert not path.exists() and not list((tmp_path / "out.zarr").iterdir())  # nothing left aside either


def test_lock_left_by_an_earlier_process_with_our_pid_is_stale(tmp_path):
    """E.g. a container restarted after a kill: the same pid, but no run of this process holds it."""
    write_lock(tmp_path / "out.zarr", pid=os.getpid())
    lock.acquire(tmp_path / "out.zarr").release()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times come from /proc (Linux)")
def test_reused_pid_is_stale(tmp_path, other_process):
    """The recorded pid now belongs to another program (it started later than the recorded run)."""
    start = lock._process_start(other_process.pid)
    write_lock(tmp_path / "out.zarr", pid=other_process.pid, boot_id=lock._boot_id(), process_start=start - 1)
    lock.acquire(tmp_path / "out.zarr").release()
    write_lock(tmp_path / "out.zarr", pid=other_process.pid, boot_id="an earlier boot", process_start=start)
    lock.acquire(tmp_path / "out.zarr").release()
    write_lock(tmp_path / "out.zarr", pid=other_process.pid, boot_id=lock._boot_id(), process_start=start)
    with pytest.raises(StoreLocked):
        lock.acquire(tmp_path / "out.zarr")


def test_lock_of_another_host_is_reported_with_advice(tmp_path):
    path = write_lock(tmp_path / "out.zarr", pid=12345, host="gpu-box-7")
    with pytest.raises(StoreLocked, match=r"run on another host: napari \(process 12345 on host 'gpu-box-7'.*"
                                          r"If that run is gone .*delete '.*\.scoredvi\.lock' and run again"):
        lock.acquire(tmp_path / "out.zarr")
    assert path.exists()


def test_unreadable_lock_is_busy_when_fresh_and_debris_when_old(tmp_path):
    store = tmp_path / "out.zarr"
    store.mkdir()
    (store / LOCK_NAME).write_text("")
    with pytest.raises(StoreLocked, match="being locked by another run just now"):
        lock.acquire(store)
    old = time.time() - 60
    os.utime(store / LOCK_NAME, (old, old))
    lock.acquire(store).release()


def test_run_holds_the_lock_and_a_second_run_is_refused(tmp_path, src):
    out = tmp_path / "out.zarr"
    run = prepare_run(open_volume(src), out, SETTINGS)
    assert not (out / LOCK_NAME).exists()  # prepared, not started: nothing held
    steps = run.steps()
    next(steps)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    # another run into the same store: refused before it reads or deletes anything ...
    for kwargs in (dict(resume=True), dict(overwrite=True)):
        with pytest.raises(StoreLocked, match=r"output '.*out\.zarr' is in use by another run"):
            prepare_run(open_volume(src), out, SETTINGS, **kwargs)
    assert (out / "done").exists()
    # ... and, prepared before the first one started, refused when it starts
    with pytest.raises(StoreLocked):
        next(run.steps())
    for _ in steps:
        pass
    assert not (out / LOCK_NAME).exists()
    assert prepare_run(open_volume(src), out, SETTINGS, resume=True).todo == []


def test_cancelled_run_releases_the_lock(tmp_path, src):
    out = tmp_path / "out.zarr"
    steps = prepare_run(open_volume(src), out, SETTINGS).steps()
    for event in steps:
        if isinstance(event, SliceStep):
            break
    assert (out / LOCK_NAME).exists()
    steps.close()  # as the widget's Cancel does
    assert not (out / LOCK_NAME).exists()
    lock.acquire(out).release()  # free for the next run


def test_failed_run_releases_the_lock(tmp_path):
    bad = noisy_fluorescence_stack(3, (32, 32), seed=1)[0].astype(np.float32)
    bad[1, 5, 5] = np.nan
    src, out = tmp_path / "bad.tif", tmp_path / "out.zarr"
    tifffile.imwrite(src, bad, ome=True, metadata={"axes": "ZYX"})
    with pytest.raises(RuntimeError, match="slice Z=1 failed"):
        denoise_volume(src, out, SETTINGS)
    assert not (out / LOCK_NAME).exists()


def test_progress_callback_raising_releases_the_lock(tmp_path, src):
    out = tmp_path / "out.zarr"

    def stop(event):
        if isinstance(event, SliceStep):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        denoise_volume(src, out, SETTINGS, progress=stop)
    assert not (out / LOCK_NAME).exists()


def test_command_line_on_a_locked_store_is_one_error_line(tmp_path, src, monkeypatch, capsys, other_process):
    monkeypatch.setitem(PRESETS, "micro", MICRO)
    out = tmp_path / "out.zarr"
    prepare_run(open_volume(src), out, SETTINGS)  # the store, as a run that has just started makes it
    write_lock(out, pid=other_process.pid)
    before = sorted(p.name for p in out.iterdir())
    for flag in ("--resume", "--overwrite"):
        assert main(["denoise", str(src), str(out), "--preset", "micro", "--device", "cpu", flag]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("napari-scoredvi: error: output ") and f"process {other_process.pid}" in err[-1]
        assert "Traceback" not in "\n".join(err)
    assert sorted(p.name for p in out.iterdir()) == before


KILLED_RUN = """
import os, signal, sys
from napari_scoredvi.engine.presets import Preset
from napari_scoredvi.engine.settings import DenoiseSettings
from napari_scoredvi.pipeline.events import SliceStep
from napari_scoredvi.pipeline.run import denoise_volume

micro = Preset("micro", iterations=3, crop=16, crops=1, samples=1, unet_levels=1, unet_base=4, aux_depth=1,
               aux_width=4, warm_iterations=2)

def kill(event):
    if isinstance(event, SliceStep):
        os.kill(os.getpid(), signal.SIGKILL)

denoise_volume(sys.argv[1], sys.argv[2], DenoiseSettings(micro, "cpu"), progress=kill)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_run_leaves_a_lock_that_the_next_run_takes_over(tmp_path, src):
    out = tmp_path / "killed.zarr"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(src), str(out)])
    assert proc.wait(timeout=120) == -9
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == proc.pid
    denoise_volume(src, out, SETTINGS, resume=True)
    assert not (out / LOCK_NAME).exists()
