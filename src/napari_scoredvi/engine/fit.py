"""Fitting ScoreDVI's variational posterior to one image, as a generator of progress steps.

``fit`` yields a :class:`~.result.FitStep` after every Adam step and returns a :class:`FitOutput` (model
units, (C, H, W) float32 arrays). Consumers (the Python API, the napari thread worker, the batch
pipeline) drive the same generator; stopping iteration (``close()`` or an exception in the
consumer) cancels the fit cleanly.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .elbo import negative_elbo
from .networks import PosteriorNets
from .noise_estimate import NoiseModel
from .presets import Preset
from .priors import self_ensemble
from .result import FitStep
from .uncertainty import noise_variance_map, sure_scale, tweedie_posterior_variance
from .variational import fit_cold

DIVERGED_STD = 0.05  # mean posterior std (model units) above which a fit may have diverged ...
MAX_RETRIES = 2
#: a fitted image whose mean squared residual (y - denoised) exceeds this times that of the priors'
#: own estimate has removed image structure, not noise: the priors' estimate is returned instead
DRIFT_LIMIT = 2.0
TILE = 1024  # the priors' estimates and the final pass run on tiles of at most TILE x TILE pixels ...
TILE_OVERLAP = 64  # ... blended linearly over this many pixels, so large frames fit in memory


@dataclass
class FitOutput:
    """Outputs in model units, each (C, H, W) float32, plus what the fit did."""

    denoised: np.ndarray
    noise_variance: np.ndarray
    posterior_std: np.ndarray
    iterations: int
    retries: int
    diverged: bool
    #: mean squared residual of the fitted image over that of the priors' own estimate (the mean of
    #: the guide ``D_k(y)``), and whether it exceeded :data:`DRIFT_LIMIT` (then ``denoised`` is that estimate)
    drift_ratio: float = 1.0
    drifted: bool = False
    #: per channel, the factor the Tweedie posterior variance was scaled by (:func:`.uncertainty.sure_scale`)
    posterior_scale: tuple[float, ...] = ()
    final_terms: dict[str, float] = field(default_factory=dict)
    #: the fitted (EMA) networks' parameters: pass as ``init_state`` to warm-start a similar image
    state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


def _crops(
    y: torch.Tensor, guide: torch.Tensor, size: int, count: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random windows of ``size`` (or the whole image when smaller) of ``y`` (C, H, W) and
    ``guide`` (K, C, H, W): (count, C, h, w) and (count, K, C, h, w)."""
    h, w = y.shape[-2:]
    ch, cw = min(size, h), min(size, w)
    if (ch, cw) == (h, w):
        return y[None], guide[None]
    rows = rng.integers(0, h - ch + 1, count)
    cols = rng.integers(0, w - cw + 1, count)
    windows = [(slice(r, r + ch), slice(c, c + cw)) for r, c in zip(rows, cols)]
    return torch.stack([y[:, sr, sc] for sr, sc in windows]), torch.stack([guide[..., sr, sc] for sr, sc in windows])


@torch.no_grad()
def prior_estimates(y: torch.Tensor, priors: list, ensemble: int = 1) -> torch.Tensor:
    """Each prior denoiser applied to the noisy image (averaged over ``ensemble`` flips/rotations):
    (K, C, H, W) from ``y`` (C, H, W), tiled when large (the priors' feature maps of a whole
    2048 x 2048 frame would take about 1.7 GB)."""

    def tile(rows: slice, cols: slice) -> torch.Tensor:
        return torch.stack([self_ensemble(prior, y[None, :, rows, cols], ensemble)[0] for prior in priors])

    return _tiled(tile, (len(priors), y.shape[0]), y.shape[-2:], y.device)


def _ramp(n: int, overlap: int, first: bool, last: bool, device) -> torch.Tensor:
    weight = torch.ones(n, device=device, dtype=torch.float32)
    ramp = torch.linspace(0, 1, overlap + 2, device=device, dtype=torch.float32)[1:-1]
    if not first:
        weight[:overlap] = ramp
    if not last:
        weight[-overlap:] = ramp.flip(0)
    return weight


def _tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    if n <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, n - tile, step)) + [n - tile]
    return sorted(set(starts))


def _tiled(fn, lead: tuple[int, ...], size: tuple[int, int], device) -> torch.Tensor:
    """``fn(rows, cols)`` -> (*lead, th, tw) over tiles of at most TILE x TILE pixels of an image of
    ``size`` (H, W), blended linearly over TILE_OVERLAP pixels: (*lead, H, W) float32. One tile
    (the whole image) when it is small enough."""
    h, w = size
    acc = torch.zeros(*lead, h, w, device=device, dtype=torch.float32)
    norm = torch.zeros(h, w, device=device, dtype=torch.float32)
    rows, cols = _tile_starts(h, TILE, TILE_OVERLAP), _tile_starts(w, TILE, TILE_OVERLAP)
    th, tw = min(TILE, h), min(TILE, w)
    for r in rows:
        for cc in cols:
            out = fn(slice(r, r + th), slice(cc, cc + tw))
            if len(rows) == len(cols) == 1:
                return out.float()
            weight = _ramp(th, TILE_OVERLAP, r == rows[0], r == rows[-1], device)[:, None] * _ramp(
                tw, TILE_OVERLAP, cc == cols[0], cc == cols[-1], device
            )[None, :]
            acc[..., r : r + th, cc : cc + tw] += out * weight
            norm[r : r + th, cc : cc + tw] += weight
    return acc / norm


@torch.no_grad()
def _outputs(
    nets: torch.nn.Module, y: torch.Tensor, guide: torch.Tensor, priors: list, preset: Preset,
    noise: NoiseModel, seed: int, posterior: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Denoised, noise variance, posterior variance and q's posterior std for the whole (C, H, W)
    image, tiled when large.

    With ``preset.final_denoise``, the denoised image is ``sum_k r_k D_k(mu_k)``: each component's
    posterior mean passed once more through its prior denoiser, instead of ``sum_k r_k mu_k``; see
    docs/engine.md. The noise variance and the posterior variance are :mod:`.uncertainty`'s: the
    noise level function halfway between the denoised and the noisy intensity, and Tweedie's ``J S``
    for the mixture of priors ``sum_k r_k D_k`` at the noisy image (NaN without ``posterior``: it
    costs 2 x K prior passes).
    """
    gen = torch.Generator(device=y.device).manual_seed(seed + 1)

    def tile(rows: slice, cols: slice) -> torch.Tensor:
        y_t, guide_t = y[:, rows, cols], guide[..., rows, cols]
        q = nets(y_t[None], guide_t[None])
        resp = q.r[0]  # (K, 1, th, tw)
        if preset.final_denoise:
            den = sum(resp[k] * self_ensemble(prior, q.mu[:, k], preset.ensemble)[0] for k, prior in enumerate(priors))
        else:
            den = q.denoised()[0]
        noise_var = noise_variance_map(den, noise.levels, y_t)

        def mixture(v: torch.Tensor) -> torch.Tensor:
            return sum(resp[k] * prior(v) for k, prior in enumerate(priors))

        if posterior:
            # the guide is D_k(y) already when it is not a self-ensemble average
            base = (resp * guide_t).sum(0) if preset.ensemble == 1 else mixture(y_t[None])[0]
            post_var = tweedie_posterior_variance(mixture, y_t, base, noise_var, gen, lag1=noise.lag1)
        else:
            post_var = torch.full_like(noise_var, float("nan"))
        return torch.stack([den, noise_var, post_var, q.posterior_std()[0]])

    acc = _tiled(tile, (4, y.shape[0]), y.shape[-2:], y.device)
    return acc[0], acc[1], acc[2], acc[3]


def _fit_once(
    y: torch.Tensor, guide: torch.Tensor, preset: Preset, priors: list, lam: float, beta0: float,
    init_std: float, seed: int, lr_factor: float,
    step0: int, total: int, iterations: int, init_state: dict | None,
) -> Generator[FitStep, None, tuple[torch.nn.Module, dict[str, float]]]:
    device = y.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        nets = PosteriorNets(y.shape[0], len(priors), preset.unet_levels, preset.unet_base, preset.aux_depth,
                             preset.aux_width, beta0=beta0, init_std=init_std).to(device, torch.float32)
    if init_state:
        nets.load_state_dict(init_state)
    ema = AveragedModel(nets, multi_avg_fn=get_ema_multi_avg_fn(preset.ema), use_buffers=True)
    opt = torch.optim.Adam(nets.parameters(), lr=preset.lr * lr_factor)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max(iterations, 1), eta_min=preset.lr_final * lr_factor
    )
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    terms: dict[str, torch.Tensor] = {}
    for it in range(iterations):
        batch, batch_guide = _crops(y, guide, preset.crop, preset.crops, rng)
        loss, terms = negative_elbo(batch, nets(batch, batch_guide), priors, lam, beta0, preset.samples, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema.update_parameters(nets)
        terms["loss"] = loss.detach()
        yield FitStep(step0 + it + 1, total)
    return ema.module, {k: float(v) for k, v in terms.items()}


def fit(
    y: np.ndarray, preset: Preset, priors: list, lam: float, beta0: float, init_std: float,
    device: torch.device, noise: NoiseModel, seed: int = 0, noise_std: float = 0.0,
    init_state: dict | None = None, posterior: bool = True,
) -> Generator[FitStep, None, FitOutput]:
    """Fit q to ``y`` ((C, H, W) float32, model units) and return the outputs in model units.

    ``noise``: the image's noise model (model units), for the noise-variance and posterior outputs;
    ``posterior=False`` skips the posterior std (all NaN).

    ``init_state``: the ``state`` of an earlier fit of a similar image (the previous slice of a
    stack) with the same preset and channel count; the fit then starts from those networks and runs
    ``preset.warm_iterations`` steps instead of ``preset.iterations``.

    Yields a :class:`FitStep` after each Adam step. ``lam`` weighs the prior term, ``beta0`` is the
    Gamma prior's rate (about the expected noise variance), ``init_std`` the initial posterior std.
    A fit whose mean posterior std ends above ``max(DIVERGED_STD, noise_std)`` is redone with a new seed (at most
    ``MAX_RETRIES`` times, with half the step size; ``total`` grows when that happens). A fit that
    still ends with a wider posterior is returned with ``diverged=True``; one with non-finite
    values raises ``RuntimeError``.
    """
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(device)
    if preset.cold_start:
        return (yield from _fit_variational(yt, preset, priors, lam, beta0, noise, seed, init_state, posterior))
    guide = prior_estimates(yt, priors, preset.ensemble)
    total, done = preset.warm_iterations if init_state else preset.iterations, 0
    for retry in range(MAX_RETRIES + 1):
        # a retry starts cold, with a new seed and half the step size
        state = init_state if retry == 0 else None
        iterations = preset.warm_iterations if state else preset.iterations
        nets, terms = yield from _fit_once(yt, guide, preset, priors, lam, beta0, init_std, seed + 7919 * retry,
                                           0.5**retry, done, total, iterations, state)
        done += iterations
        nets.eval()
        denoised, noise_var, post_var, q_std = _outputs(nets, yt, guide, priors, preset, noise, seed, posterior)
        # ... unless the noise itself is that strong: the posterior is never wider than the likelihood
        limit = max(DIVERGED_STD, noise_std)
        diverged = bool(q_std.mean() > limit) or not bool(torch.isfinite(denoised).all())
        if not diverged or retry == MAX_RETRIES:
            break
        total += preset.iterations
    if not bool(torch.isfinite(denoised).all()):
        raise RuntimeError(
            f"the fit diverged {MAX_RETRIES + 1} times (non-finite output); try another preset or a fixed lam, "
            "and check the image for extreme outliers"
        )
    # the fit starts at the priors' estimates; ending far from the data means it smoothed structure away
    start = guide.mean(0)
    drift_ratio = float(((yt - denoised) ** 2).mean() / ((yt - start) ** 2).mean().clamp_min(1e-12))
    drifted = drift_ratio > DRIFT_LIMIT
    if drifted:  # the noise-variance map follows the image returned (the posterior std is the fit's)
        denoised, noise_var = start, noise_variance_map(start, noise.levels, yt)
    scale = torch.ones(yt.shape[0], 1, 1, device=yt.device)
    if posterior:  # where the priors err more than their own posterior says (docs/fidelity.md)
        scale = sure_scale(yt, denoised, noise_var, post_var)
        post_var = post_var * scale
    return FitOutput(
        denoised=denoised.float().cpu().numpy(),
        noise_variance=noise_var.float().cpu().numpy(),
        posterior_std=post_var.sqrt().float().cpu().numpy(),
        iterations=done,
        retries=retry,
        diverged=diverged,
        drift_ratio=drift_ratio,
        drifted=drifted,
        posterior_scale=tuple(float(v) for v in scale.flatten()),
        final_terms=terms,
        state={k: v.detach().clone() for k, v in nets.state_dict().items()},
    )


def _fit_variational(
    yt: torch.Tensor, preset: Preset, priors: list, lam: float, beta0: float, noise: NoiseModel, seed: int,
    init_state: dict | None, posterior: bool,
) -> Generator[FitStep, None, FitOutput]:
    """The published, cold-start fit (:mod:`.variational`): whole-image steps, the EMA of the
    posterior mean as the output, q's own posterior std; redone once with a new seed when the mean
    posterior std ends above :data:`DIVERGED_STD`, as the reference does."""
    total = preset.warm_iterations if init_state else preset.iterations
    done = 0
    for retry in range(2):
        state = init_state if retry == 0 else None
        iterations = preset.warm_iterations if state else preset.iterations
        nets, denoised, terms = yield from fit_cold(yt, preset, priors, lam, beta0, seed + 7919 * retry, done, total,
                                                    state)
        done += iterations
        with torch.no_grad():
            q_std = nets(yt[None]).posterior_std()[0]
        diverged = bool(q_std.mean() > DIVERGED_STD) or not bool(torch.isfinite(denoised).all())
        if not diverged or retry == 1:
            break
        total += preset.iterations
    if not bool(torch.isfinite(denoised).all()):
        raise RuntimeError("the fit diverged twice (non-finite output); try a fixed lam, and check the image for "
                           "extreme outliers")
    noise_var = noise_variance_map(denoised, noise.levels, yt)
    post_std = q_std if posterior else torch.full_like(q_std, float("nan"))
    return FitOutput(
        denoised=denoised.float().cpu().numpy(),
        noise_variance=noise_var.float().cpu().numpy(),
        posterior_std=post_std.float().cpu().numpy(),
        iterations=done,
        retries=retry,
        diverged=diverged,
        final_terms=terms,
        state={k: v.detach().clone() for k, v in nets.state_dict().items()},
    )
