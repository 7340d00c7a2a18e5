"""The per-slice loop shared by the napari widget and the batch pipeline."""

import dataclasses

import numpy as np
import pytest

from conftest import TINY
from napari_scoredvi import denoise
from napari_scoredvi.engine.settings import DenoiseSettings
from napari_scoredvi.io.slice_grid import SliceGrid
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack
from napari_scoredvi.pipeline.events import SliceDone, SliceStep
from napari_scoredvi.pipeline.slices import (
    SliceError,
    chain_start,
    denoise_slices,
    denoise_stack_steps,
    plan_chains,
    planned_iterations,
)

WARM = dataclasses.replace(TINY, warm_iterations=3)  # fewer than TINY.iterations
SETTINGS = DenoiseSettings(WARM, "cpu")


def _run(stack, numbers, settings=SETTINGS, **kw):
    out, events = {}, []
    for ev in denoise_stack_steps(lambda k: stack[k], numbers, lambda k, r: out.__setitem__(k, r), settings, **kw):
        events.append(ev)
    return out, events


def test_plan_refits_the_chain_head_of_each_wanted_slice():
    assert chain_start(17, 16) == 16 and chain_start(15, 16) == 0
    assert plan_chains([0, 1, 2], 16) == [(0, True), (1, True), (2, True)]
    assert plan_chains([2, 5], 4) == [(0, False), (1, False), (2, True), (4, False), (5, True)]
    assert plan_chains([3, 4], 4) == [(0, False), (1, False), (2, False), (3, True), (4, True)]


def test_warm_start_runs_fewer_steps_and_any_subset_gives_the_same_slices():
    noisy, _ = noisy_fluorescence_stack(4, (32, 32), seed=2)
    full, events = _run(noisy, range(4), chain=2)
    steps = [ev for ev in events if isinstance(ev, SliceStep)]
    assert len(steps) == 2 * 8 + 2 * 3  # chains {0, 1} and {2, 3}: TINY's 8 steps cold, WARM's 3 warm
    assert planned_iterations(range(4), SETTINGS, chain=2) == 22
    assert planned_iterations([3], SETTINGS, chain=2) == 8 + 3
    assert planned_iterations(range(4), SETTINGS.with_(warm_start=False)) == 4 * 8
    assert [full[k].info.warm_start for k in range(4)] == [False, True, False, True]
    assert [ev[0] for ev in events if isinstance(ev, tuple)] == [0, 1, 2, 3]
    part, _ = _run(noisy, [3], chain=2)  # fits slice 2 to warm-start 3
    assert list(part) == [3]
    np.testing.assert_array_equal(part[3].denoised, full[3].denoised)
    # a chain head equals a plain denoise call with the slice's seed
    np.testing.assert_array_equal(full[2].denoised, denoise(noisy[2], preset=WARM, device="cpu", seed=2).denoised)


def test_cold_stack_fits_every_slice_from_scratch():
    noisy, _ = noisy_fluorescence_stack(2, (32, 32), seed=2)
    out, events = _run(noisy, [0, 1], SETTINGS.with_(warm_start=False))
    assert not out[1].info.warm_start
    assert sum(isinstance(ev, SliceStep) for ev in events) == 2 * 8


def test_failing_slice_names_itself_and_keeps_earlier_ones():
    noisy, _ = noisy_fluorescence_stack(3, (32, 32), seed=2)
    bad = noisy.astype(np.float32)
    bad[1, 5, 5] = np.nan
    out = {}
    with pytest.raises(SliceError) as err:
        for _ in denoise_stack_steps(lambda k: bad[k], range(3), lambda k, r: out.__setitem__(k, r), SETTINGS):
            pass
    assert err.value.number == 1 and "NaN" in str(err.value)
    assert list(out) == [0]


def test_denoise_slices_into_arrays_and_close():
    noisy, _ = noisy_fluorescence_stack(3, (32, 32), seed=1)
    den = np.zeros(noisy.shape, np.float32)
    var = np.zeros(noisy.shape, np.float32)
    done = np.zeros(3, np.uint8)
    grid = SliceGrid.leading(noisy.shape, 1)
    outputs = {"denoised": den, "noise_variance": var}
    gen = denoise_slices(noisy, grid, [0, 1, 2], outputs, SETTINGS, done=done)
    for ev in gen:
        if isinstance(ev, SliceDone) and ev.position == (0,):
            break
    gen.close()  # stops after slice 0: nothing else written
    assert den[0].any() and not den[1].any() and not den[2].any()
    assert (var[0] > 0).all() and done.tolist() == [1, 0, 0]
    gen = denoise_slices(noisy, grid, [0, 1, 2], outputs, SETTINGS, done=done)
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    assert stop.value.value.written == [(0,), (1,), (2,)] and stop.value.value.failed is None
    assert all(den[i].any() for i in range(3)) and done.tolist() == [1, 1, 1]
    np.testing.assert_array_equal(den[0], denoise(noisy[0], preset=WARM, device="cpu", seed=0).denoised)


def test_denoise_slices_rgba_keeps_alpha_and_averages_the_maps():
    rng = np.random.default_rng(0)
    rgba = np.concatenate([rng.integers(0, 200, (2, 24, 24, 3)), np.full((2, 24, 24, 1), 255)], -1).astype(np.uint8)
    den = np.zeros(rgba.shape, np.float32)
    var, std = (np.zeros(rgba.shape[:-1], np.float32) for _ in range(2))
    grid = SliceGrid.leading(rgba.shape, 1)
    gen = denoise_slices(rgba, grid, [1], {"denoised": den, "noise_variance": var, "posterior_std": std},
                         SETTINGS.with_(warm_start=False), rgb=True)
    events = list(gen)
    assert [ev.position for ev in events if isinstance(ev, SliceDone)] == [(1,)]
    assert (den[1, ..., 3] == 255).all() and den[1, ..., :3].std() > 0 and not den[0].any()
    joint = denoise(rgba[1, ..., :3], channel_axis=-1, preset=WARM, device="cpu", seed=1, rgb=True)
    np.testing.assert_allclose(den[1, ..., :3], joint.denoised)
    np.testing.assert_allclose(var[1], joint.noise_variance.mean(-1), rtol=1e-6)
    assert (std[1] > 0).all() and not var[0].any()


def test_denoise_slices_reports_a_bad_slice_by_position():
    noisy, _ = noisy_fluorescence_stack(4, (32, 32), seed=2)
    bad = noisy.astype(np.float32).reshape(2, 2, 32, 32)
    bad[1, 0, 3, 3] = np.inf
    den, var = np.zeros(bad.shape, np.float32), np.zeros(bad.shape, np.float32)
    gen = denoise_slices(bad, SliceGrid.leading(bad.shape, 2), range(4), {"denoised": den, "noise_variance": var},
                         SETTINGS.with_(warm_start=False))
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    result = stop.value.value
    assert result.written == [(0, 0), (0, 1)]
    assert result.failed.number == 2 and result.failed.position == (1, 0) and "inf" in result.failed.message.lower()
