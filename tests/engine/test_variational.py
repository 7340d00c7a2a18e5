"""The published, cold-start variational fit (the ``variational`` preset)."""

import dataclasses

import numpy as np
import pytest
import torch

from napari_scoredvi import denoise
from napari_scoredvi.engine.presets import get_preset
from napari_scoredvi.engine.variational import ColdPosteriorNets, published_negative_elbo
from napari_scoredvi.io.synthetic import noisy_fluorescence

SMALL = dataclasses.replace(get_preset("variational"), iterations=300, warm_iterations=100, unet_levels=2,
                            unet_base=8, aux_depth=2, aux_width=8)


def _psnr(a, b):
    return 10 * np.log10(float(np.ptp(b)) ** 2 / np.mean((np.asarray(a, np.float64) - b) ** 2))


@pytest.mark.slow
def test_the_score_prior_is_what_denoises():
    # measured (2026-11-30, this tiny network, batch norm): noisy 20.9 dB, fitted 23.0, the same fit
    # without the prior 20.6
    noisy, clean = noisy_fluorescence((48, 48), seed=3)
    fitted = denoise(noisy, preset=SMALL, device="cpu", seed=0)
    control = denoise(noisy, preset=SMALL, device="cpu", seed=0, lam=0.0)  # the same fit without the prior
    assert fitted.info.iterations >= SMALL.iterations and fitted.info.prior_ranges_8bit  # all K priors
    assert len(fitted.info.prior_ranges_8bit) == 3
    assert _psnr(fitted.denoised, clean) > _psnr(noisy, clean) + 1
    assert _psnr(fitted.denoised, clean) > _psnr(control.denoised, clean) + 1.5
    assert fitted.denoised.shape == noisy.shape and np.isfinite(fitted.posterior_std).all()


def test_the_kl_term_back_propagates_the_score_of_a_known_denoiser():
    # with the prior D(x) = 0.5 x the score at x is (D(x) - x) / var = -0.5 x / var: the prior part of
    # d loss / d mu is lam * r * (-score) / pixels, whatever the sample
    torch.manual_seed(0)
    nets = ColdPosteriorNets(1, 1, 2, 4, 2, 4)
    y = torch.rand(1, 1, 8, 8)
    q = nets(y)
    mu = q.mu.detach().requires_grad_(True)
    q = dataclasses.replace(q, mu=mu, log_var=torch.full_like(q.log_var, np.log(0.25)))
    gen = torch.Generator().manual_seed(1)
    loss_lam, _ = published_negative_elbo(y, q, [lambda x: 0.5 * x], 1.0, 0.01, gen)
    (g_lam,) = torch.autograd.grad(loss_lam, mu)
    gen = torch.Generator().manual_seed(1)
    loss_0, _ = published_negative_elbo(y, q, [lambda x: 0.5 * x], 0.0, 0.01, gen)
    (g_0,) = torch.autograd.grad(loss_0, mu)
    x = mu.detach() + 0.5 * torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
    expected = (0.5 * x / 0.25) / x.numel()  # -score, averaged over the 64 pixels (r = 1 with K = 1)
    torch.testing.assert_close(g_lam - g_0, expected, rtol=1e-4, atol=1e-6)
