import numpy as np

from napari_scoredvi.engine.normalise import fit_normalisation


def test_round_trip_and_units():
    rng = np.random.default_rng(0)
    img = (1000 + 3000 * rng.random((2, 64, 64))).astype(np.float64)
    norm = fit_normalisation(img)
    model = norm.to_model(img)
    assert model.dtype == np.float32
    assert np.percentile(model, 0.1) == np.float32(0) or abs(np.percentile(model, 0.1)) < 1e-3
    np.testing.assert_allclose(norm.image_to_input(model.astype(np.float64)), img, rtol=1e-5)
    np.testing.assert_allclose(norm.variance_to_input(np.ones_like(model))[:, 0, 0], norm.scale**2)
    np.testing.assert_allclose(norm.std_to_input(np.ones_like(model))[:, 0, 0], norm.scale)


def test_offset_and_hot_pixels_do_not_break_it():
    rng = np.random.default_rng(1)
    img = 500 + 100 * rng.random((1, 128, 128))
    img[0, :3, :3] = 65535  # hot pixels
    model = fit_normalisation(img).to_model(img)
    inner = model[0, 10:, 10:]
    assert inner.min() > -0.05 and inner.max() < 1.05


def test_constant_image_is_reported():
    assert fit_normalisation(np.full((1, 32, 32), 7.0)) is None


def test_mostly_flat_channel_falls_back_to_min_max():
    img = np.zeros((1, 64, 64))
    img[0, 0, 0] = 5.0
    norm = fit_normalisation(img)
    assert norm is not None and norm.scale[0] == 5.0
