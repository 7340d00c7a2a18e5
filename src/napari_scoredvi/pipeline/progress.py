"""How far a run is, from its events: work and slices done, and an estimate of the time left.

A front end makes a :class:`RunProgress` when it starts a run and passes it every event the run
yields (:mod:`.events`); the napari widget shows its :meth:`RunProgress.status` line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .events import RunEvent, SliceDone, SliceStep


def describe_seconds(seconds: float) -> str:
    """A rounded duration for people: ``"40 s"``, ``"3 min"``, ``"1 h 5 min"``, ``"2 h"``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


@dataclass
class RunProgress:
    """The progress of one run, and the time it has left.

    slices_total: the slices the run covers, ``slices_before`` of them finished by an earlier run
    (resume). fits_planned: the slices it will denoise (default: those left; with warm starts also
    the slices refitted only to start the next, :func:`.slices.planned_fits`). clock: where the time
    comes from (seconds). Counted from the events: units of work done (prior passes or fit steps,
    :class:`~.events.SliceStep`) and slices done (with those done before); started: ``clock()`` when
    it was made.

    The work left is the current slice's units left plus, for each slice not started, the mean units
    of the slices started so far; the time left is that work at the pace so far. Both are known from
    the first unit of the first slice on.
    """

    slices_total: int
    slices_before: int = 0
    fits_planned: int | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    units_done: int = field(init=False, default=0)
    slices_done: int = field(init=False)
    started: float = field(init=False)
    _totals: dict[int, int] = field(init=False, default_factory=dict, repr=False)
    _current: tuple[int, int] = field(init=False, default=(0, 0), repr=False)  # (step, steps) of the last unit

    def __post_init__(self) -> None:
        self.slices_done = self.slices_before
        self.started = self.clock()
        if self.fits_planned is None:
            self.fits_planned = self.slices_todo

    def record(self, event: RunEvent) -> RunEvent:
        """Count ``event`` (a unit of work or a finished slice; other events change nothing); returns it."""
        if isinstance(event, SliceStep):
            self.units_done += 1
            self._totals[event.number] = event.steps
            self._current = (event.step, event.steps)
        elif isinstance(event, SliceDone):
            self.slices_done += 1
        return event

    @property
    def slices_todo(self) -> int:
        """Slices this run has to do (not counting those done before it)."""
        return self.slices_total - self.slices_before

    def units_left(self) -> float | None:
        """Units of work left (an estimate while slices are not started); None before the first unit."""
        if not self._totals:
            return None
        step, steps = self._current
        per_slice = sum(self._totals.values()) / len(self._totals)
        not_started = max(0, self.fits_planned - len(self._totals))
        return max(0, steps - step) + not_started * per_slice

    def fraction(self) -> float:
        """The share of the run's work done, 0 to 1 (for a progress bar); slices done before a resume
        are not part of this run's work."""
        left = self.units_left()
        if left is None:
            return 0.0
        return self.units_done / (self.units_done + left) if self.units_done + left > 0 else 1.0

    def seconds_left(self, now: float | None = None) -> float | None:
        """Seconds left at the pace so far (units per second since the start); None before the first unit."""
        left = self.units_left()
        if left is None:
            return None
        elapsed = (self.clock() if now is None else now) - self.started
        return left * elapsed / self.units_done

    def status(self, now: float | None = None) -> str:
        """``"2/5 slice(s) done, about 3 min left"`` (the time from the first unit of work on, until the
        last slice)."""
        text = f"{self.slices_done}/{self.slices_total} slice(s) done"
        left = self.seconds_left(now)
        if left is not None and self.slices_done < self.slices_total:
            text += f", about {describe_seconds(left)} left"
        return text
