"""Each term of the variational fit's negative ELBO against an independent closed form or Monte Carlo
estimate, and its score term's gradient against a known denoiser."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Dirichlet, Gamma, Normal, kl_divergence

from napari_scoredvi.engine.variational.networks import PosteriorNets
from napari_scoredvi.engine.variational.objective import (
    expected_log_weights,
    expected_neg_log_likelihood,
    kl_assignment,
    kl_dirichlet,
    kl_gamma,
    published_negative_elbo,
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


def test_the_kl_term_back_propagates_the_score_of_a_known_denoiser():
    # with the prior D(x) = 0.5 x the score at x is (D(x) - x) / var = -0.5 x / var: the prior part of
    # d loss / d mu is lam * r * (-score) / pixels, whatever the sample
    torch.manual_seed(0)
    nets = PosteriorNets(1, 1, 2, 4, 2, 4)
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
