"""The public entry point: ``denoise(image) -> DenoiseResult``.

Data flow: image in (:mod:`.image_in`) -> normalise (:mod:`.normalise`) -> noise estimate and prior
weight (:mod:`.noise_estimate`) -> variational fit with score priors (:mod:`.fit`) -> outputs back
in the input's units.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np
import torch

from . import __version__
from .devices import describe_device, resolve_device
from .fit import fit
from .host_memory import tune_allocator
from .image_in import as_channels_first
from .noise_estimate import estimate_noise, mean_noise_std, prior_weight
from .normalise import fit_normalisation
from .presets import Preset, get_preset
from .priors import load_priors
from .settings import check_lam

LAM0 = 0.5
#: a prior is used when its training noise range starts at or below the noise std (level function)
#: of the image's noisiest pixels, this quantile of them; the first prior is always used
NOISIEST = 0.99
BETA0_RANGE = (1e-4, 0.05)  # bounds of the Gamma prior rate (noise variance, model units)

ProgressCallback = Callable[[int, int], object]


class Cancelled(Exception):
    """Raise this from a ``progress`` callback to stop a fit; ``denoise`` re-raises it."""


@dataclass
class DenoiseResult:
    """Outputs of :func:`denoise`, all float32 with the input image's shape.

    denoised: posterior mean, in the input's intensity units.
    noise_variance: per-pixel noise variance (the image's noise level function at the denoised
    intensity), input units squared.
    posterior_std: per-pixel posterior standard deviation (Tweedie's second-order formula), input units.
    info: what ran (preset, iterations, lam, estimated noise std, device, seconds, ...).
    fit_state: the fitted networks' parameters; pass it as ``warm_start`` when denoising the next,
    similar image (the next slice of a stack) with the same preset and device.
    """

    denoised: np.ndarray
    noise_variance: np.ndarray
    posterior_std: np.ndarray
    info: dict = field(default_factory=dict)
    fit_state: dict = field(default_factory=dict, repr=False)


def denoise_steps(
    image,
    channel_axis: int | None = None,
    preset: str | Preset = "balanced",
    device: str | torch.device = "auto",
    seed: int = 0,
    lam: float | None = None,
    warm_start: dict | None = None,
    posterior_std: bool = True,
) -> Generator[tuple[int, int], None, DenoiseResult]:
    """The work of :func:`denoise` as a generator: yields ``(step, total)``, returns the result.

    Closing the generator (or stopping to iterate it) cancels the fit. The napari widget and the
    batch pipeline drive this same generator (through :mod:`.stack`). The first call tunes the
    process's memory allocator (:mod:`.host_memory`: flat peak memory over many slices, fewer page
    faults).
    """
    t0 = time.perf_counter()
    tune_allocator()
    arr = as_channels_first(image, channel_axis)  # float64 copy, (C, H, W)
    cfg = get_preset(preset)
    dev = resolve_device(device)
    lam = check_lam(lam)
    out_shape = np.shape(image)
    info: dict = {"version": __version__, "preset": cfg.name, "seed": seed, "device": describe_device(dev)}
    norm = fit_normalisation(arr)
    if norm is None:  # a constant image (e.g. a blank frame of a stack): nothing to remove
        info.update(iterations=0, skipped="constant image: returned unchanged", seconds=time.perf_counter() - t0)
        zeros = np.zeros(out_shape, np.float32)
        # the warm start passes through, so a blank frame does not break a stack's chain
        return DenoiseResult(np.asarray(image, dtype=np.float32).copy(), zeros, zeros.copy(), info,
                             warm_start or {})
    y = norm.to_model(arr)
    noise = estimate_noise(y)  # model units ([0, 1] range)
    noise_std = mean_noise_std(y, list(noise.levels))
    lam_used = prior_weight(noise_std * 255.0, LAM0) if lam is None else float(lam)
    beta0 = float(np.clip(noise_std**2, *BETA0_RANGE))
    # spatially correlated noise gets the priors trained on it (docs/priors.md)
    priors = load_priors(dev, correlated=noise.correlated)
    key = {"preset": cfg, "channels": int(y.shape[0]), "device": str(dev)}
    usable = bool(warm_start) and all(warm_start.get(k) == v for k, v in key.items())
    info["warm_start"] = usable  # a state made for another preset, channel count or device is ignored
    # a prior trained only on noise above that of the noisiest pixels smooths detail away
    # (docs/engine.md); the ranges ascend, so the priors kept are the first n. A warm-started
    # slice keeps the priors of its chain's head, whose networks it continues.
    noisiest = noise.std_quantile(y, NOISIEST)
    n = warm_start["components"] if usable else max(1, sum(p.noise_range[0] <= noisiest for p in priors))
    priors = priors[:n]
    key["components"] = n
    out = yield from fit(y, cfg, priors, lam_used, beta0, init_std=max(noise_std, 1e-3) / 2,
                          device=dev, noise=noise, seed=seed, noise_std=noise_std,
                          init_state=warm_start["nets"] if usable else None, posterior=posterior_std)
    denoised = norm.image_to_input(out.denoised)
    variance = norm.variance_to_input(out.noise_variance)
    std = norm.std_to_input(out.posterior_std)
    if channel_axis is None:
        denoised, variance, std = denoised[0], variance[0], std[0]
    else:
        denoised, variance, std = (np.moveaxis(a, 0, channel_axis) for a in (denoised, variance, std))
    info.update(
        iterations=out.iterations,
        retries=out.retries,
        diverged=out.diverged,
        drift_ratio=out.drift_ratio,
        drifted=out.drifted,
        lam=lam_used,
        lam_auto=lam is None,
        beta0=beta0,
        noise_std=float(noise_std * np.mean(norm.scale)),
        noise_std_8bit=float(noise_std * 255.0),
        # the noise level function in the input's units, per channel: the photon transfer of this
        # image (docs/fidelity.md), var = gain * I + intercept, I in input units
        photon_transfer=[{"gain": float(f.slope * sc), "intercept": float(sc * sc * f.intercept - f.slope * sc * off)}
                         for f, sc, off in zip(noise.levels, norm.scale, norm.offset)],
        noise_correlated=noise.correlated,
        noise_lag1=list(noise.lag1),
        # the training noise ranges (8-bit units of the model's [0, 1] range) of the priors used
        prior_ranges_8bit=[[round(v * 255.0, 1) for v in p.noise_range] for p in priors],
        normalisation={"offset": norm.offset.tolist(), "scale": norm.scale.tolist()},
        final_terms=out.final_terms,
        seconds=time.perf_counter() - t0,
    )
    return DenoiseResult(
        denoised.astype(np.float32), variance.astype(np.float32), std.astype(np.float32), info,
        dict(key, nets=out.state),
    )


def denoise(
    image,
    channel_axis: int | None = None,
    preset: str | Preset = "balanced",
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: ProgressCallback | None = None,
    lam: float | None = None,
    warm_start: dict | None = None,
    posterior_std: bool = True,
) -> DenoiseResult:
    """Denoise one 2D image (H, W), or a 2D image with a channel axis (RGB or multichannel).

    image: any integer or float dtype; never modified. channel_axis: the channel axis of a 3D
    image, or None. preset: ``"fast"``, ``"balanced"`` or ``"best"``. device: ``"auto"`` (CUDA,
    then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"mps"``. seed: same seed and device give the same
    result. progress: called as ``progress(step, total)`` after each iteration; raising from it
    (e.g. :class:`Cancelled`) stops the fit and propagates. lam: prior weight; None picks it from
    the estimated noise level. warm_start: ``fit_state`` of an earlier result for a similar image
    (e.g. the previous slice): the fit starts from those networks and runs fewer steps.
    posterior_std: False skips the posterior std (2 x K prior passes); it is then all NaN.
    """
    steps = denoise_steps(image, channel_axis, preset, device, seed, lam, warm_start, posterior_std)
    try:
        while True:
            step, total = next(steps)
            if progress is not None:
                progress(step, total)
    except StopIteration as stop:
        return stop.value
    finally:
        steps.close()
