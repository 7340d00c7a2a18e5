"""The output store's lock (napari_scoredvi.io.lock): one run at a time writes into a store, and a
killed run never leaves it locked. "Another process" is a real one here (a subprocess), so that these
tests see the OS lock itself, not only this process's bookkeeping."""

import signal
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_scoredvi.cli import main
from napari_scoredvi.engine.settings import DenoiseSettings
from napari_scoredvi.io import lock
from napari_scoredvi.io.errors import RunFailed
from napari_scoredvi.io.lock import StoreLocked
from napari_scoredvi.io.read import open_volume
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack
from napari_scoredvi.pipeline.events import SliceDone, SliceStep
from napari_scoredvi.pipeline.run import denoise_volume, prepare_run

pytest.importorskip("zarr", minversion="3")

SETTINGS = DenoiseSettings("fast", "cpu")

#: takes the lock of the store argv[1], says so, and holds it until killed
HOLD = """
import sys, time
from napari_scoredvi.io.lock import acquire
held = acquire(sys.argv[1])
print("held", flush=True)
time.sleep(300)
"""

#: exits 0 if it can take the lock of the store argv[1], 3 if another run holds it
TRY = """
import sys
from napari_scoredvi.io.lock import StoreLocked, acquire
try:
    acquire(sys.argv[1]).release()
except StoreLocked:
    sys.exit(3)
"""


def free_for_another_process(store) -> bool:
    """Whether another process can take the store's lock now."""
    code = subprocess.run([sys.executable, "-c", TRY, str(store)], timeout=60).returncode
    assert code in (0, 3), code
    return code == 0


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, noisy_fluorescence_stack(3, (32, 32), seed=1)[0], ome=True, metadata={"axes": "ZYX"})
    return path


@pytest.fixture
def hold(tmp_path):
    """Start a process that holds the lock of a store (a folder made here); yields it."""
    procs = []

    def start(store):
        store.mkdir(exist_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(store)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_lock_in_this_process_is_refused_until_released(tmp_path):
    store = tmp_path / "out.zarr"
    store.mkdir()
    first = lock.acquire(store)
    with pytest.raises(StoreLocked, match=r"output '.*out\.zarr' is in use by another run in this process; wait"):
        lock.acquire(store)
    with pytest.raises(StoreLocked):
        lock.check_unlocked(store)
    assert not free_for_another_process(store)
    first.release()
    first.release()  # again: nothing
    assert free_for_another_process(store)
    with lock.acquire(store):
        assert not free_for_another_process(store)
    lock.check_unlocked(store)
    lock.acquire(store).release()


def test_a_lock_held_by_another_process_is_refused_with_what_to_do(tmp_path, hold):
    store = tmp_path / "out.zarr"
    hold(store)
    message = (r"output '.*out\.zarr' is in use by another run in another process \(a napari window or a command "
               r"line\); wait for that run to finish, or stop it .*\(resume=True\), or choose another output")
    with pytest.raises(StoreLocked, match=message):
        lock.acquire(store)
    with pytest.raises(StoreLocked, match=message):
        lock.check_unlocked(store)


def test_check_unlocked_creates_nothing(tmp_path):
    folder = tmp_path / "someone's folder"
    folder.mkdir()
    lock.check_unlocked(folder)
    lock.check_unlocked(tmp_path / "absent")
    assert list(folder.iterdir()) == [] and not (tmp_path / "absent").exists()


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path, hold):
    store = tmp_path / "out.zarr"
    proc = hold(store)
    with pytest.raises(StoreLocked):
        lock.acquire(store)
    proc.kill()  # SIGKILL: no finally, no atexit runs in it
    assert proc.wait(timeout=60) == (-signal.SIGKILL if sys.platform != "win32" else 1)
    lock.acquire(store).release()


def test_run_holds_the_lock_and_a_second_run_is_refused(tmp_path, src):
    out = tmp_path / "out.zarr"
    run = prepare_run(open_volume(src), out, SETTINGS)
    assert free_for_another_process(out)  # prepared, not started: nothing held
    steps = run.steps()
    next(steps)
    assert not free_for_another_process(out)
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
    assert free_for_another_process(out)  # complete: released
    assert prepare_run(open_volume(src), out, SETTINGS, resume=True).todo == []


def test_cancelled_run_releases_the_lock(tmp_path, src):
    out = tmp_path / "out.zarr"
    steps = prepare_run(open_volume(src), out, SETTINGS).steps()
    for event in steps:
        if isinstance(event, SliceStep):
            break
    assert not free_for_another_process(out)
    steps.close()  # as the widget's Cancel does
    assert free_for_another_process(out)
    lock.acquire(out).release()  # free for the next run here too


def test_failed_run_releases_the_lock(tmp_path):
    bad = noisy_fluorescence_stack(3, (32, 32), seed=1)[0].astype(np.float32)
    bad[1, 5, 5] = np.nan
    src, out = tmp_path / "bad.tif", tmp_path / "out.zarr"
    tifffile.imwrite(src, bad, ome=True, metadata={"axes": "ZYX"})
    with pytest.raises(RunFailed, match=r"slice Z=1 failed .*; the finished slices are kept: fix the problem and "
                                        r"resume \(resume=True\)"):
        denoise_volume(src, out, SETTINGS)
    assert free_for_another_process(out)
    lock.acquire(out).release()


def test_progress_callback_raising_releases_the_lock(tmp_path, src):
    out = tmp_path / "out.zarr"

    def stop(event):
        if isinstance(event, SliceStep):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        denoise_volume(src, out, SETTINGS, progress=stop)
    assert free_for_another_process(out)
    lock.acquire(out).release()


def test_command_line_on_a_locked_store_is_one_error_line_in_its_options(tmp_path, src, capsys, hold):
    out = tmp_path / "out.zarr"
    prepare_run(open_volume(src), out, SETTINGS)  # the store, as a run that has just started makes it
    hold(out)
    before = sorted(p.name for p in out.iterdir())
    for flag in ("--resume", "--overwrite"):
        assert main(["denoise", str(src), str(out), "--preset", "fast", "--device", "cpu", flag]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("napari-scoredvi: error: output ") and "is in use by another run" in err[-1]
        assert "(--resume)" in err[-1] and "resume=True" not in err[-1]
        assert "Traceback" not in "\n".join(err)
    assert sorted(p.name for p in out.iterdir()) == before


KILLED_RUN = """
import os, signal, sys
from napari_scoredvi.engine.settings import DenoiseSettings
from napari_scoredvi.pipeline.events import SliceDone
from napari_scoredvi.pipeline.run import denoise_volume

def kill(event):
    if isinstance(event, SliceDone):
        os.kill(os.getpid(), signal.SIGKILL)

denoise_volume(sys.argv[1], sys.argv[2], DenoiseSettings("fast", "cpu"), progress=kill)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_run_killed_while_holding_the_lock_is_taken_over_by_the_next_run(tmp_path, src):
    out = tmp_path / "killed.zarr"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(src), str(out)])
    assert proc.wait(timeout=300) == -signal.SIGKILL
    run = prepare_run(open_volume(src), out, SETTINGS, resume=True)
    assert run.todo == [1, 2]  # the killed run wrote slice 0 and held the lock then
    done = [event.number for event in run.steps() if isinstance(event, SliceDone)]
    assert done == [1, 2] and run.store.done().all()
    assert free_for_another_process(out)
