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
def test_a_user_setting_in_the_environment_is_left_alone():
    result, kept = _kept_mb("fix", MALLOC_MMAP_THRESHOLD_="1048576")
    assert result == "True" and kept < 2


def test_second_call_changes_nothing():
    assert tune_allocator() is tune_allocator()


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
