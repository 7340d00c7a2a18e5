"""The prior ensemble (the ``fast`` and ``balanced`` presets): ScoreDVI's score priors used as an ensemble
of denoisers, without a fit.

For an image ``y`` (model units) with pixel-independent noise, the priors see its variance-stabilising
transform (:mod:`.vst`); spatially correlated noise goes to its own priors untransformed. Then, on
tiles of at most :data:`~.tiling.TILE` pixels (:mod:`.tiling`):

1. the K prior denoisers' estimates ``D_k(y)``, each averaged over ``preset.ensemble`` flips/rotations
   (:func:`~.priors.self_ensemble`); only the priors whose training noise range starts at or below the
   noise of the image's noisiest pixels are used (a prior trained on heavier noise smooths detail away);
2. the estimates mixed with equal weights and, with ``preset.final_pass``, each denoised once more by its
   own prior: ``sum_k D_k(D_k(y)) / K``;
3. the noise variance (the noise level functions) and Tweedie's posterior variance of the prior mixture
   at ``y`` (:mod:`.uncertainty`), calibrated by Stein's unbiased risk estimate (:func:`~.uncertainty.sure_scale`).

With a stack's neighbouring slices as context (:mod:`.context`), the stabilised slice is first fused
with its stabilised neighbours where they agree with it; steps 1-3 then run on the fused slice, whose
noise variance is the per-pixel share ``factor`` of one frame's (in Tweedie's variance and the risk
estimate's calibration, made in the stabilised domain for it); the noise-variance map stays the
slice's own noise level function.

An output whose residual ``y - denoised`` has more than :data:`DRIFT_LIMIT` times the mean square of
that of the plain mixture ``sum_k D_k(y) / K`` removed image structure, not noise: the mixture is
returned instead. Every prior pass (one prior, one view, one tile) yields a :class:`~.result.WorkStep`:
the work can report progress and be stopped between passes.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch

from .context import fuse
from .noise_estimate import NoiseModel
from .presets import EnsemblePreset
from .priors import self_ensemble
from .result import WorkStep
from .tiling import tile_count, tiled
from .uncertainty import PROBES, noise_variance_map, sure_scale, tweedie_posterior_variance
from .vst import Stabiliser

#: a prior is used when its training noise range starts at or below the noise std (level function)
#: of the image's noisiest pixels, this quantile of them; the first prior is always used
NOISIEST = 0.99
#: an output whose mean squared residual exceeds this times that of the plain mixture of the priors'
#: estimates has removed image structure, not noise: the mixture is returned instead
DRIFT_LIMIT = 2.0
UNIT = "prior pass"


@dataclass(frozen=True)
class EnsembleOutput:
    """Outputs in model units, each (C, H, W) float32, and what was done.

    components: the priors used (the first ``components`` of the set). stabilised: the priors
    denoised the variance-stabilised image. drift_ratio: mean squared residual of the output over
    that of the plain mixture; drifted: it exceeded :data:`DRIFT_LIMIT` (the mixture was returned).
    agreement: with neighbours, the mean weight of their pixels in the fused slice. posterior_scale:
    per channel, the factor the posterior variance was scaled by (:func:`~.uncertainty.sure_scale`).
    """

    denoised: np.ndarray
    noise_variance: np.ndarray
    posterior_std: np.ndarray
    components: int
    stabilised: bool
    drift_ratio: float
    drifted: bool
    posterior_scale: tuple[float, ...]
    #: the mean weight of a neighbour's pixel in the fused slice (0: no neighbour; 1: all agree)
    agreement: float = 0.0


def prior_passes(preset: EnsemblePreset, components: int, size: tuple[int, int], posterior: bool = True) -> int:
    """The prior passes :func:`denoise_ensemble` makes for an image of ``size`` (H, W) with ``components``
    priors: its progress total."""
    views = components * preset.ensemble
    per_tile = views * (2 if preset.final_pass else 1)  # the guide tiles, then the output tiles
    if posterior:
        per_tile += (components if preset.ensemble > 1 else 0) + PROBES * components
    return tile_count(size) * per_tile


def denoise_ensemble(
    y: np.ndarray, preset: EnsemblePreset, priors: list, noise: NoiseModel, device: torch.device, seed: int,
    posterior: bool = True, neighbours: list[np.ndarray | None] | None = None,
) -> Generator[WorkStep, None, EnsembleOutput]:
    """Denoise ``y`` ((C, H, W) float, model units) with the prior ensemble; ``noise``: its noise model
    (model units). ``posterior=False`` skips the posterior std (all NaN; saves ``(PROBES + 1) x K`` passes
    per tile). ``neighbours``: the slice's neighbours in a stack ((C, H, W), model units, registered to
    it; None where missing), fused with it where they agree (pixel-independent noise only: they need
    the variance-stabilised domain). Yields a :class:`~.result.WorkStep` after each prior pass;
    closing the generator stops the work there."""
    stabiliser = Stabiliser.for_image(y, noise.levels) if preset.stabilise and not noise.correlated else None
    y_fit = stabiliser.forward(y) if stabiliser else y
    noise_fit = stabiliser.noise_model(noise.correlation) if stabiliser else noise
    noisiest = noise_fit.std_quantile(y_fit, NOISIEST)
    factor, agreement = None, 0.0  # the fused slice's noise variance, a share of one frame's (C, H, W)
    if stabiliser is not None and neighbours and any(n is not None for n in neighbours):
        moved = [None if n is None else stabiliser.forward(n) for n in neighbours]
        y_fit, factor, agreement = fuse(y_fit, moved, 1.0 / stabiliser.span)
        noisiest = float(np.quantile(np.sqrt(factor), NOISIEST)) / stabiliser.span
    priors = priors[: max(1, sum(p.noise_range[0] <= noisiest for p in priors))]  # the ranges ascend
    k = len(priors)
    yt = torch.from_numpy(np.ascontiguousarray(y_fit, dtype=np.float32)).to(device)
    share = None if factor is None else torch.from_numpy(factor).to(device)
    size = tuple(yt.shape[-2:])
    total, done = prior_passes(preset, k, size, posterior), 0

    def passes(work: Generator[None, None, torch.Tensor]) -> Generator[WorkStep, None, torch.Tensor]:
        nonlocal done
        try:
            while True:
                next(work)
                done += 1
                yield WorkStep(done, total, UNIT)
        except StopIteration as stop:
            return stop.value

    def guide_tile(rows: slice, cols: slice) -> Generator[WorkStep, None, torch.Tensor]:
        views = []
        for prior in priors:
            views.append((yield from passes(self_ensemble(prior, yt[None, :, rows, cols], preset.ensemble)))[0])
        return torch.stack(views)

    guide = yield from tiled(guide_tile, (k, yt.shape[0]), size, device)  # (K, C, H, W): D_k(y)
    weight = torch.full((k, 1, 1, 1), 1.0 / k, dtype=torch.float32, device=device)
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    levels, lag1 = noise_fit.levels, noise_fit.lag1

    def mixture(v: torch.Tensor) -> Generator[None, None, torch.Tensor]:
        out = 0
        for j, prior in enumerate(priors):
            out = out + weight[j] * prior(v)
            yield
        return out

    def output_tile(rows: slice, cols: slice) -> Generator[WorkStep, None, torch.Tensor]:
        y_t, guide_t = yt[:, rows, cols], guide[..., rows, cols]

        if preset.final_pass:
            den = 0
            for j, prior in enumerate(priors):
                den = den + weight[j] * (yield from passes(self_ensemble(prior, guide_t[j][None], preset.ensemble)))[0]
        else:
            den = (weight * guide_t).sum(0)
        noise_var = noise_variance_map(den, levels, y_t)
        if share is not None:  # the fused slice's own noise
            noise_var = noise_var * share[:, rows, cols]
        if posterior:
            # the guide is D_k(y) already when it is not a self-ensemble average
            base = (weight * guide_t).sum(0) if preset.ensemble == 1 else (yield from passes(mixture(y_t[None])))[0]
            post_var = yield from passes(tweedie_posterior_variance(mixture, y_t, base, noise_var, gen, lag1=lag1))
        else:
            post_var = torch.full_like(noise_var, float("nan"))
        return torch.stack([den, noise_var, post_var])

    denoised, noise_var, post_var = yield from tiled(output_tile, (3, yt.shape[0]), size, device)
    mixed = guide.mean(0)
    drift_ratio = float(((yt - denoised) ** 2).mean() / ((yt - mixed) ** 2).mean().clamp_min(1e-12))
    drifted = drift_ratio > DRIFT_LIMIT
    if drifted:
        denoised, noise_var = mixed, noise_variance_map(mixed, levels, yt) * (1 if share is None else share)
    if stabiliser is None:
        scale = sure_scale(yt, denoised, noise_var, post_var) if posterior else torch.ones(yt.shape[0], 1, 1)
        return EnsembleOutput(_numpy(denoised), _numpy(noise_var), _numpy((post_var * scale.to(device)).sqrt()), k,
                              False, drift_ratio, drifted, _floats(scale))
    if share is not None:
        # the fused slice: its risk estimate in the stabilised domain, where it was denoised (in model
        # units its input is no single frame); the posterior std then goes through the inverse transform
        scale = sure_scale(yt, denoised, noise_var, post_var) if posterior else torch.ones(yt.shape[0], 1, 1)
        post_std = _numpy((post_var * scale.to(device)).sqrt())
        model_denoised = stabiliser.inverse(_numpy(denoised))
        model_variance = noise_variance_map(torch.from_numpy(model_denoised), noise.levels, torch.from_numpy(y))
        model_std = stabiliser.std_to_model(post_std, _numpy(denoised))
        return EnsembleOutput(model_denoised, model_variance.numpy(), model_std, k, True, drift_ratio, drifted,
                              _floats(scale), agreement)
    # back to model units: the noise variance from the image's own level functions, the posterior std
    # carried through the inverse transform and calibrated there, in the image's units
    # (docs/explanation/noise-and-uncertainty.md)
    model_denoised = stabiliser.inverse(_numpy(denoised))
    y64 = torch.from_numpy(y)
    model_variance = noise_variance_map(torch.from_numpy(model_denoised), noise.levels, y64).numpy()
    model_std = stabiliser.std_to_model(_numpy(post_var.sqrt()), _numpy(denoised))
    scale = torch.ones(y.shape[0], 1, 1)
    if posterior:
        scale = sure_scale(y64, torch.from_numpy(model_denoised), torch.from_numpy(model_variance),
                           torch.from_numpy(model_std**2))
        model_std = model_std * np.sqrt(scale.numpy())
    return EnsembleOutput(model_denoised, model_variance, model_std, k, True, drift_ratio, drifted, _floats(scale))


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.float().cpu().numpy()


def _floats(scale: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in scale.flatten())
