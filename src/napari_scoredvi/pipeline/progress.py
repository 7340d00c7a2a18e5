"""How far a run is, from its events: steps and slices done, and an estimate of the time left.

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
    """The progress of one run.

    steps_planned: Adam steps the run should take (:func:`.slices.planned_iterations`; divergence
    retries can add some). slices_total: the slices it covers, ``slices_before`` of them finished by
    an earlier run (resume). clock: where the time comes from (seconds). Counted from the events:
    steps_done, and slices_done (with those done before); started: ``clock()`` when it was made.
    """

    steps_planned: int
    slices_total: int
    slices_before: int = 0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    steps_done: int = field(init=False, default=0)
    slices_done: int = field(init=False)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.slices_done = self.slices_before
        self.started = self.clock()

    def record(self, event: RunEvent) -> RunEvent:
        """Count ``event`` (a step or a finished slice; other events change nothing); returns it."""
        if isinstance(event, SliceStep):
            self.steps_done += 1
        elif isinstance(event, SliceDone):
            self.slices_done += 1
        return event

    @property
    def slices_todo(self) -> int:
        """Slices this run has to do (not counting those done before it)."""
        return self.slices_total - self.slices_before

    @property
    def steps_shown(self) -> int:
        """Steps done, at most the planned ones (for a progress bar)."""
        return min(self.steps_done, self.steps_planned)

    def seconds_left(self, now: float | None = None) -> float | None:
        """Seconds left at the pace so far (steps per second since the start); None before the first step."""
        if self.steps_done == 0:
            return None
        elapsed = (self.clock() if now is None else now) - self.started
        return max(0, self.steps_planned - self.steps_done) * elapsed / self.steps_done

    def status(self, now: float | None = None) -> str:
        """``"2/5 slice(s) done, about 3 min left"`` (the time once a step is done, until the last slice)."""
        text = f"{self.slices_done}/{self.slices_total} slice(s) done"
        left = self.seconds_left(now)
        if left is not None and self.slices_done < self.slices_total:
            text += f", about {describe_seconds(left)} left"
        return text
