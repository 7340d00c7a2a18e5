"""What a stack run reports while it works: one frozen dataclass per kind of event.

Names mean one thing throughout the pipeline: a slice's ``number`` counts the slices of a
:class:`~napari_scoredvi.io.slice_grid.SliceGrid` in C order; its ``position`` is its index along
each grid axis (a tuple); its ``label`` is that position by axis letter (``{"Z": 3}``); ``done``
counts the slices written so far and ``total`` the slices the run covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.result import DenoiseInfo


@dataclass(frozen=True)
class RunStarted:
    """A run into a store began: ``done`` of its ``total`` slices were finished before (resume)."""

    done: int
    total: int


@dataclass(frozen=True)
class Waiting:
    """A cluster run is waiting for its workers (lets the caller stop it meanwhile)."""


@dataclass(frozen=True)
class SliceStep:
    """Unit ``step`` of the ``steps`` units of work of slice ``number`` is done; ``unit`` says what
    they are (``"prior pass"``, ``"fit step"``: :class:`~napari_scoredvi.engine.result.WorkStep`).
    Slices refitted only to warm-start the next are reported too. A run into a store adds the slice's
    ``label``."""

    number: int
    step: int
    steps: int
    unit: str = "prior pass"
    label: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SliceDone:
    """Slice ``number`` is written (its outputs, then its done flag). ``info`` is the engine's account
    of it where it ran in this process (None when it came from a cluster worker); ``record`` is its
    provenance record in the output store (empty for an in-memory run)."""

    number: int
    position: tuple[int, ...]
    done: int
    total: int
    info: DenoiseInfo | None = None
    record: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SliceFailed:
    """Slice ``number`` could not be denoised; the run stops there (the slices written before stay)."""

    number: int
    position: tuple[int, ...]
    error: BaseException

    @property
    def message(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"


#: any event of a run
RunEvent = RunStarted | Waiting | SliceStep | SliceDone | SliceFailed
