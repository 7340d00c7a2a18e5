"""Stopping inside a prior network's pass (the napari widget's Cancel on a large slice)."""

import threading

import pytest

from napari_scoredvi import Cancelled, DenoiseSettings, denoise, denoise_steps
from napari_scoredvi.engine.stopping import stop_when
from napari_scoredvi.io.synthetic import noisy_fluorescence


def test_a_stop_lands_at_the_next_check_with_no_work_after_it():
    noisy, _ = noisy_fluorescence((48, 48), seed=0)
    checks, steps = [], []

    def condition():
        checks.append(1)
        return len(checks) >= 5  # true at the 5th layer of the work

    with stop_when(condition), pytest.raises(Cancelled):
        for event in denoise_steps(noisy, DenoiseSettings("balanced", "cpu")):
            steps.append(event)
    assert len(checks) == 5  # nothing ran after the condition turned true ...
    assert steps == []  # ... and no prior pass was finished
    denoise(noisy, device="cpu")  # outside the block the same priors run to the end


def test_a_stop_in_one_thread_leaves_another_threads_run_alone():
    noisy, _ = noisy_fluorescence((40, 40), seed=0)
    outcome = {}

    def run(name, condition):
        try:
            with stop_when(condition):
                outcome[name] = denoise(noisy, device="cpu").denoised.shape
        except Cancelled:
            outcome[name] = "cancelled"

    threads = [threading.Thread(target=run, args=("stopped", lambda: True)),
               threading.Thread(target=run, args=("running", lambda: False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcome == {"stopped": "cancelled", "running": (40, 40)}
