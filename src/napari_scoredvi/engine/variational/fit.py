"""ScoreDVI as published: a cold-start variational fit of the whole image (the ``variational`` preset).

Networks in :mod:`.networks`, objective in :mod:`.objective`.

It follows the authors' reference code (alwaysuu/ScoreDVI, ``ScoreDVI.py``):

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
  drift guard. A fit whose mean posterior std ends above :data:`DIVERGED_STD` is redone once
  with a new seed, as in the reference.

Departures from the reference: docs/explanation (the variational preset).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..noise_estimate import NoiseModel, mean_noise_std, prior_weight
from ..presets import VariationalPreset
from ..result import WorkStep
from ..uncertainty import noise_variance_map
from .networks import PosteriorNets
from .objective import published_negative_elbo

LAM0 = 0.5  # the prior weight at the reference noise level (:func:`~..noise_estimate.prior_weight`)
BETA0_RANGE = (1e-4, 0.05)  # bounds of the Gamma prior rate (noise variance, model units)
DIVERGED_STD = 0.05  # mean posterior std (model units) above which a fit is redone once
UNIT = "fit step"


@dataclass
class VariationalOutput:
    """Outputs in model units, each (C, H, W) float32, and what the fit did: Adam steps, retries,
    whether the last fit still ended too wide (``diverged``), the prior weight and Gamma rate used,
    the objective's terms at the last step, and the fitted networks (``state``, to warm-start a similar image)."""

    denoised: np.ndarray
    noise_variance: np.ndarray
    posterior_std: np.ndarray
    iterations: int
    retries: int
    diverged: bool
    lam: float
    beta0: float
    final_terms: dict[str, float] = field(default_factory=dict)
    state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


def denoise_variational(
    y: np.ndarray, preset: VariationalPreset, priors: list, noise: NoiseModel, device: torch.device, seed: int,
    lam: float | None = None, init_state: dict | None = None, posterior: bool = True,
) -> Generator[WorkStep, None, VariationalOutput]:
    """Fit q to ``y`` ((C, H, W) float, model units) with all the ``priors`` and return the outputs in
    model units. ``noise``: the image's noise model (model units; the noise-variance output and the
    Gamma prior's rate). ``lam``: the prior weight (None: from the noise level). ``init_state``: the
    ``state`` of an earlier fit of a similar image with the same preset, channel count and priors; the
    fit then starts from those networks and runs ``preset.warm_iterations`` steps. ``posterior=False``:
    the posterior std is all NaN. Yields a :class:`~..result.WorkStep` after each Adam step (``total``
    grows when a fit is redone); raises ``RuntimeError`` when both tries end non-finite."""
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(device)
    noise_std = mean_noise_std(y, list(noise.levels))
    lam = prior_weight(noise_std * 255.0, LAM0) if lam is None else float(lam)
    beta0 = float(np.clip(noise_std**2, *BETA0_RANGE))
    total = preset.warm_iterations if init_state else preset.iterations
    done = 0
    for retry in range(2):
        state = init_state if retry == 0 else None
        iterations = preset.warm_iterations if state else preset.iterations
        nets, denoised, terms = yield from _fit_once(yt, preset, priors, lam, beta0, seed + 7919 * retry, done, total,
                                                     state)
        done += iterations
        with torch.no_grad():
            q_std = nets(yt[None]).posterior_std()[0]
        diverged = bool(q_std.mean() > DIVERGED_STD) or not bool(torch.isfinite(denoised).all())
        if not diverged or retry == 1:
            break
        total += preset.iterations
    if not bool(torch.isfinite(denoised).all()):
        raise RuntimeError("the fit diverged twice (non-finite output); pass a fixed lam, and check the image for "
                           "extreme outliers")
    noise_var = noise_variance_map(denoised, noise.levels, yt)
    post_std = q_std if posterior else torch.full_like(q_std, float("nan"))
    return VariationalOutput(
        denoised=denoised.float().cpu().numpy(),
        noise_variance=noise_var.float().cpu().numpy(),
        posterior_std=post_std.float().cpu().numpy(),
        iterations=done,
        retries=retry,
        diverged=diverged,
        lam=lam,
        beta0=beta0,
        final_terms=terms,
        state={k: v.detach().clone() for k, v in nets.state_dict().items()},
    )


def _fit_once(
    y: torch.Tensor, preset: VariationalPreset, priors: list, lam: float, beta0: float, seed: int, step0: int,
    total: int, init_state: dict | None = None,
) -> Generator[WorkStep, None, tuple[PosteriorNets, torch.Tensor, dict[str, float]]]:
    """One cold (or, with ``init_state``, warm-started) fit of ``y`` (C, H, W), model units.

    Yields a :class:`~..result.WorkStep` per Adam step (numbered from ``step0 + 1`` of ``total``); returns the
    fitted networks, the EMA of the denoised image (C, H, W) and the last step's terms.
    """
    device = y.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        nets = PosteriorNets(y.shape[0], len(priors), preset.unet_levels, preset.unet_base, preset.aux_depth,
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
        loss, terms = published_negative_elbo(batch, q, priors, lam, beta0, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            average.mul_(preset.ema).add_(q.denoised()[0].detach(), alpha=1 - preset.ema)
        terms["loss"] = loss.detach()
        yield WorkStep(step0 + it + 1, total, UNIT)
    return nets, average, {name: float(v) for name, v in terms.items()}
