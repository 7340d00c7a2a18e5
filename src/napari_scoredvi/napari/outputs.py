"""A started run as the denoise widget follows it, without Qt: the run's events (never an exception),
how it ended, and its output layers kept current as slices finish."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field

from ..pipeline.events import RunEvent, SliceDone
from ..pipeline.progress import RunProgress
from .layers import MapContrast


@dataclass(frozen=True)
class RunEnd:
    """How a run ended: ``error`` (None if it did not fail) and the engine's account of its last
    slice (``DenoiseInfo.as_dict()``; None for a run into a store)."""

    error: str | None = None
    info: dict | None = None


def run_to_end(steps: Generator) -> Generator[RunEvent, None, RunEnd]:
    """Yield the events of ``steps`` (:meth:`.request.RunPlan.memory_steps` or
    :meth:`..pipeline.run.StackRun.steps`) and return how it ended: an exception, or a failed slice,
    becomes :attr:`RunEnd.error` (for a notification, never a traceback in napari). Closing this
    generator closes ``steps``."""
    try:
        outcome = yield from steps
    except Exception as exc:  # noqa: BLE001 - a notification, never a traceback in napari
        return RunEnd(str(exc) or type(exc).__name__)
    if outcome is None:  # a run into a store
        return RunEnd()
    info = outcome.info.as_dict() if outcome.info is not None else None
    if outcome.failed is not None:
        where = f"slice {outcome.failed.position}: " if outcome.failed.position else ""
        return RunEnd(f"{where}{outcome.failed.error}", info)
    return RunEnd(None, info)


@dataclass
class ActiveRun:
    """A started run: its ``source`` layer, its output ``layers`` (output name -> layer), the arrays
    those are written to (``outputs``: in memory, or the zarr arrays of ``store``), its progress and
    the maps' contrast."""

    source: object
    layers: dict[str, object]
    outputs: Mapping[str, object]
    progress: RunProgress
    store: object | None = None
    contrast: MapContrast = field(default_factory=MapContrast)

    def slice_done(self, event: SliceDone, shown: Callable[[object], bool] = lambda layer: True) -> None:
        """A slice is written: stretch the maps' contrast, record it in each output layer that is still
        ``shown`` (the user may remove one: the run goes on without it) and refresh those layers."""
        idx = tuple(event.position)
        for name, layer in self.layers.items():
            if not shown(layer):
                continue
            if name != "denoised":
                top = self.contrast.update(name, self.outputs[name][idx])
                if top is not None:
                    layer.contrast_limits = (0.0, top)
            layer.metadata["scoredvi"]["slices_done"].append([int(i) for i in idx])
            layer.refresh()

    def finished(self, end: RunEnd) -> None:
        """The run completed: its last slice's info goes into the output layers' metadata."""
        if end.info is not None:
            for layer in self.layers.values():
                layer.metadata["scoredvi"]["info"] = end.info
