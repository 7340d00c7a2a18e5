"""Keeping a long run's memory flat and its page faults few: allocator settings for the fits.

A fit allocates and frees tensors of up to hundreds of MB at every step. Two settings, applied once
per process by :func:`tune_allocator`:

* glibc serves an allocation larger than its *mmap threshold* with ``mmap`` and gives it back to
  the system on ``free``. By default the threshold moves: each time such a block is freed, it rises
  to that block's size (up to 32 MiB on 64-bit systems; ``man mallopt``). Soon most of a fit's
  tensors come from the heap instead, and the heap fragments: the peak resident memory of a
  1024 x 1024 stack crept up slice after slice (docs/batch.md, Memory). Setting the threshold once
  turns that adjustment off and keeps the peak flat.
* Every freshly mapped 4 KiB page costs a page fault: about 4 million per 20-step 1024 x 1024 fit on
  the development CPU. torch backs its CPU buffers of 2 MB and more with transparent huge pages
  when the environment variable ``THP_MEM_ALLOC_ENABLE`` is 1 (read at its first such buffer),
  which cuts the faults more than 10-fold and the time per slice by about 20% there, where the kernel
  allows THP ("madvise" or "always" in ``/sys/kernel/mm/transparent_hugepage/enabled``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys

#: allocations above this many bytes are mmapped and returned to the system when freed. Measured
#: (docs/batch.md, Memory): 128 KiB, glibc's starting value, kept the peak flattest but made 512 x 512
#: fits about 1.5x slower (their many small crop tensors were mapped afresh every step); 4 MiB keeps small
#: tensors on the heap, and every larger torch buffer is THP-backed.
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
