"""The negative ELBO of ScoreDVI, term by term (see ../shared/docs/method.md), and the score prior.

Every term is per pixel (and channel); the objective averages them. Shapes follow
:class:`~napari_scoredvi.posterior.Posterior`: (N, K, C, H, W) for image quantities and
(N, K, 1, H, W) for the assignment and mixture-weight quantities.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.special import digamma

from .networks import Posterior

ALPHA0 = 1.0  # Gamma prior shape of the noise precision
MEAN_WINDOW = 15  # the score's local mean over this many pixels (odd) is removed
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


class _ScoreGradient(torch.autograd.Function):
    """Returns the precomputed log-prior estimate; the backward pass multiplies by the score."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, score: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(score)
        return value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (score,) = ctx.saved_tensors
        return grad * score, None, None


def score_log_prior(
    x: torch.Tensor, denoiser: Callable[[torch.Tensor], torch.Tensor], var: torch.Tensor,
    mean_window: int | None = None,
) -> torch.Tensor:
    """Per-pixel estimate of ``log p(x)`` (up to a constant) whose gradient w.r.t. ``x`` is Tweedie's
    score ``(D(x) - x) / var``.

    The value is the regularisation-by-denoising energy ``-x (x - D(x)) / (2 var) = x * score / 2``
    (Romano et al. 2017), exact for a Gaussian prior and consistent with the score for a bias-free
    (homogeneous) denoiser; it lets the responsibilities see how well each component's prior
    explains its sample. The denoiser output and ``var`` are treated as constants.

    ``mean_window`` (odd, pixels): remove the score's local mean over this window, so that the
    prior shapes the image and the likelihood alone sets its local means. A prior whose output is
    off by a small local offset, divided by a small posterior variance, otherwise walks the whole
    image away from the data (+27/255 on a PolyU crop; docs/engine.md).
    """
    with torch.no_grad():
        score = (denoiser(x) - x) / var
        if mean_window:
            score = score - F.avg_pool2d(score, mean_window, stride=1, padding=mean_window // 2,
                                         count_include_pad=False)
        value = 0.5 * x * score
    return _ScoreGradient.apply(x, score, value)


def negative_elbo(
    y: torch.Tensor,
    q: Posterior,
    priors: list[Callable[[torch.Tensor], torch.Tensor]],
    lam: float,
    beta0: float,
    samples: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``E_rec + lam * KL_x + KL_tau + KL_z + KL_pi`` averaged over pixels; also the terms' values.

    ``KL_x`` uses ``samples`` reparameterised draws per component; the score is evaluated with the
    component's mean posterior variance (the faster variant of ScoreDVI, one sample suffices).
    The responsibilities see the prior through its RED estimate (:func:`score_log_prior`).
    """
    var = q.var
    rec = (q.r * expected_neg_log_likelihood(y, q.mu, var, q.log_a, q.log_b)).sum(1).mean()
    entropy = (q.r * (-0.5 * q.log_var)).sum(1).mean()
    std = var.sqrt()
    log_prior = 0.0
    for k, prior in enumerate(priors):
        mean_var = var[:, k].detach().mean(dim=(-1, -2, -3), keepdim=True).clamp_min(1e-8)
        for _ in range(samples):
            eps = torch.randn(std[:, k].shape, generator=generator, device=y.device, dtype=y.dtype)
            x = q.mu[:, k] + std[:, k] * eps
            log_prior = log_prior + (q.r[:, k] * score_log_prior(x, prior, mean_var, MEAN_WINDOW)).mean() / samples
    # mean over channels of the per-pixel sum over k matches the other terms' normalisation
    kl_x = entropy - log_prior
    kl_tau = (q.r * kl_gamma(q.log_a, q.log_b, beta0)).sum(1).mean()
    kl_z = kl_assignment(q.r, q.log_d).mean()
    kl_pi = kl_dirichlet(q.log_d).mean()
    loss = rec + lam * kl_x + kl_tau + kl_z + kl_pi
    terms = {"rec": rec, "kl_x_entropy": entropy, "kl_tau": kl_tau, "kl_z": kl_z, "kl_pi": kl_pi}
    terms = {name: value.detach() for name, value in terms.items()}  # no host sync here (GPU)
    return loss, terms
