"""One run's work as a worker sees it: the input, the output store, the slice grid and the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.settings import DenoiseSettings
from ..io.read import Volume
from ..io.slice_grid import SliceGrid
from ..io.store import OUTPUTS, POSTERIOR_STD


@dataclass(frozen=True)
class SliceJob:
    """Everything a worker needs to denoise slices of one run (picklable; no open files).

    input_path: where workers read the input ("" when the slices are sent with each task).
    write_here: workers write the output store themselves (else they return the slices' arrays).
    rgb: the channel axis holds R, G, B, denoised together by the colour priors (an RGB TIFF).
    context_axis: the grid axis (an index into ``grid.grid_axes``) along which a slice's neighbours
    are read as its context (``settings.context``); None: the last (z in a T x Z stack).
    """

    input_path: str
    axes: str
    output_path: str
    outputs: tuple[str, ...]
    grid: SliceGrid
    channel_axis: int | None  # input dimension denoised jointly as channels, or None
    settings: DenoiseSettings
    run_id: str = ""
    write_here: bool = True
    rgb: bool = False
    context_axis: int | None = None

    def label(self, k: int) -> dict[str, int]:
        """Slice ``k``'s position by axis letter, e.g. ``{"T": 0, "Z": 3}``."""
        return self.grid.label(k, self.axes)

    @property
    def context_letter(self) -> str:
        """The letter of the axis a slice's neighbours are read along ("" for a single 2D image)."""
        stack_axes = "".join(self.axes[d] for d in self.grid.grid_axes)
        if not stack_axes:
            return ""
        return stack_axes[-1 if self.context_axis is None else self.context_axis]

    def where(self, k: int) -> str:
        """Slice ``k``'s position as text, e.g. ``"T=0 Z=3"`` ("" for a single 2D image)."""
        return slice_text(self.label(k))


def slice_text(label: dict[str, int]) -> str:
    """A slice's position by axis letter as text, e.g. ``"T=0 Z=3"`` ("" for a single 2D image)."""
    return " ".join(f"{ax}={i}" for ax, i in label.items())


def make_job(vol: Volume, in_path: Path | None, out_path: Path, channel_axis, settings: DenoiseSettings,
             posterior_std: bool, context_axis: str | None = None) -> SliceJob:
    """The job of denoising every 2D slice of ``vol`` into ``out_path`` (ValueError for a
    ``channel_axis`` that is not one of the non-Y/X dimensions). An RGB volume's ``C`` axis is the
    channel axis unless another is given; R, G, B then go through the colour priors together.
    context_axis: the letter of the axis along which neighbours are read (e.g. ``"Z"``, ``"T"``;
    None: the last one before Y and X that is not the channel axis); ValueError for another letter."""
    ndim = len(vol.axes)
    if channel_axis is None and vol.rgb and "C" in vol.axes:
        channel_axis = vol.axes.index("C")
    if channel_axis is not None:
        ok = isinstance(channel_axis, (int, np.integer)) and -ndim <= channel_axis < ndim
        if not ok or not int(channel_axis) % ndim < ndim - 2:
            raise ValueError(
                f"channel_axis must name one of the non-Y/X dimensions of axes {vol.axes!r} "
                f"(0 to {ndim - 3}), got {channel_axis!r}"
            )
        channel_axis = int(channel_axis) % ndim
    grid = SliceGrid(tuple(int(s) for s in vol.array.shape), tuple(d for d in range(ndim - 2) if d != channel_axis))
    outputs = OUTPUTS + ((POSTERIOR_STD,) if posterior_std else ())
    rgb = vol.rgb and channel_axis is not None and vol.axes[channel_axis] == "C"
    along = None
    if context_axis is not None:
        letter = str(context_axis).upper()
        stack_axes = "".join(vol.axes[d] for d in grid.grid_axes)
        if len(letter) != 1 or letter not in stack_axes:
            raise ValueError(f"the context axis must be one of the stack's axes {', '.join(stack_axes) or '(none)'} "
                             f"(not Y, X or the channel axis), got {context_axis!r}")
        along = stack_axes.index(letter)
    return SliceJob(str(in_path) if in_path else "", vol.axes, str(out_path), outputs, grid, channel_axis, settings,
                    rgb=rgb, context_axis=along)
