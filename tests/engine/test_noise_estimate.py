import numpy as np
import pytest

from napari_scoredvi.engine.noise_estimate import estimate_noise_level_function, estimate_noise_std, prior_weight


def _smooth_scene(shape=(256, 256)):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] / shape[0]
    return 0.1 + 0.7 * (0.5 + 0.5 * np.sin(6 * xx) * np.cos(4 * yy))


@pytest.mark.parametrize("a,b", [(0.01, 0.0004), (0.002, 0.0001), (0.02, 0.001)])
def test_recovers_poisson_gaussian_parameters(a, b):
    rng = np.random.default_rng(0)
    clean = _smooth_scene()
    noisy = rng.poisson(clean / a) * a + rng.normal(0, np.sqrt(b), clean.shape)
    nlf = estimate_noise_level_function(noisy)
    assert nlf.slope == pytest.approx(a, rel=0.15)
    true_std = np.sqrt(a * clean.mean() + b)
    assert estimate_noise_std(noisy) == pytest.approx(true_std, rel=0.05)


@pytest.mark.slow
def test_gaussian_noise_on_a_textured_image():
    rng = np.random.default_rng(1)
    # a textured scene: random smooth blobs plus edges
    yy, xx = np.mgrid[0:256, 0:256]
    clean = 0.3 + 0.3 * (xx > 128) + 0.2 * np.sin(xx / 7.0) * (yy < 100)
    for sigma in (0.02, 0.1, 0.2):
        est = estimate_noise_std(clean + rng.normal(0, sigma, clean.shape))
        assert est == pytest.approx(sigma, rel=0.1)


def test_noise_free_image_gives_tiny_estimate():
    assert estimate_noise_std(_smooth_scene()) < 1e-3


def test_small_image_falls_back_without_error():
    rng = np.random.default_rng(2)
    est = estimate_noise_std(0.5 + rng.normal(0, 0.1, (16, 16)))
    assert 0.05 < est < 0.2


def test_prior_weight_thresholds():
    assert prior_weight(5) == 0.5
    assert prior_weight(10) == 0.5
    assert prior_weight(15) == 1.0
    assert prior_weight(30) == 2.0


@pytest.mark.slow
def test_noise_model_tells_correlated_from_independent_noise():
    import torch

    from napari_scoredvi.engine.noise_estimate import estimate_noise
    from napari_scoredvi.engine.uncertainty import correlated_normal

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:192, 0:192]
    clean = 100 + 80 * np.exp(-((yy - 96) ** 2 + (xx - 80) ** 2) / 2000.0)
    white = clean + np.sqrt(clean) * rng.standard_normal(clean.shape)
    # unit-variance noise with lag-1 correlation 0.6 in y and x (the [a, 1, a] filter, a = 0.392)
    unit = correlated_normal(clean.shape, (0.6, 0.6), torch.Generator().manual_seed(0), dtype=torch.float64)
    corr = clean + np.sqrt(clean) * unit.numpy()
    w, c = estimate_noise(white), estimate_noise(corr)
    assert not w.correlated and w.lag1 == (0.0, 0.0)
    assert c.correlated
    assert all(0.45 < rho < 0.7 for rho in c.lag1), c.lag1
    # the variance per pixel is kept by the filter, and the shuffled sub-images still measure it
    assert c.levels[0].variance(140.0) == pytest.approx(w.levels[0].variance(140.0), rel=0.2)


def _fine_texture(rng, shape, scale):
    """Unit-std random texture smooth over ``scale`` pixels (Gaussian-filtered white noise)."""
    ky, kx = np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None]
    gauss = np.exp(-2 * (np.pi * scale) ** 2 * (kx**2 + ky**2))
    t = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * gauss))
    return t / t.std()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_independent_noise_on_fine_texture_is_measured_at_full_resolution(seed):
    # fine texture (smooth over 1.5 px, std 6) under Poisson-Gaussian noise var = 0.5 I + 1 (std 8-12):
    # in the stride-4 sub-images the texture passes for noise, at full resolution it does not
    from napari_scoredvi.engine.noise_estimate import estimate_noise

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:256]
    clean = 150 + 50 * np.sin(xx / 40) * np.cos(yy / 30) + 6 * _fine_texture(rng, (256, 256), 1.5)
    a, b = 0.5, 1.0
    noisy = a * rng.poisson(clean / a) + rng.normal(0, np.sqrt(b), clean.shape)
    model = estimate_noise(noisy)
    assert not model.correlated
    lo, hi = np.percentile(clean, [10, 90])
    for level in (lo, hi):
        assert model.levels[0].variance(level) == pytest.approx(a * level + b, rel=0.1)
        # the stride-4 estimate alone reads the texture as noise
        assert estimate_noise_level_function(noisy).variance(level) > 1.15 * (a * level + b)
    assert model.levels[0].slope == pytest.approx(a, rel=0.15)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_heavy_tailed_noise_is_not_taken_for_texture(seed):
    # skewed, heavy-tailed independent noise (Gamma, shape 2: kurtosis 6, like the dark W2S frames),
    # variance 0.5 I + 4: the full-resolution flatness test ignores each patch's 2 largest differences,
    # so that patches with one bright outlier still count
    from napari_scoredvi.engine.noise_estimate import estimate_noise

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:256]
    clean = 140 + 40 * np.sin(xx / 40) * np.cos(yy / 30)
    shape_k = 2.0
    unit = (rng.gamma(shape_k, 1.0, clean.shape) - shape_k) / np.sqrt(shape_k)
    noisy = clean + np.sqrt(0.5 * clean + 4) * unit
    model = estimate_noise(noisy)
    untrimmed = estimate_noise_level_function(noisy, stride=1)
    truth = np.mean(0.5 * clean + 4)
    assert np.mean(model.levels[0].variance(clean)) == pytest.approx(truth, rel=0.07)
    # the plain test reads it lower
    assert np.mean(untrimmed.variance(clean)) < np.mean(model.levels[0].variance(clean))
    for level in np.percentile(clean, [10, 90]):
        assert model.levels[0].variance(level) == pytest.approx(0.5 * level + 4, rel=0.12)


def test_full_resolution_estimate_of_a_large_image_uses_a_patch_subsample(monkeypatch):
    from napari_scoredvi.engine import noise_estimate

    rng = np.random.default_rng(3)
    clean = _smooth_scene() * 200 + 100
    noisy = 0.5 * rng.poisson(clean / 0.5) + rng.normal(0, 1, clean.shape)
    full = noise_estimate.measure_noise_levels(noisy, stride=1)
    monkeypatch.setattr(noise_estimate, "MAX_PATCHES", 1 << 14)  # a 256 x 256 image now counts as large
    sub = noise_estimate.measure_noise_levels(noisy, stride=1)
    assert len(sub.patches) < len(full.patches) / 3
    for m in (full, sub):
        assert m.nlf.slope == pytest.approx(0.5, rel=0.1)
        assert m.nlf.variance(clean.mean()) == pytest.approx(0.5 * clean.mean() + 1, rel=0.05)


def _wedge_with_falling_noise(seed, correlated=False):
    """A smooth intensity ramp whose noise std falls with intensity (as camera sRGB noise does at the
    bright end, after the tone curve): (noisy, clean, per-pixel variance)."""
    import torch

    from napari_scoredvi.engine.uncertainty import correlated_normal

    yy, xx = np.mgrid[0:256, 0:256]
    clean = 0.1 + 0.8 * xx / 256 + 0.05 * np.sin(yy / 20)
    std = 0.04 * (1.1 - clean)
    lag = (0.6, 0.6) if correlated else (0.0, 0.0)
    unit = correlated_normal(clean.shape, lag, torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
    return clean + std * unit, clean, std**2


@pytest.mark.parametrize("seed", [0, 1])
def test_noise_falling_with_intensity_does_not_collapse_the_estimate(seed):
    from napari_scoredvi.engine.noise_estimate import measure_noise_levels

    noisy, clean, var = _wedge_with_falling_noise(seed)
    # each bin's texture test at its own level: every bin but the brightest (whose patches span the
    # steepest part of the noise curve) within 20 % of the truth at its level, the mean within 10 %
    own = measure_noise_levels(noisy, own_threshold=True)
    truth_at = (0.04 * (1.1 - own.levels)) ** 2
    assert np.all(np.abs(own.variances[:-1] / truth_at[:-1] - 1) < 0.2), own.variances / truth_at
    assert own.nlf.variance(clean).mean() == pytest.approx(var.mean(), rel=0.1)
    # the default, line-based test (the calibration's) collapses onto the quietest patches here
    line = measure_noise_levels(noisy)
    assert line.nlf.variance(clean).mean() < 0.6 * var.mean()


@pytest.mark.slow
def test_correlated_noise_falling_with_intensity_keeps_its_level():
    from napari_scoredvi.engine.noise_estimate import estimate_noise

    noisy, clean, var = _wedge_with_falling_noise(0, correlated=True)
    model = estimate_noise(noisy)
    assert model.correlated
    # the per-pixel variance, not that of the correlated noise's high frequencies (the line-based
    # texture test collapsed here onto the quietest patches: about 0.4 of the truth)
    assert model.levels[0].variance(clean).mean() == pytest.approx(var.mean(), rel=0.25)
