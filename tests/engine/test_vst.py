"""Variance stabilisation (engine/vst.py): the GAT's unbiased inverse, and the engine's stabiliser."""

import numpy as np
import pytest

from napari_scoredvi.engine.noise_estimate import NoiseLevelFunction
from napari_scoredvi.engine.vst import Stabiliser, gat_forward, gat_inverse


def _mean_round_trip(gain: float, photons: float, offset: float, read_e: float, n: int = 400_000) -> float:
    """Error (photoelectrons) of inverse(E[forward(z)]) against E[z], the true parameters given."""
    rng = np.random.default_rng(0)
    z = gain * rng.poisson(photons, n) + rng.normal(offset, gain * read_e, n)
    slope, intercept = gain, (gain * read_e) ** 2 - gain * offset
    d = gat_forward(z, slope, intercept)
    if photons >= 5:  # stabilised: unit noise std (not at a few photons: the transform's known limit)
        assert abs(d.std() - 1) < 0.05
    inv = gat_inverse(np.array([d.mean()]), slope, intercept)[0]
    return (inv - gain * photons - offset) / gain


@pytest.mark.parametrize("photons", [0.5, 1.0, 2.0, 5.0])
def test_unbiased_inverse_pure_poisson(photons):
    assert abs(_mean_round_trip(2.0, photons, 0.0, 0.0)) < 0.03
    # the algebraic inverse (D/2)^2 - 3/8 is off by about 0.1-0.25 photons here: the check can fail
    rng = np.random.default_rng(1)
    d = gat_forward(2.0 * rng.poisson(photons, 100_000), 2.0, 0.0)
    assert abs(2.0 * ((d.mean() / 2) ** 2 - 3 / 8) / 2.0 - photons) > 0.1


@pytest.mark.parametrize("photons", [2.0, 5.0, 20.0])
def test_unbiased_inverse_poisson_gaussian_with_offset(photons):
    assert abs(_mean_round_trip(8.0, photons, 100.0, 1.5)) < 0.05


def test_stabiliser_gives_every_channel_the_same_noise_std_and_maps_back():
    rng = np.random.default_rng(2)
    ramp = np.linspace(0.05, 1.0, 256)[None, :].repeat(256, 0)
    levels = (NoiseLevelFunction(0.004, 1e-4), NoiseLevelFunction(0.0005, 4e-4))  # model units
    clean = np.stack([ramp, ramp[::-1]])
    noisy = clean + rng.standard_normal(clean.shape) * np.stack([np.sqrt(f.variance(c)) for f, c in zip(levels, clean)])
    stab = Stabiliser.for_image(noisy, levels)
    x = stab.forward(noisy)
    assert x.dtype == np.float32 and x.min() == pytest.approx(0.0, abs=1e-6) and x.max() == pytest.approx(1.0)
    # the transformed noise: the same std 1 / span in dark and bright columns of both channels
    resid = x - stab.forward(clean)
    for c in range(2):
        for cols in (slice(0, 40), slice(216, 256)):
            assert resid[c][:, cols].std() * stab.span == pytest.approx(1.0, rel=0.08)
    assert stab.noise_model(()).levels[0].intercept == pytest.approx(1 / stab.span**2)
    # the mean of many noisy copies maps back to the clean image (unbiased inverse) ...
    copies = clean + rng.standard_normal((64, *clean.shape)) * np.stack(
        [np.sqrt(f.variance(c)) for f, c in zip(levels, clean)])
    back = stab.inverse(np.mean([stab.forward(n) for n in copies], axis=0))
    assert np.abs(back - clean).mean() < 0.01 * clean.mean()
    # ... and a std of the transformed image comes back as the noise std at that intensity
    std = stab.std_to_model(np.full(x.shape, 1 / stab.span, np.float32), stab.forward(clean))
    np.testing.assert_allclose(std, np.sqrt(np.stack([f.variance(c) for f, c in zip(levels, clean)])), rtol=0.1)
