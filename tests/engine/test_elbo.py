"""Each term of the negative ELBO against an independent closed form or Monte Carlo estimate."""

import math

import pytest
import torch
from torch.distributions import Dirichlet, Gamma, Normal, kl_divergence

from napari_scoredvi.engine.elbo import (
    expected_log_weights,
    expected_neg_log_likelihood,
    kl_assignment,
    kl_dirichlet,
    kl_gamma,
    score_log_prior,
)


@pytest.fixture(autouse=True)
def _float64():
    """These checks compare against closed forms: run them in double precision, then restore."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _rand(*shape, lo=0.2, hi=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(*shape, generator=g)


def test_kl_gamma_matches_torch_distributions():
    a, b = _rand(2, 3, 1, 4, 4, seed=1), _rand(2, 3, 1, 4, 4, seed=2)
    beta0 = 0.02
    ours = kl_gamma(a.log(), b.log(), beta0, alpha0=1.0)
    ref = kl_divergence(Gamma(a, b), Gamma(torch.ones_like(a), torch.full_like(b, beta0)))
    torch.testing.assert_close(ours, ref)


def test_kl_gamma_is_zero_at_the_prior():
    a, b = torch.full((5,), 1.0), torch.full((5,), 0.01)
    torch.testing.assert_close(kl_gamma(a.log(), b.log(), 0.01), torch.zeros(5), atol=1e-12, rtol=0)


def test_kl_dirichlet_matches_torch_distributions():
    d = _rand(4, 3, 1, 5, 5, seed=3)
    ours = kl_dirichlet(d.log(), d0=1.0)
    dm = d.permute(0, 2, 3, 4, 1)  # concentration last for torch
    ref = kl_divergence(Dirichlet(dm), Dirichlet(torch.ones_like(dm)))
    torch.testing.assert_close(ours, ref)


def test_expected_log_weights_matches_monte_carlo():
    d = torch.tensor([[0.7], [2.0], [5.0]])[None]  # (1, K=3, 1)
    torch.manual_seed(0)
    draws = Dirichlet(d[0, :, 0]).sample((400_000,))
    mc = draws.clamp_min(1e-300).log().mean(0)
    torch.testing.assert_close(expected_log_weights(d.log())[0, :, 0], mc, atol=0.02, rtol=0)


def test_kl_assignment_equals_definition():
    r = torch.softmax(_rand(2, 3, 1, 4, 4, seed=4), dim=1)
    d = _rand(2, 3, 1, 4, 4, seed=5)
    e_log_pi = torch.digamma(d) - torch.digamma(d.sum(1, keepdim=True))
    ref = (r * r.log()).sum(1) - (r * e_log_pi).sum(1)
    torch.testing.assert_close(kl_assignment(r, d.log()), ref)


def test_expected_likelihood_matches_monte_carlo():
    torch.manual_seed(0)
    y = torch.tensor([[[[0.3]]]])  # (N, C, H, W)
    mu, var = torch.tensor(0.5), torch.tensor(0.04)
    a, b = torch.tensor(3.0), torch.tensor(0.06)
    ours = expected_neg_log_likelihood(y, mu.view(1, 1, 1, 1, 1), var.view(1, 1, 1, 1, 1),
                                       a.log().view(1, 1, 1, 1, 1), b.log().view(1, 1, 1, 1, 1))
    n = 1_000_000
    x = Normal(mu, var.sqrt()).sample((n,))
    tau = Gamma(a, b).sample((n,))
    mc = -Normal(x, tau.rsqrt()).log_prob(y.flatten()).mean() - 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(ours.flatten()[0], mc, atol=0.01, rtol=0)


@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (2, 3, 5, 7)])
def test_score_backward_is_tweedie(shape):
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    var = torch.tensor(0.3)

    def denoiser(t):
        return 0.5 * t + 0.1

    out = score_log_prior(x, denoiser, var)
    score = (denoiser(x.detach()) - x.detach()) / var
    torch.testing.assert_close(out, 0.5 * x.detach() * score)  # the RED log-prior estimate
    grad_out = torch.randn(shape)
    out.backward(grad_out)
    expected = grad_out * (denoiser(x.detach()) - x.detach()) / var
    torch.testing.assert_close(x.grad, expected)


def test_score_matches_gaussian_prior_score():
    """For a Gaussian prior N(0, s0^2) the MMSE denoiser at noise s is s0^2/(s0^2+s^2) x, so the
    surrogate's gradient must equal the analytic score of the smoothed prior, -x / (s0^2 + s^2)."""
    s0, s = 0.8, 0.3
    x = torch.randn(1000, requires_grad=True)
    value = score_log_prior(x, lambda t: s0**2 / (s0**2 + s**2) * t, torch.tensor(s**2))
    value.sum().backward()
    torch.testing.assert_close(x.grad, -x.detach() / (s0**2 + s**2))
    # and its value is the smoothed prior's log-density up to a constant
    expected = torch.distributions.Normal(0.0, (s0**2 + s**2) ** 0.5).log_prob(x.detach())
    torch.testing.assert_close(value - value[0], expected - expected[0])


def test_score_with_mean_window_cannot_shift_local_means():
    """A denoiser that adds a constant offset would drag the image by offset / var per step; with
    the local mean removed, the score of a pure offset is zero and a zero-mean detail score stays."""
    torch.manual_seed(1)
    x = torch.rand(1, 1, 32, 32, requires_grad=True)
    var = torch.tensor(1e-3)
    score_log_prior(x, lambda t: t + 0.01, var, mean_window=5).sum().backward()
    torch.testing.assert_close(x.grad, torch.zeros_like(x), atol=1e-3, rtol=0)
    x.grad = None
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2.0 - 1.0  # zero local mean
    score_log_prior(x, lambda t: t + 0.01 * checker, var, mean_window=5).sum().backward()
    inner = (x.grad[0, 0] * var)[4:-4, 4:-4]
    torch.testing.assert_close(inner, 0.01 * checker[4:-4, 4:-4] - inner.mean(), atol=2e-3, rtol=0)
