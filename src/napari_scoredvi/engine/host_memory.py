"""Keeping a long run's memory flat and its page faults few: allocator settings for the engine.

Each prior pass over a tile allocates and frees feature maps of up to hundreds of MB (a fit, at every
step). Two settings, applied once per process by :func:`tune_allocator`:

* Every freshly mapped 4 KiB page costs a page fault: about 10 million for four ``fast`` 1024 x 1024
  slices on the development CPU. torch backs its CPU buffers of 2 MB and more with transparent huge
  pages when the environment variable ``THP_MEM_ALLOC_ENABLE`` is 1 (read at its first such buffer),
  which cuts the faults (with the threshold below) about 7-fold and the time per slice by about a
  fifth there (``python -m benchmarks speed --sections allocator``), where the kernel allows THP
  ("madvise" or "always" in ``/sys/kernel/mm/transparent_hugepage/enabled``).
* glibc serves an allocation larger than its *mmap threshold* with ``mmap`` and gives it back to
  the system on ``free``. By default the threshold moves: each time such a block is freed, it rises
  to that block's size (up to 32 MiB on 64-bit systems; ``man mallopt``). Soon most tensors come
  from the heap instead, and the heap fragments: the peak resident memory of a stack creeps up slice
  after slice. Setting the threshold once turns that adjustment off and keeps the peak flat (about
  7 % lower for four 1024 x 1024 slices, same measurement).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys

#: allocations above this many bytes are mmapped and returned to the system when freed: small tensors
#: stay on the heap (128 KiB, glibc's starting value, mapped every small tensor afresh and was slower),
#: and every larger torch buffer is THP-backed.
MMAP_THRESHOLD = 4 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt parameter number, from glibc's <malloc.h>


def tune_allocator() -> bool:
    """Apply both settings to this process, once (later calls do nothing); return whether the mmap
    threshold is fixed. Settings the user made in the environment are left alone, and
    ``NAPARI_SCOREDVI_ALLOCATOR=default`` turns both off."""
    if os.environ.get("NAPARI_SCOREDVI_ALLOCATOR", "").strip().lower() == "default":
        return False
    return _apply_once()


@functools.cache
def _apply_once() -> bool:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    return fix_mmap_threshold()


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process.

    Returns True when the setting is in force: on Linux with glibc, unless the user set
    ``MALLOC_MMAP_THRESHOLD_`` in the environment (then glibc already uses theirs). Returns False
    elsewhere (macOS, Windows, musl), where nothing is changed.
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    except (OSError, AttributeError):
        return False
