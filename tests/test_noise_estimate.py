import numpy as np
import pytest

from napari_scoredvi.noise_estimate import estimate_noise_level_function, estimate_noise_std, prior_weight


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


def test_noise_model_tells_correlated_from_independent_noise():
    import torch

    from napari_scoredvi.noise_estimate import estimate_noise
    from napari_scoredvi.uncertainty import correlated_normal

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
