"""Neighbouring slices as context (engine/context.py): the window's order, registration, the settings,
what agreeing and unrelated neighbours do, and that a structure only the neighbours have is never
copied into the slice."""

import numpy as np
import pytest

from napari_scoredvi.engine.api import denoise
from napari_scoredvi.engine.context import fuse, gate, offsets, register
from napari_scoredvi.engine.settings import MAX_CONTEXT, DenoiseSettings
from napari_scoredvi.io.synthetic import add_camera_noise, clean_fluorescence, noisy_fluorescence_stack


def test_the_window_order_and_the_settings():
    assert offsets(0) == [0] and offsets(2) == [0, -1, 1, -2, 2]
    assert DenoiseSettings("fast", context=0).stack_context == 0
    assert DenoiseSettings("variational", context=2).stack_context == 0  # the fit stays 2D
    for bad in (-1, MAX_CONTEXT + 1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="context must be a whole number"):
            DenoiseSettings("fast", context=bad)


def test_register_finds_a_whole_pixel_shift_under_noise():
    clean = clean_fluorescence((300, 300), seed=5)
    for photons, shift in ((20.0, (3, -2)), (100.0, (-5, 4)), (100.0, (0, 0))):
        centre = add_camera_noise(clean[20:276, 20:276], photons=photons, seed=1).astype(np.float64)[None]
        moved = add_camera_noise(np.roll(clean, shift, (0, 1))[20:276, 20:276], photons=photons, seed=2)
        back, found = register(moved.astype(np.float64)[None], centre)
        assert found == (-shift[0], -shift[1]) and back.shape == centre.shape


def test_fusing_averages_agreeing_pixels_only_and_gates_unrelated_slices():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :96]
    base = (0.5 + 0.4 * np.sin(xx / 7.0) * np.cos(yy / 9.0))[None]
    blob = base.copy()
    blob[0, 36:60, 36:60] = 1.5
    noise = 0.05
    centre = base + noise * rng.normal(size=base.shape)
    same = [base + noise * rng.normal(size=base.shape) for _ in range(4)]
    fused, factor, weight = fuse(centre, same, noise)
    assert 0.6 < weight < 0.95 and 0.2 < factor.mean() < 0.35  # near 1/5 of the variance
    assert np.std(fused - base) < 0.6 * np.std(centre - base)
    changed = [blob + noise * rng.normal(size=base.shape) for _ in range(4)]
    fused, factor, _ = fuse(centre, changed + [None], noise)
    assert abs((fused - base)[0, 42:54, 42:54].mean()) < 0.03 and factor[0, 48, 48] > 0.9  # the blob: not fused in
    assert factor[0, 5, 5] < 0.5  # the agreeing rest is
    unrelated = [np.roll(base, 40, axis=2)[:, ::-1] + noise * rng.normal(size=base.shape) for _ in range(4)]
    assert gate(centre, unrelated[0]) == 0.0 and gate(centre, same[0]) == 1.0
    fused, factor, weight = fuse(centre, unrelated, noise)
    assert weight == 0.0 and np.array_equal(fused, centre.astype(np.float32)) and (factor == 1).all()


def test_missing_and_bad_neighbours_are_no_context():
    noisy, _ = noisy_fluorescence_stack(3, (64, 64), seed=4)
    end = denoise(noisy[0], device="cpu", context=2, neighbours=[None, noisy[1], None, noisy[2]])
    assert end.info.context == 2 and len(end.info.context_shifts) == 2  # one side only: the stack's start
    bad = noisy[1].astype(np.float32)
    bad[3, 3] = np.nan
    res = denoise(noisy[0], device="cpu", context=1, neighbours=[None, bad])
    assert res.info.context == 0 and np.isfinite(res.denoised).all()
    with pytest.raises(ValueError, match="same shape"):
        denoise(noisy[0], device="cpu", context=1, neighbours=[None, noisy[1][:, :32]])
    alone = denoise(noisy[1], device="cpu", context=0, neighbours=[noisy[0], noisy[2]])
    np.testing.assert_array_equal(alone.denoised, denoise(noisy[1], device="cpu", context=0).denoised)


def _psnr(a, truth):
    peak = float(truth.max() - truth.min())
    return float(10 * np.log10(peak**2 / np.mean((a - truth) ** 2)))


@pytest.mark.parametrize("photons", [5.0, 30.0])
def test_agreeing_neighbours_help_and_unrelated_ones_do_not_hurt(photons):
    clean = clean_fluorescence((128, 128), seed=11)
    truth = clean * photons + 100.0  # what add_camera_noise adds noise to
    frame = add_camera_noise(clean, photons=photons, seed=1)
    same = [add_camera_noise(clean, photons=photons, seed=10 + i) for i in range(4)]  # a static field
    other = [add_camera_noise(clean_fluorescence((128, 128), seed=60 + i), photons=photons, seed=20 + i)
             for i in range(4)]  # unrelated slices
    alone = _psnr(denoise(frame, device="cpu", context=0).denoised, truth)
    along = denoise(frame, device="cpu", context=2, neighbours=same)
    assert _psnr(along.denoised, truth) > alone + 2.0 and along.info.context_weight > 0.5
    unrelated = denoise(frame, device="cpu", context=2, neighbours=other)
    assert _psnr(unrelated.denoised, truth) >= alone - 0.05 and unrelated.info.context_weight < 0.2


def test_a_structure_only_the_neighbours_have_is_not_copied():
    yy, xx = np.mgrid[:96, :96]
    r2 = (yy - 48) ** 2 + (xx - 48) ** 2
    flat = np.full((96, 96), 0.2)
    blob = np.where(r2 < 10**2, 1.0, flat)
    slice_ = add_camera_noise(flat, photons=40.0, seed=1)
    others = [add_camera_noise(blob, photons=40.0, seed=100 + i) for i in range(4)]
    out = denoise(slice_, device="cpu", context=2, neighbours=others)
    inside, outside = out.denoised[r2 < 6**2].mean(), out.denoised[r2 > 20**2].mean()
    bright = np.mean([o[r2 < 6**2].mean() for o in others])
    # the blob's excess over the background in the neighbours; in the slice it must stay near 0
    assert abs(inside - outside) < 0.05 * (bright - outside), (inside, outside, bright)
