"""RunProgress: steps and slices counted from a run's events, and the time left."""

from napari_scoredvi.pipeline.events import RunStarted, SliceDone, SliceStep, Waiting
from napari_scoredvi.pipeline.progress import RunProgress, describe_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_counts_events_and_estimates_the_time_left():
    clock = Clock()
    p = RunProgress(steps_planned=40, slices_total=5, slices_before=1, clock=clock)
    assert (p.steps_done, p.slices_done, p.slices_todo, p.started) == (0, 1, 4, 100.0)
    assert p.seconds_left() is None and p.status() == "1/5 slice(s) done"
    for event in (RunStarted(1, 5), Waiting()):
        assert p.record(event) is event
    assert (p.steps_done, p.slices_done) == (0, 1)
    for step in range(10):
        p.record(SliceStep(1, step + 1, 10))
    p.record(SliceDone(1, (1,), 2, 5))
    clock.now = 120.0  # 10 steps in 20 s: 30 steps left, 60 s
    assert p.seconds_left() == 60.0 and p.status() == "2/5 slice(s) done, about 1 min left"
    assert p.seconds_left(now=110.0) == 30.0
    for _ in range(35):  # retries: more steps than planned
        p.record(SliceStep(2, 1, 10))
    assert p.steps_shown == 40 and p.seconds_left() == 0.0
    for k in (2, 3, 4):
        p.record(SliceDone(k, (k,), k + 1, 5))
    assert p.status() == "5/5 slice(s) done"  # no time left once every slice is done


def test_describe_seconds():
    assert [describe_seconds(s) for s in (0.2, 42, 59.4, 90, 3599, 3900, 7200)] == [
        "1 s", "42 s", "59 s", "2 min", "1 h", "1 h 5 min", "2 h"]
