"""glibc mmap threshold: freed large blocks go back to the system, so a long run's memory stays flat."""

import os
import platform
import subprocess
import sys

import pytest

from napari_scoredvi.engine.host_memory import tune_allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Allocate and free an 8 MiB block five times, with a small block allocated after each: with glibc's
# moving threshold the first free raises it, the later blocks come from the heap and stay resident.
CHILD = """
import sys
import numpy as np
from napari_scoredvi.engine.host_memory import tune_allocator
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
print(tune_allocator() if sys.argv[1] == "fix" else None)
before, keep = rss_mb(), []
for _ in range(5):
    big = np.ones(2**20)
    keep.append(np.ones(1000))
    del big
print(rss_mb() - before)
"""


def _kept_mb(mode: str, **env: str) -> tuple[str, float]:
    # any MALLOC_* setting (dask.distributed sets MALLOC_TRIM_THRESHOLD_ in its processes) also stops
    # glibc's threshold from moving, which would make the control below pass for the wrong reason
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "NAPARI_SCOREDVI_ALLOCATOR"}
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True,
                         env={**clean, **env})
    result, kept = out.stdout.split()
    return result, float(kept)


@pytest.mark.skipif(not GLIBC, reason="the setting exists only in glibc (Linux)")
def test_fixed_threshold_returns_freed_blocks_to_the_system():
    result, kept = _kept_mb("fix")
    assert result == "True"
    assert kept < 2, f"{kept:.1f} MB stayed resident after freeing the blocks"
    _, kept_default = _kept_mb("default")  # the control: glibc's default keeps them
    assert kept_default > 6


@pytest.mark.skipif(not GLIBC, reason="the setting exists only in glibc (Linux)")
@pytest.mark.parametrize("threshold,stays_resident", [("1048576", False), ("67108864", True)])
def test_a_user_setting_in_the_environment_is_left_alone(threshold, stays_resident):
    """A user's threshold below the 8 MiB blocks returns them to the system; one above them (64 MiB)
    keeps them on the heap, as glibc's default would: tune_allocator did not put its 4 MiB over it.
    (The user's trim threshold keeps a freed heap block from being trimmed away by chance: whether it
    ends at the top of the heap depends on the layout, which even the environment's size changes.)"""
    result, kept = _kept_mb("fix", MALLOC_MMAP_THRESHOLD_=threshold, MALLOC_TRIM_THRESHOLD_=str(128 * 2**20))
    assert result == "True"
    assert (kept > 6) if stays_resident else (kept < 2), f"{kept:.1f} MB stayed resident"


@pytest.mark.skipif(not GLIBC, reason="the setting exists only in glibc (Linux)")
def test_allocator_default_in_the_environment_turns_both_settings_off():
    result, kept = _kept_mb("fix", NAPARI_SCOREDVI_ALLOCATOR="default")
    assert result == "False" and kept > 6, f"{kept:.1f} MB stayed resident"  # glibc's own moving threshold
    code = ("import os; from napari_scoredvi.engine.host_memory import tune_allocator; "
            "print(tune_allocator(), os.environ.get('THP_MEM_ALLOC_ENABLE'))")
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "NAPARI_SCOREDVI_ALLOCATOR": " Default "}).stdout.split()
    assert out == ["False", "None"]  # and torch is not asked for huge pages


# The settings are applied once per process: a second call neither changes the answer nor sets again
# what the first one set (here the huge-pages variable, removed in between).
TWICE = """
import os
from napari_scoredvi.engine.host_memory import tune_allocator
first = tune_allocator()
del os.environ["THP_MEM_ALLOC_ENABLE"]
print(first, tune_allocator(), os.environ.get("THP_MEM_ALLOC_ENABLE"))
"""


def test_second_call_changes_nothing():
    env = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "NAPARI_SCOREDVI_ALLOCATOR")}
    first, second, thp = subprocess.run([sys.executable, "-c", TWICE], capture_output=True, text=True, env=env,
                                        check=True).stdout.split()
    assert first == second == ("True" if GLIBC else first) and thp == "None"


def test_huge_pages_are_asked_of_torch_unless_the_user_chose():
    code = "import os; from napari_scoredvi.engine.host_memory import tune_allocator; tune_allocator(); " \
           "print(os.environ['THP_MEM_ALLOC_ENABLE'])"
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True).stdout.strip() == "1"
    env["THP_MEM_ALLOC_ENABLE"] = "0"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True).stdout.strip() == "0"


def test_the_user_can_turn_the_settings_off(monkeypatch):
    monkeypatch.setenv("NAPARI_SCOREDVI_ALLOCATOR", "default")
    assert tune_allocator() is False
