"""RunProgress: work and slices counted from a run's events, and the time left, against simulated
runs on a fake clock whose true remaining time is known."""

import pytest

from napari_scoredvi.pipeline.events import RunStarted, SliceDone, SliceStep, Waiting
from napari_scoredvi.pipeline.progress import RunProgress, describe_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def simulate(progress: RunProgress, clock: Clock, units: dict[int, int], written=None, seconds_per_unit=1.0):
    """Feed ``progress`` the events of a run that denoises the slices ``units`` (number -> its units of
    work, in that order), each unit taking ``seconds_per_unit``; slices not in ``written`` are only
    refitted (no SliceDone). Yields (progress, true seconds left) after every event."""
    written = set(units) if written is None else set(written)
    total_seconds = seconds_per_unit * sum(units.values())
    spent, done = 0.0, progress.slices_done
    for number, steps in units.items():
        for step in range(1, steps + 1):
            clock.now += seconds_per_unit
            spent += seconds_per_unit
            progress.record(SliceStep(number, step, steps))
            yield total_seconds - spent
        if number in written:
            done += 1
            progress.record(SliceDone(number, (number,), done, progress.slices_total))
            yield total_seconds - spent


def test_nothing_is_known_before_the_first_unit_of_work():
    clock = Clock()
    p = RunProgress(slices_total=5, slices_before=1, clock=clock)
    assert (p.units_done, p.slices_done, p.slices_todo, p.started) == (0, 1, 4, 100.0)
    assert p.seconds_left() is None and p.units_left() is None and p.fraction() == 0.0
    assert p.status() == "1/5 slice(s) done"
    for event in (RunStarted(1, 5), Waiting()):  # events that are no work change nothing
        assert p.record(event) is event
    clock.now = 130.0  # waiting for a cluster's workers is no pace either
    assert (p.units_done, p.slices_done, p.seconds_left()) == (0, 1, None)


def test_time_left_is_known_from_the_first_unit_of_the_first_slice_and_exact_at_an_even_pace():
    clock = Clock()
    p = RunProgress(slices_total=3, clock=clock)
    seen = []
    for truth in simulate(p, clock, {0: 4, 1: 4, 2: 4}, seconds_per_unit=2.5):
        seen.append((p.seconds_left(), truth, p.fraction(), p.status()))
    assert seen[0][0] == pytest.approx(seen[0][1]) == 27.5  # the first unit of slice 0: 11 units left
    assert seen[0][3] == "0/3 slice(s) done, about 28 s left"
    for left, truth, _, _ in seen:
        assert left == pytest.approx(truth)
    fractions = [f for _, _, f, _ in seen]
    assert fractions == sorted(fractions) and 0 < fractions[0] < 0.1 and fractions[-1] == 1.0
    assert p.status() == "3/3 slice(s) done"  # no time left once every slice is done
    assert p.seconds_left(now=clock.now + 50) == 0.0  # the pace no longer matters: nothing is left


def test_the_estimate_learns_each_slice_size_from_its_first_unit():
    """Slices of different work (e.g. fewer priors on a cleaner slice): until a slice starts, it is
    guessed to be as large as the mean of those seen; once it starts, its own size counts."""
    clock = Clock()
    p = RunProgress(slices_total=3, clock=clock)
    run = simulate(p, clock, {0: 2, 1: 6, 2: 4})
    truth = next(run)  # the first unit of slice 0: slices 1 and 2 are guessed at its 2 units
    assert truth == 11 and p.units_left() == pytest.approx(1 + 2 + 2)
    next(run), next(run)  # slice 0's last unit, slice 0 done
    truth = next(run)  # the first unit of slice 1: its 6 units are known, slice 2 guessed at the mean, 4
    assert p.seconds_left() == pytest.approx(truth) == 9
    for truth in run:
        assert p.seconds_left() == pytest.approx(truth)  # exact from here on: the guess was right
    assert p.fraction() == 1.0


def test_a_resume_counts_only_the_work_of_this_run():
    clock = Clock()
    p = RunProgress(slices_total=5, slices_before=3, clock=clock)
    events = simulate(p, clock, {3: 10, 4: 10}, seconds_per_unit=0.5)
    first = next(events)
    assert p.fraction() == pytest.approx(1 / 20) and p.seconds_left() == pytest.approx(first) == 9.5
    assert p.status() == "3/5 slice(s) done, about 10 s left"
    list(events)
    assert p.slices_done == 5 and p.fraction() == 1.0


def test_slices_refitted_to_warm_start_the_next_are_work_too():
    """A range run of the variational preset refits the slices before it in their chain
    (``fits_planned`` counts them): the time left includes them, although they are never written."""
    clock = Clock()
    p = RunProgress(slices_total=2, fits_planned=4, clock=clock)
    for truth in simulate(p, clock, {0: 3, 1: 3, 2: 3, 3: 3}, written=[2, 3]):
        assert p.seconds_left() == pytest.approx(truth)
        assert p.slices_done <= 2
    assert p.slices_done == 2 and p.status() == "2/2 slice(s) done"


def test_a_redone_fit_moves_the_bar_back_but_never_past_the_end():
    clock = Clock()
    p = RunProgress(slices_total=1, clock=clock)
    for step in range(1, 5):
        clock.now += 1.0
        p.record(SliceStep(0, step, 4))
    assert p.fraction() == 1.0 and p.seconds_left() == 0.0
    clock.now += 1.0
    p.record(SliceStep(0, 5, 8))  # the fit diverged and is redone: the slice's total grows
    assert p.fraction() == pytest.approx(5 / 8) and p.seconds_left() == pytest.approx(3.0)


def test_describe_seconds():
    assert [describe_seconds(s) for s in (0.2, 42, 59.4, 90, 3599, 3900, 7200)] == [
        "1 s", "42 s", "59 s", "2 min", "1 h", "1 h 5 min", "2 h"]
