"""ScoreDVI as published: a cold-start variational fit of the whole image (the ``variational`` preset).

Unlike the amortised presets (:mod:`.fit`: networks that start at the priors' estimates ``D_k(y)``
and stay near them), this follows the authors' reference code (alwaysuu/ScoreDVI, ``ScoreDVI.py``):

* the posterior networks read only ``y`` and start from their random initialisation, so the
  posterior variance starts near 1 (model units, [0, 1] data) and the mean near 0;
* every step fits the whole image; the score of each component is taken on a reparameterised
  posterior sample ``x = mu_k + sigma_k * eps`` as ``(D_k(x) - x) / sigma_k^2``. Early samples are
  very noisy and get cleaner as the variance shrinks: an annealed denoising that lets priors trained
  on i.i.d. Gaussian noise remove noise they never saw (spatially correlated, camera sRGB);
* the KL term of ``x`` is the reference's: ``-0.5 log sigma^2 - s(x)`` where ``s`` returns the sample
  and back-propagates the score (with the component's mean posterior variance and one sample: the
  reference's later, faster variant);
* the output is ``sum_k r_k mu_k``, averaged over the steps by an exponential moving average
  (weight ``preset.ema`` on the running value, starting from ``y``); no final denoising pass and no
  drift guard. A fit whose mean posterior std ends above :data:`~.fit.DIVERGED_STD` is redone once
  with a new seed, as in the reference.

Departures from the reference are measured in docs/engine.md ("The variational preset").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator

import torch
from torch import nn

from .elbo import expected_neg_log_likelihood, kl_assignment, kl_dirichlet, kl_gamma
from .networks import LOG_MAX, LOG_MIN, AuxNet, Posterior, UNet
from .presets import Preset
from .result import FitStep


class ColdPosteriorNets(nn.Module):
    """The posterior networks of the reference: an image U-Net and the noise/assignment/weight net,
    both reading only ``y`` (N, C, H, W), default (random) initialisation; ``forward(y)`` gives a
    :class:`~.networks.Posterior`."""

    def __init__(self, channels: int, k: int, levels: int, base: int, aux_depth: int, aux_width: int,
                 init_std: float = 0.0, norm: bool = False) -> None:
        super().__init__()
        self.c, self.k = channels, k
        self.image = UNet(channels, 2 * channels * k, levels, base, norm)
        self.aux = AuxNet(channels, 2 * channels * k + 2 * k, aux_depth, aux_width)
        # init_std > 0 (a departure from the reference, measured in docs/engine.md): q(x) starts at
        # N(y, init_std^2), the annealing's starting point, instead of a random mean with variance ~1
        self.from_y = init_std > 0
        if self.from_y:
            nn.init.zeros_(self.image.head.weight)
            nn.init.zeros_(self.image.head.bias)
        self.register_buffer("log_init_var", torch.tensor(2 * math.log(init_std) if init_std > 0 else 0.0))

    def forward(self, y: torch.Tensor) -> Posterior:
        n, c, h, w = y.shape
        k = self.k
        img = self.image(y).reshape(n, 2, k, c, h, w)
        aux = self.aux(y)
        tau = aux[:, : 2 * c * k].reshape(n, 2, k, c, h, w)
        return Posterior(
            mu=img[:, 0] + y[:, None] if self.from_y else img[:, 0],
            log_var=(img[:, 1] + self.log_init_var).clamp(LOG_MIN, LOG_MAX),
            log_a=tau[:, 0].clamp(LOG_MIN, LOG_MAX),
            log_b=tau[:, 1].clamp(LOG_MIN, LOG_MAX),
            r=torch.softmax(aux[:, 2 * c * k : 2 * c * k + k], dim=1)[:, :, None],
            log_d=aux[:, 2 * c * k + k :].clamp(LOG_MIN, LOG_MAX)[:, :, None],
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
    generator: torch.Generator | None = None, samples: int = 1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The reference's objective ``E_rec + lam * KL_x + KL_tau + KL_z + KL_pi`` (pixel means); also the
    terms' values. ``samples`` posterior draws per component: 1 with the component's mean posterior
    variance in the score (the reference's later version), more with the per-pixel variance (its
    first version used 5)."""
    var = q.var
    kl_x = 0.0
    for k, prior in enumerate(priors):
        std = var[:, k].sqrt()
        with torch.no_grad():  # one sample: the mean variance (later reference); more: per pixel (first)
            scale = var[:, k].mean(dim=(-1, -2, -3), keepdim=True) if samples == 1 else var[:, k]
            scale = scale.clamp_min(1e-8)
        log_prior = 0.0
        for _ in range(samples):
            eps = torch.randn(std.shape, generator=generator, device=y.device, dtype=y.dtype)
            x = q.mu[:, k] + std * eps
            with torch.no_grad():
                score = (prior(x) - x) / scale
            log_prior = log_prior + _Score.apply(x, score) / samples
        kl_x = kl_x + (q.r[:, k] * (-0.5 * q.log_var[:, k] - log_prior)).mean()
    rec = (q.r * expected_neg_log_likelihood(y, q.mu, var, q.log_a, q.log_b)).sum(1).mean()
    kl_tau = (q.r * kl_gamma(q.log_a, q.log_b, beta0)).sum(1).mean()
    kl_z = kl_assignment(q.r, q.log_d).mean()
    kl_pi = kl_dirichlet(q.log_d).mean()
    loss = rec + lam * kl_x + kl_tau + kl_z + kl_pi
    terms = {"rec": rec, "kl_x": kl_x, "kl_tau": kl_tau, "kl_z": kl_z, "kl_pi": kl_pi}
    return loss, {name: value.detach() for name, value in terms.items()}


def fit_cold(
    y: torch.Tensor, preset: Preset, priors: list, lam: float, beta0: float, seed: int, step0: int, total: int,
    init_state: dict | None = None,
) -> Generator[FitStep, None, tuple[ColdPosteriorNets, torch.Tensor, dict[str, float]]]:
    """One cold (or, with ``init_state``, warm-started) fit of ``y`` (C, H, W), model units.

    Yields a :class:`FitStep` per Adam step (numbered from ``step0 + 1`` of ``total``); returns the
    fitted networks, the EMA of the denoised image (C, H, W) and the last step's terms.
    """
    device = y.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        nets = ColdPosteriorNets(y.shape[0], len(priors), preset.unet_levels, preset.unet_base, preset.aux_depth,
                                 preset.aux_width, preset.init_std, preset.norm).to(device, torch.float32)
    if init_state:
        nets.load_state_dict(init_state)
    iterations = preset.warm_iterations if init_state else preset.iterations
    opt = torch.optim.Adam(nets.parameters(), lr=preset.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(iterations, 1), eta_min=preset.lr_final)
    gen = torch.Generator(device=device).manual_seed(seed)
    batch = y[None]
    average = y.clone()
    terms: dict[str, torch.Tensor] = {}
    for it in range(iterations):
        q = nets(batch)
        loss, terms = published_negative_elbo(batch, q, priors, lam, beta0, gen, preset.samples)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            average.mul_(preset.ema).add_(q.denoised()[0].detach(), alpha=1 - preset.ema)
        terms["loss"] = loss.detach()
        yield FitStep(step0 + it + 1, total)
    return nets, average, {name: float(v) for name, v in terms.items()}
