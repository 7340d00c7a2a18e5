"""A started run as the denoise widget follows it, without Qt: the run's events (never an exception),
how it ended, and its output layers kept current as slices finish."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..engine.result import Cancelled
from ..pipeline.events import RunEvent, SliceDone
from ..pipeline.progress import RunProgress
from .layers import MapContrast


@dataclass(frozen=True)
class RunEnd:
    """How a run ended: ``error`` (None if it did not fail) and the engine's account of its last
    slice (``DenoiseInfo.as_dict()``; None for a run into a store)."""

    error: str | None = None
    info: dict | None = None

    @property
    def noise_note(self) -> str:
        """What the user should know of the noise the engine found (:func:`noise_note`)."""
        return noise_note(self.info)


def noise_note(info: dict | None) -> str:
    """For a run whose last slice's noise was spatially correlated (``info`` as
    ``DenoiseInfo.as_dict()``): its lag-1 correlation and how much more than ``var / n`` the
    variance of a region's mean is; ``""`` otherwise. The noise-variance map stays each pixel's own."""
    if not info or not info.get("noise_correlated"):
        return ""
    from ..engine.noise_estimate import correlation_text

    text = correlation_text(*info.get("noise_lag1", (0.0, 0.0)))
    return f"noise spatially correlated ({text}); the noise-variance map is per pixel"


def run_to_end(steps: Generator) -> Generator[RunEvent, None, RunEnd]:
    """Yield the events of ``steps`` (:meth:`.request.RunPlan.memory_steps` or
    :meth:`..pipeline.run.StackRun.steps`) and return how it ended: an exception, or a failed slice,
    becomes :attr:`RunEnd.error` (for a notification, never a traceback in napari). Closing this
    generator closes ``steps``."""
    try:
        outcome = yield from steps
    except Cancelled:  # a Cancel inside a network pass (..engine.stopping): the worker says it
        raise
    except Exception as exc:  # noqa: BLE001 - a notification, never a traceback in napari
        return RunEnd(str(exc) or type(exc).__name__)
    if outcome is None:  # a run into a store
        return RunEnd()
    info = outcome.info.as_dict() if outcome.info is not None else None
    if outcome.failed is not None:
        where = f"slice {outcome.failed.position}: " if outcome.failed.position else ""
        return RunEnd(f"{where}{outcome.failed.error}", info)
    return RunEnd(None, info)


#: at most this many slice positions are listed in a status line
LISTED = 6


def _runs(values: list[int]) -> str:
    """``[0, 1, 2, 4]`` -> ``"0-2, 4"``."""
    parts, start = [], None
    for i, v in enumerate(values):
        start = v if start is None else start
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts)


def describe_positions(positions: list[tuple[int, ...]], axes: str) -> str:
    """Slice positions for people: ``"z=2"``, ``"z=0-2, 4"``, ``"t=0 z=1, t=0 z=3"`` (``axes``: one
    letter per leading axis); of several axes at most :data:`LISTED` positions, then an ellipsis."""
    axes = axes.lower()
    if len(axes) == 1:
        return f"{axes}={_runs(sorted(p[0] for p in positions))}"
    shown = [" ".join(f"{a}={i}" for a, i in zip(axes, p)) for p in sorted(positions)[:LISTED]]
    return ", ".join(shown) + (", ..." if len(positions) > LISTED else "")


def coverage_text(computed, axes: str) -> str:
    """Which slices of an output hold results, from its per-slice flags ``computed`` (bool, the
    leading axes' shape; ``axes``: their letters), e.g. ``"slice 3 of 5 computed (z=2); the other 4
    are not computed (blank)"``; ``""`` when every slice is computed (or for one 2D image)."""
    flags = np.asarray(computed, bool)
    n, m = int(flags.size), int(flags.sum())
    if flags.ndim == 0 or m == n:
        return ""
    if m == 0:
        return f"none of the {n} slices is computed yet"
    positions = [tuple(int(i) for i in p) for p in np.argwhere(flags)]
    where = describe_positions(positions, axes)
    rest = f"the other {n - m} {'is' if n - m == 1 else 'are'} not computed (blank)"
    if m == 1:
        number = int(np.ravel_multi_index(positions[0], flags.shape)) + 1
        return f"slice {number} of {n} computed ({where}); {rest}"
    return f"{m} of {n} slices computed ({where}); {rest}"


@dataclass
class ActiveRun:
    """A started run: its ``source`` layer, its output ``layers`` (output name -> layer), the arrays
    those are written to (``outputs``: in memory, or the zarr arrays of ``store``), its progress and
    the outputs' contrast. ``computed`` returns the per-slice flags of the slices that hold results
    (bool, the leading axes' shape; None for one 2D image) and ``axes`` names the leading axes."""

    source: object
    layers: dict[str, object]
    outputs: Mapping[str, object]
    progress: RunProgress
    store: object | None = None
    contrast: MapContrast = field(default_factory=MapContrast)
    computed: Callable[[], object] | None = None
    axes: str = ""

    def slice_done(self, event: SliceDone, shown: Callable[[object], bool] = lambda layer: True) -> None:
        """A slice is written: set the outputs' contrast from their finished slices, record it in each
        output layer that is still ``shown`` (the user may remove one: the run goes on without it) and
        refresh those layers."""
        idx = tuple(event.position)
        for name, layer in self.layers.items():
            if not shown(layer):
                continue
            if name != "denoised":
                top = self.contrast.update(name, self.outputs[name][idx])
                if top is not None:
                    layer.contrast_limits = (0.0, top)
            elif not getattr(layer, "rgb", False):  # an RGB result keeps the source's 0-255 scale
                limits = self.contrast.update_range(name, self.outputs[name][idx])
                if limits is not None:
                    layer.contrast_limits = limits
            meta = layer.metadata["scoredvi"]
            meta["slices_done"].append([int(i) for i in idx])
            if event.info is not None or event.record:  # the engine's account of the slice written last
                meta["info"] = event.info.as_dict() if event.info is not None else dict(event.record)
            layer.refresh()

    def coverage(self) -> str:
        """Which slices of the outputs hold results (:func:`coverage_text`); ``""`` when all do."""
        return coverage_text(self.computed(), self.axes) if self.computed is not None else ""

    def finished(self, end: RunEnd) -> None:
        """The run completed: its last slice's info goes into the output layers' metadata."""
        if end.info is not None:
            for layer in self.layers.values():
                layer.metadata["scoredvi"]["info"] = end.info
