"""Each term of the negative ELBO against an independent closed form or Monte Carlo estimate."""

import math

import pytest
import torch
from torch.distributions import Categorical, Dirichlet, Gamma, Normal, kl_divergence

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


def test_kls_are_non_negative_and_zero_only_at_the_prior():
    a, b, d = _rand(3, 2, 1, 6, 6, seed=6), _rand(3, 2, 1, 6, 6, seed=7), _rand(3, 4, 1, 6, 6, seed=8)
    assert (kl_gamma(a.log(), b.log(), 0.5, alpha0=2.0) > 0).all()
    assert (kl_dirichlet(d.log(), d0=1.5) > 0).all()
    torch.testing.assert_close(kl_gamma(torch.tensor(2.0).log(), torch.tensor(0.5).log(), 0.5, alpha0=2.0),
                               torch.tensor(0.0), atol=1e-12, rtol=0)
    torch.testing.assert_close(kl_dirichlet(torch.full((1, 4, 1), 1.5).log(), d0=1.5), torch.zeros(1, 1),
                               atol=1e-12, rtol=0)


def test_expected_log_weights_matches_monte_carlo():
    d = torch.tensor([[0.7], [2.0], [5.0]])[None]  # (1, K=3, 1)
    torch.manual_seed(0)
    draws = Dirichlet(d[0, :, 0]).sample((400_000,))
    mc = draws.clamp_min(1e-300).log().mean(0)
    torch.testing.assert_close(expected_log_weights(d.log())[0, :, 0], mc, atol=0.02, rtol=0)


def test_kl_assignment_matches_monte_carlo_over_the_weights():
    """``E_q(pi)[KL(Cat(r) || Cat(pi))]``, estimated by drawing pi from the Dirichlet."""
    r = torch.tensor([0.6, 0.3, 0.1])
    d = torch.tensor([0.8, 2.0, 4.0])
    torch.manual_seed(0)
    pi = Dirichlet(d).sample((200_000,)).clamp_min(1e-300)
    mc = kl_divergence(Categorical(probs=r.expand_as(pi)), Categorical(probs=pi)).mean()
    ours = kl_assignment(r.view(1, 3, 1, 1, 1), d.log().view(1, 3, 1, 1, 1))
    torch.testing.assert_close(ours.flatten()[0], mc, atol=0.02, rtol=0)


def test_kl_assignment_known_values_and_bounds():
    r = torch.softmax(_rand(2, 3, 1, 4, 4, seed=4), dim=1)
    d = _rand(2, 3, 1, 4, 4, seed=5)
    assert (kl_assignment(r, d.log()) >= 0).all()  # an expectation of KL divergences
    # a Dirichlet concentrated at r (d = 1e7 r): pi = r almost surely, so the KL vanishes
    torch.testing.assert_close(kl_assignment(r, (1e7 * r).log()), torch.zeros(2, 1, 4, 4), atol=1e-6, rtol=0)
    # a sure assignment to component 0 under the flat Dirichlet(1, 1): E[-log pi_0] = 1 for pi_0 ~ U(0, 1)
    one_hot = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1, 1)
    torch.testing.assert_close(kl_assignment(one_hot, torch.zeros(1, 2, 1, 1, 1)).flatten(), torch.tensor([1.0]))


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


def test_score_value_and_gradient_at_known_points():
    """D(x) = 0.5 x + 0.1 with var 0.25: the score (D(x) - x) / var is 0.4 - 2 x, so at
    x = -1, 0, 0.2, 1 the gradient is 2.4, 0.4, 0, -1.6 (zero at the denoiser's fixed point 0.2)
    and the value x * score / 2 is -1.2, 0, 0, -0.8."""
    x = torch.tensor([-1.0, 0.0, 0.2, 1.0]).view(1, 1, 2, 2).requires_grad_()
    value = score_log_prior(x, lambda t: 0.5 * t + 0.1, torch.tensor(0.25))
    torch.testing.assert_close(value.flatten(), torch.tensor([-1.2, 0.0, 0.0, -0.8]))
    (3.0 * value.sum()).backward()  # the upstream gradient multiplies the score
    torch.testing.assert_close(x.grad.flatten(), 3.0 * torch.tensor([2.4, 0.4, 0.0, -1.6]))


@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (2, 3, 5, 7)])
def test_score_gradient_is_pixelwise_and_treats_the_denoiser_as_constant(shape):
    """The denoiser D(x) = w x (w = 0.75, a parameter) at var 0.5: d value / dx = (w - 1) x / var = -x / 2
    pixel by pixel, whatever the shape, and no gradient reaches the denoiser's parameter."""
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    w = torch.tensor(0.75, requires_grad=True)
    value = score_log_prior(x, lambda t: w * t, torch.tensor(0.5))
    assert value.shape == x.shape
    value.sum().backward()
    torch.testing.assert_close(x.grad, -x.detach() / 2)
    assert w.grad is None


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
