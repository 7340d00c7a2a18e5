import pytest
import torch
import torch.nn.functional as F

from napari_scoredvi.engine.api import finish
from napari_scoredvi.engine.noise_estimate import NoiseLevelFunction
from napari_scoredvi.engine.uncertainty import noise_variance_map, tweedie_posterior_variance


def test_noise_variance_map_is_each_channels_noise_level_function():
    den = torch.linspace(0, 1, 2 * 8 * 8).reshape(2, 8, 8)
    nlfs = [NoiseLevelFunction(0.01, 0.001), NoiseLevelFunction(0.0, 0.004)]
    out = noise_variance_map(den, nlfs)
    torch.testing.assert_close(out[0], 0.01 * den[0] + 0.001)
    torch.testing.assert_close(out[1], torch.full((8, 8), 0.004))


def test_noise_variance_map_is_floored_above_zero():
    den = torch.linspace(-1, 1, 64).reshape(1, 8, 8)  # below the offset: the line would go negative
    out = noise_variance_map(den, [NoiseLevelFunction(0.01, 0.0)])
    assert (out > 0).all()


def _passes(denoiser):
    """``denoiser`` as the generator of one pass that :func:`tweedie_posterior_variance` takes."""

    def steps(v):
        yield
        return denoiser(v)

    return steps


@pytest.mark.parametrize("shrink", [0.2, 0.7])
def test_tweedie_variance_of_a_linear_shrinkage_is_its_gain_times_the_noise(shrink):
    # D(y) = m + s (y - m) is the MMSE denoiser of a Gaussian prior; its posterior variance is s * v
    y = torch.rand(1, 64, 64)
    var = 0.01 + 0.02 * torch.rand(1, 64, 64)

    def denoiser(v):
        return 0.5 + shrink * (v - 0.5)

    gen = torch.Generator().manual_seed(0)
    out = finish(tweedie_posterior_variance(_passes(denoiser), y, denoiser(y[None])[0], var, gen, probes=64))
    smooth = F.avg_pool2d((shrink * var)[None], 7, stride=1, padding=3, count_include_pad=False)[0]
    assert torch.allclose(out, smooth, rtol=0.15)


def test_tweedie_variance_sees_the_jacobian_diagonal_of_a_filter():
    # a 3x3 box filter: J's diagonal is 1/9 away from the border, so the posterior variance is v / 9
    y = torch.rand(1, 48, 48)
    var = torch.full((1, 48, 48), 0.02)

    def denoiser(v):
        return F.avg_pool2d(v, 3, stride=1, padding=1, count_include_pad=False)

    gen = torch.Generator().manual_seed(1)
    out = finish(tweedie_posterior_variance(_passes(denoiser), y, denoiser(y[None])[0], var, gen, probes=64))
    inner = out[0, 8:-8, 8:-8]
    assert abs(float(inner.mean()) - 0.02 / 9) < 0.1 * 0.02 / 9
    assert (out >= 0.01 * var).all()


def test_correlated_probes_have_the_asked_lag1_correlation():
    from napari_scoredvi.engine.uncertainty import correlated_normal

    e = correlated_normal((4, 128, 128), (0.6, 0.3), torch.Generator().manual_seed(0))
    assert abs(float(e.var()) - 1) < 0.05
    lag_y = float((e[..., 1:, :] * e[..., :-1, :]).mean())
    lag_x = float((e[..., :, 1:] * e[..., :, :-1]).mean())
    assert abs(lag_y - 0.6) < 0.05 and abs(lag_x - 0.3) < 0.05


def _gaussian_scene(seed: int, tau: float = 0.2, sigma: float = 0.1, shape=(2, 128, 128)):
    """Clean values x ~ N(0.5, tau^2) per pixel and channel, and y = x + N(0, sigma^2)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.5 + tau * torch.randn(shape, generator=g, dtype=torch.float64)
    return x, x + sigma * torch.randn(shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1])
def test_sure_scale_is_the_error_of_a_worse_than_mmse_denoiser_over_its_tweedie_variance(seed):
    from napari_scoredvi.engine.uncertainty import sure_scale

    tau, sigma = 0.2, 0.1
    x, y = _gaussian_scene(seed, tau, sigma)
    c = 0.5  # the MMSE shrinkage is tau^2 / (tau^2 + sigma^2) = 0.8: this one over-smooths
    den = 0.5 + c * (y - 0.5)
    s = torch.full_like(y, sigma**2)
    js = c * s  # its Tweedie variance J S, which understates its error
    scale = sure_scale(y, den, s, js)
    truth = ((den - x) ** 2).mean(dim=(-1, -2)) / js.mean(dim=(-1, -2))  # about 2.1: the real error
    assert scale.shape == (2, 1, 1)
    torch.testing.assert_close(scale.flatten(), truth, rtol=0.06, atol=0)


def test_sure_scale_leaves_the_mmse_denoiser_and_is_clipped():
    from napari_scoredvi.engine.uncertainty import SURE_MAX, SURE_MIN, sure_scale

    tau, sigma = 0.2, 0.1
    x, y = _gaussian_scene(2, tau, sigma)
    c = tau**2 / (tau**2 + sigma**2)
    den = 0.5 + c * (y - 0.5)
    s = torch.full_like(y, sigma**2)
    assert sure_scale(y, den, s, c * s).flatten().tolist() == pytest.approx([1.0, 1.0], abs=0.06)
    # a far worse denoiser (the identity shrunk to a constant) is clipped at SURE_MAX
    flat = torch.full_like(y, 0.5)
    assert sure_scale(y, flat, s, 0.01 * s).flatten().tolist() == [SURE_MAX, SURE_MAX]
    # nothing removed though the noise variance says there was noise to remove: a negative risk
    # estimate (the noise variance is read too high), clipped at SURE_MIN
    assert sure_scale(y, y.clone(), s, 0.1 * s).flatten().tolist() == [SURE_MIN, SURE_MIN]


def test_noise_variance_map_halfway_to_the_noisy_image_undoes_half_the_contrast_compression():
    # a ramp with Poisson-like noise (variance = intensity), denoised by a filter that shrinks towards
    # the mean by a third: read at the denoised intensity the map's slope against the clean intensity
    # is 2/3 of the truth; halfway to the (unbiased) noisy intensity it is 5/6
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(0.2, 1.0, 256, dtype=torch.float64).repeat(256, 1)[None]
    y = x + x.sqrt() * 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    den = x.mean() + (2 / 3) * (x - x.mean())
    nlf = [NoiseLevelFunction(0.0025, 0.0)]
    cols = x[0].mean(0)

    def slope(m):
        design = torch.stack([cols, torch.ones_like(cols)], 1)
        return float(torch.linalg.lstsq(design, m[0].mean(0)[:, None]).solution[0])

    assert slope(noise_variance_map(den, nlf)) == pytest.approx(0.0025 * 2 / 3, rel=0.01)
    assert slope(noise_variance_map(den, nlf, y)) == pytest.approx(0.0025 * 5 / 6, rel=0.02)
