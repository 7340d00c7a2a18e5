"""The objective of ScoreDVI's variational fit: the negative ELBO, term by term (see
../shared/docs/method.md), with the score prior's KL term as the reference code computes it.

Every term is per pixel (and channel); the objective averages them. Shapes follow
:class:`.networks.Posterior`: (N, K, C, H, W) for image quantities and (N, K, 1, H, W) for the
assignment and mixture-weight quantities.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.special import digamma

from .networks import Posterior

ALPHA0 = 1.0  # Gamma prior shape of the noise precision
D0 = 1.0  # Dirichlet prior concentration


def expected_neg_log_likelihood(y: torch.Tensor, mu, var, log_a, log_b) -> torch.Tensor:
    """``-E_q[log N(y | x, 1/tau)]`` per component, without the constant ``0.5 log 2 pi``.

    ``y`` (N, C, H, W); the rest (N, K, C, H, W). Returns (N, K, C, H, W).
    """
    e_log_tau = digamma(log_a.exp()) - log_b
    e_tau = (log_a - log_b).exp()
    return -0.5 * e_log_tau + 0.5 * ((mu - y[:, None]) ** 2 + var) * e_tau


def kl_gamma(log_a: torch.Tensor, log_b: torch.Tensor, beta0: float | torch.Tensor, alpha0: float = ALPHA0):
    """``KL(Gamma(a, b) || Gamma(alpha0, beta0))`` with rates ``b`` and ``beta0``, elementwise."""
    a = log_a.exp()
    beta0 = torch.as_tensor(beta0, dtype=a.dtype, device=a.device)
    return (
        (a - alpha0) * digamma(a)
        + torch.lgamma(torch.as_tensor(alpha0, dtype=a.dtype, device=a.device))
        - torch.lgamma(a)
        + alpha0 * (log_b - beta0.log())
        + beta0 * (log_a - log_b).exp()
        - a
    )


def expected_log_weights(log_d: torch.Tensor) -> torch.Tensor:
    """``E_q(pi)[log pi_k] = psi(d_k) - psi(sum_j d_j)`` for a Dirichlet over dim 1."""
    d = log_d.exp()
    return digamma(d) - digamma(d.sum(1, keepdim=True))


def kl_assignment(r: torch.Tensor, log_d: torch.Tensor) -> torch.Tensor:
    """``E_q[log q(z) - log p(z | pi)] = sum_k r_k (log r_k - E log pi_k)``; sums over dim 1."""
    return (r * (torch.log(r.clamp_min(1e-12)) - expected_log_weights(log_d))).sum(1)


def kl_dirichlet(log_d: torch.Tensor, d0: float = D0) -> torch.Tensor:
    """``KL(Dir(d) || Dir(d0, ..., d0))`` over dim 1."""
    d = log_d.exp()
    k = d.shape[1]
    d_sum = d.sum(1)
    return (
        torch.lgamma(d_sum)
        - torch.lgamma(d).sum(1)
        - math.lgamma(k * d0)
        + k * math.lgamma(d0)
        + ((d - d0) * (digamma(d) - digamma(d_sum)[:, None])).sum(1)
    )


class _Score(torch.autograd.Function):
    """Returns the sample ``x``; back-propagates ``grad * score`` (the reference's ``ScoreFunction``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(score)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (score,) = ctx.saved_tensors
        return grad * score, None


def published_negative_elbo(
    y: torch.Tensor, q: Posterior, priors: list[Callable[[torch.Tensor], torch.Tensor]], lam: float, beta0: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The reference's objective ``E_rec + lam * KL_x + KL_tau + KL_z + KL_pi`` (pixel means); also the
    terms' values. One posterior draw per component, its score scaled by the component's mean
    posterior variance (the reference's later version)."""
    var = q.var
    kl_x = 0.0
    for k, prior in enumerate(priors):
        std = var[:, k].sqrt()
        with torch.no_grad():
            scale = var[:, k].mean(dim=(-1, -2, -3), keepdim=True).clamp_min(1e-8)
        eps = torch.randn(std.shape, generator=generator, device=y.device, dtype=y.dtype)
        x = q.mu[:, k] + std * eps
        with torch.no_grad():
            score = (prior(x) - x) / scale
        kl_x = kl_x + (q.r[:, k] * (-0.5 * q.log_var[:, k] - _Score.apply(x, score))).mean()
    rec = (q.r * expected_neg_log_likelihood(y, q.mu, var, q.log_a, q.log_b)).sum(1).mean()
    kl_tau = (q.r * kl_gamma(q.log_a, q.log_b, beta0)).sum(1).mean()
    kl_z = kl_assignment(q.r, q.log_d).mean()
    kl_pi = kl_dirichlet(q.log_d).mean()
    loss = rec + lam * kl_x + kl_tau + kl_z + kl_pi
    terms = {"rec": rec, "kl_x": kl_x, "kl_tau": kl_tau, "kl_z": kl_z, "kl_pi": kl_pi}
    return loss, {name: value.detach() for name, value in terms.items()}
