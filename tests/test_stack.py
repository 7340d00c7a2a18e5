"""The per-slice loop shared by the napari widget and the batch pipeline."""

import dataclasses

import numpy as np
import pytest

from conftest import TINY
from napari_scoredvi import denoise
from napari_scoredvi.samples import noisy_fluorescence_stack
from napari_scoredvi.stack import SliceError, _plan, chain_start, denoise_stack_steps, planned_iterations

WARM = dataclasses.replace(TINY, warm_iterations=3)  # fewer than TINY.iterations


def _run(stack, numbers, **kw):
    out, events = {}, []
    for ev in denoise_stack_steps(lambda k: stack[k], numbers, lambda k, r: out.__setitem__(k, r), **kw):
        events.append(ev)
    return out, events


def test_plan_refits_the_chain_head_of_each_wanted_slice():
    assert chain_start(17, 16) == 16 and chain_start(15, 16) == 0
    assert _plan([0, 1, 2], 16) == [(0, True), (1, True), (2, True)]
    assert _plan([2, 5], 4) == [(0, False), (1, False), (2, True), (4, False), (5, True)]
    assert _plan([3, 4], 4) == [(0, False), (1, False), (2, False), (3, True), (4, True)]


def test_warm_start_runs_fewer_steps_and_any_subset_gives_the_same_slices():
    noisy, _ = noisy_fluorescence_stack(4, (32, 32), seed=2)
    full, events = _run(noisy, range(4), preset=WARM, device="cpu", chain=2)
    steps = [ev for ev in events if ev["kind"] == "step"]
    assert len(steps) == 2 * TINY.iterations + 2 * WARM.warm_iterations  # chains {0, 1} and {2, 3}
    assert planned_iterations(range(4), WARM, chain=2) == len(steps)
    assert planned_iterations([3], WARM, chain=2) == TINY.iterations + WARM.warm_iterations
    assert planned_iterations(range(4), WARM, warm_start=False) == 4 * TINY.iterations
    assert [full[k].info["warm_start"] for k in range(4)] == [False, True, False, True]
    assert [ev["slice"] for ev in events if ev["kind"] == "slice"] == [0, 1, 2, 3]
    part, _ = _run(noisy, [3], preset=WARM, device="cpu", chain=2)  # fits slice 2 to warm-start 3
    assert list(part) == [3]
    np.testing.assert_array_equal(part[3].denoised, full[3].denoised)
    # a chain head equals a plain denoise call with the slice's seed
    np.testing.assert_array_equal(full[2].denoised, denoise(noisy[2], preset=WARM, device="cpu", seed=2).denoised)


def test_cold_stack_fits_every_slice_from_scratch():
    noisy, _ = noisy_fluorescence_stack(2, (32, 32), seed=2)
    out, events = _run(noisy, [0, 1], preset=WARM, device="cpu", warm_start=False)
    assert not out[1].info["warm_start"]
    assert sum(ev["kind"] == "step" for ev in events) == 2 * TINY.iterations


def test_failing_slice_names_itself_and_keeps_earlier_ones():
    noisy, _ = noisy_fluorescence_stack(3, (32, 32), seed=2)
    bad = noisy.astype(np.float32)
    bad[1, 5, 5] = np.nan
    out = {}
    with pytest.raises(SliceError) as err:
        for _ in denoise_stack_steps(lambda k: bad[k], range(3), lambda k, r: out.__setitem__(k, r),
                                     preset=WARM, device="cpu"):
            pass
    assert err.value.number == 1 and "NaN" in str(err.value)
    assert list(out) == [0]
