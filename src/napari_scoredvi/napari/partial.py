"""An in-memory output stack whose 2D slices read as NaN until they are written, without Qt.

The widget's in-memory outputs of a stack (one slice of it, or an RGB stack) are
:class:`PartialStack` objects: the pipeline writes slices into them like into a numpy array, and
napari reads them like one (``shape``, ``dtype``, ``ndim``, ``size``, ``__getitem__``,
``__array__``). A slice not yet written reads as NaN, which napari shows as blank ("not computed"),
never as zeros that look like a result.

Memory: the values live in one ``np.zeros`` buffer. numpy gets it from ``calloc``, and the
operating system hands out such memory page by page on first write, so pages that are never
written take no memory: one slice of a 200 x 2048 x 2048 stack costs one 16 MiB slice, not
3.2 GiB. (``np.full(shape, np.nan)`` would write, and so allocate, every page at once.) Reading a
slice that was never written does not touch the buffer: it is a fresh NaN array of the slice's
size. The written flags are one bool per slice.
"""

from __future__ import annotations

import numpy as np


def _expand(key, ndim: int) -> tuple:
    """``key`` as a tuple of ``ndim`` entries (Ellipsis expanded, missing axes as full slices)."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is None for k in key):
        raise IndexError("PartialStack does not support new axes (None) in an index")
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        rest = [k for k in key[i + 1:] if k is not Ellipsis]
        key = key[:i] + (slice(None),) * (ndim - i - len(rest)) + tuple(rest)
    if len(key) > ndim:
        raise IndexError(f"too many indices for an array of {ndim} dimension(s)")
    return tuple(key) + (slice(None),) * (ndim - len(key))


class PartialStack:
    """A float array of ``shape`` whose slices over the first ``lead`` axes read as NaN until written.

    Writing ``stack[index] = values`` marks the slices the index touches on the leading axes as
    written (the pipeline writes whole slices: ints on the leading axes). ``written`` is the bool
    array of those flags (shape ``shape[:lead]``).
    """

    def __init__(self, shape: tuple[int, ...], lead: int, dtype=np.float32) -> None:
        self._values = np.zeros(tuple(int(s) for s in shape), dtype)  # pages never written take no memory
        self.lead = int(lead)
        self.written = np.zeros(self._values.shape[: self.lead], bool)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._values.shape

    @property
    def dtype(self) -> np.dtype:
        return self._values.dtype

    @property
    def ndim(self) -> int:
        return self._values.ndim

    @property
    def size(self) -> int:
        return self._values.size

    @property
    def nbytes(self) -> int:
        return self._values.nbytes

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (f"PartialStack(shape={self.shape}, dtype={self.dtype}, "
                f"written={int(self.written.sum())}/{self.written.size} slice(s))")

    def __setitem__(self, key, value) -> None:
        key = _expand(key, self.ndim)
        self._values[key] = value
        self.written[key[: self.lead]] = True

    def _mask(self, key: tuple) -> np.ndarray:
        """Which elements of ``self[key]`` were written (bool, the result's shape)."""
        flags = self.written.reshape(self.written.shape + (1,) * (self.ndim - self.lead))
        return np.broadcast_to(flags, self.shape)[key]

    def __getitem__(self, key):
        key = _expand(key, self.ndim)
        mask = self._mask(key)
        if np.all(mask):
            return self._values[key]
        nan = self.dtype.type(np.nan)
        if not np.any(mask):  # nothing written here: the buffer is not read at all
            return np.full(np.shape(mask), nan, self.dtype) if np.ndim(mask) else nan
        return np.where(mask, self._values[key], nan).astype(self.dtype, copy=False)

    def __array__(self, dtype=None, copy=None):
        values = np.asarray(self[...])
        return values if dtype is None else values.astype(dtype)
