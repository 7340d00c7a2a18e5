"""The per-pixel uncertainty outputs beside the denoised image, in model units.

* **Noise variance**: the noise level function ``var(I) = a I + b`` that :mod:`.noise_estimate`
  fits to the noisy image (per channel), evaluated halfway between the denoised and the noisy
  intensity. At the denoised intensity alone it inherits the denoiser's contrast compression (dark
  pixels read too bright, bright ones too dim, so the map's slope against the clean intensity reads
  low); at the noisy intensity it is unbiased (the function is linear) but as noisy as the image;
  halfway halves both (docs/explanation/noise-and-uncertainty.md). The fitted q(tau) of
  the variational posterior was nearly flat against intensity (a slope of 0.00-0.11 of the true
  gain), because one image holds one noise sample per pixel; the noise level function pools all
  flat patches of an intensity level instead (docs/explanation/prior-ensemble.md).
* **Posterior variance**: Tweedie's second-order formula. For ``y = x + n``, ``n ~ N(0, S)`` and the
  MMSE denoiser ``D(y) = E[x | y]``, ``Cov[x | y] = J_D(y) S`` (J the Jacobian of D). Its diagonal is
  estimated with Hutchinson probes shaped like the noise (correlated like it, too), ``e ~ N(0, S)``:
  ``E[e_i (J e)_i] = (J S)_ii``, where ``J e`` is a finite difference ``(D(y + d e) - D(y)) / d``
  (exact within a linear region of the bias-free ReLU priors), then averaged over a small window.
  ``J S`` is the error of the MMSE denoiser; ours errs more where the priors fit the image less
  well (fine texture), so the map is scaled, per channel, by the ratio of Stein's unbiased risk
  estimate of the denoised image's mean squared error to the map's mean (:func:`sure_scale`,
  between ``SURE_MIN`` and ``SURE_MAX``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence

import torch
import torch.nn.functional as F

from .noise_estimate import NoiseLevelFunction

PROBES = 2  # Hutchinson probes per image
STEP = 0.1  # finite-difference step, as a fraction of the noise
WINDOW = 7  # the probe products are averaged over WINDOW x WINDOW pixels
FLOOR = 0.01  # the posterior variance is at least this share of the noise variance
SURE_MIN, SURE_MAX = 0.5, 4.0  # bounds of the posterior variance's scale (:func:`sure_scale`)


def noise_variance_map(denoised: torch.Tensor, nlfs: Sequence[NoiseLevelFunction],
                       noisy: torch.Tensor | None = None) -> torch.Tensor:
    # (the marginal variance: with correlated noise the level functions, measured on pixel-shuffled
    # sub-images, still give each pixel's own variance)
    """``a_c * I + b_c`` per channel c at ``I = (denoised + noisy) / 2`` (``denoised`` alone when
    ``noisy`` is None), floored at a small share of the mean level: (C, H, W) from (C, H, W) images,
    model units squared."""
    slope = torch.tensor([f.slope for f in nlfs], dtype=denoised.dtype, device=denoised.device)[:, None, None]
    intercept = torch.tensor([f.intercept for f in nlfs], dtype=denoised.dtype, device=denoised.device)[:, None, None]
    intensity = denoised if noisy is None else (denoised + noisy) / 2
    var = slope * intensity + intercept
    floor = 0.01 * var.mean(dim=(-1, -2), keepdim=True).clamp_min(1e-12)
    return torch.maximum(var, floor)


def correlated_normal(shape: tuple[int, ...], lag1: tuple[float, float], generator: torch.Generator,
                      device=None, dtype=None) -> torch.Tensor:
    """Unit-variance Gaussian noise (..., H, W) whose lag-1 correlation is ``lag1`` (y, x): white noise
    filtered by the unit-energy kernel ``[a, 1, a]`` along each axis, ``2a / (1 + 2a^2) = rho``."""
    e = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    for axis, rho in zip((-2, -1), lag1):
        rho = min(max(rho, 0.0), 0.7)
        if rho < 0.02:
            continue
        a = (1 - (1 - 2 * rho * rho) ** 0.5) / (2 * rho)
        e = (a * e.roll(1, axis) + e + a * e.roll(-1, axis)) / (1 + 2 * a * a) ** 0.5
    return e


def tweedie_posterior_variance(
    denoiser: Callable[[torch.Tensor], Generator[None, None, torch.Tensor]],
    y: torch.Tensor,
    baseline: torch.Tensor,
    noise_variance: torch.Tensor,
    generator: torch.Generator,
    probes: int = PROBES,
    lag1: tuple[float, float] = (0.0, 0.0),
) -> Generator[None, None, torch.Tensor]:
    """Diagonal of ``J_D(y) S`` for a denoiser ``D`` of (N, C, H, W) images, with ``baseline = D(y)``
    and ``S`` the noise covariance: ``noise_variance`` per pixel, lag-1 correlation ``lag1`` (y, x);
    all (C, H, W), model units (squared for the variances). ``denoiser(v)`` is a generator returning
    ``D(v)``; what it yields is passed on (progress between prior passes)."""
    std = noise_variance.sqrt()
    acc = torch.zeros_like(y)
    for _ in range(probes):
        e = std * correlated_normal(y.shape, lag1, generator, y.device, y.dtype)
        acc += e * ((yield from denoiser((y + STEP * e)[None]))[0] - baseline) / STEP
    diag = F.avg_pool2d((acc / probes)[None], WINDOW, stride=1, padding=WINDOW // 2, count_include_pad=False)[0]
    # J S is positive semi-definite for an MMSE denoiser: a local mean below the floor is probe noise
    return torch.maximum(diag, FLOOR * noise_variance)


def sure_scale(y: torch.Tensor, denoised: torch.Tensor, noise_variance: torch.Tensor,
               posterior_variance: torch.Tensor) -> torch.Tensor:
    """Per channel, Stein's unbiased risk estimate of the mean squared error of ``denoised``,
    ``mean((y - D)^2) - mean(S) + 2 mean(J S)``, over the mean of the Tweedie posterior variance
    ``J S`` (``posterior_variance``), clipped to [``SURE_MIN``, ``SURE_MAX``]: (C, 1, 1) from (C, H, W)
    tensors in model units. About 1 when the denoiser errs as the MMSE denoiser of its priors would
    (the Tweedie variance is then the expected squared error); above 1 when it errs more (fine
    texture the priors smooth), below when the image is easier than the priors' training images
    (smooth fluorescence frames). The bounds keep a noise variance read far off (the estimate
    subtracts it) from scaling the map by more. The Stein term is that of the prior mixture at
    ``y``, which the final pass and the self-ensemble change a little."""
    dims = (-1, -2)
    jsm = posterior_variance.mean(dim=dims).clamp_min(1e-12)
    risk = ((y - denoised) ** 2).mean(dim=dims) - noise_variance.mean(dim=dims) + 2 * posterior_variance.mean(dim=dims)
    return (risk / jsm).clamp(SURE_MIN, SURE_MAX)[:, None, None]
