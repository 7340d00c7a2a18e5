"""Which 2D slices an array holds and how to index them: the one place that turns a slice number
into an array index (the widget, the batch pipeline and the cluster tasks all use it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SliceGrid:
    """The slices of an array of ``shape``: every combination of indices along ``grid_axes`` (the
    other dimensions, Y and X and any channel axis, are kept whole). Slice numbers run over the grid
    in C order (the last grid axis fastest)."""

    shape: tuple[int, ...]
    grid_axes: tuple[int, ...]

    @classmethod
    def leading(cls, shape: tuple[int, ...], n_lead: int) -> SliceGrid:
        """The grid over the first ``n_lead`` dimensions (e.g. all but Y, X for a plain stack)."""
        return cls(tuple(int(s) for s in shape), tuple(range(n_lead)))

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(int(self.shape[d]) for d in self.grid_axes)

    @property
    def count(self) -> int:
        """How many slices there are."""
        return int(np.prod(self.grid_shape)) if self.grid_axes else 1

    def position(self, k: int) -> tuple[int, ...]:
        """The grid indices of slice number ``k`` (one int per grid axis)."""
        if not self.grid_axes:
            return ()
        return tuple(int(i) for i in np.unravel_index(int(k), self.grid_shape))

    def number(self, position: tuple[int, ...]) -> int:
        """The slice number of grid indices ``position``."""
        return int(np.ravel_multi_index(tuple(position), self.grid_shape)) if self.grid_axes else 0

    def index(self, k: int) -> tuple:
        """The array index of slice ``k``: ints on the grid axes, full slices elsewhere."""
        idx: list = [slice(None)] * len(self.shape)
        for dim, i in zip(self.grid_axes, self.position(k)):
            idx[dim] = i
        return tuple(idx)

    def label(self, k: int, axes: str) -> dict[str, int]:
        """Slice ``k``'s position by axis letter (``axes``: one letter per dimension), e.g. ``{"Z": 3}``."""
        return {axes[d]: i for d, i in zip(self.grid_axes, self.position(k))}
