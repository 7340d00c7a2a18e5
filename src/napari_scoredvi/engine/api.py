"""The public entry point: ``denoise(image) -> DenoiseResult``.

Data flow: image in (:mod:`.validate`) -> normalise (:mod:`.normalise`) -> noise estimate and prior
weight (:mod:`.noise_estimate`) -> variational fit with score priors (:mod:`.fit`) -> outputs back
in the input's units (:mod:`.result`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import TypeVar

import numpy as np
import torch

from .._version import __version__
from .devices import describe_device, resolve_device
from .fit import fit
from .host_memory import tune_allocator
from .noise_estimate import NoiseModel, estimate_noise, mean_noise_std, prior_weight
from .normalise import fit_normalisation
from .presets import Preset
from .priors import load_priors
from .result import Cancelled, DenoiseInfo, DenoiseResult, FitStep, PhotonTransfer, WarmStart
from .settings import DenoiseSettings
from .uncertainty import noise_variance_map, sure_scale
from .validate import as_channels_first
from .vst import Stabiliser

__all__ = ["Cancelled", "DenoiseResult", "denoise", "denoise_steps", "finish"]

LAM0 = 0.5
#: a prior is used when its training noise range starts at or below the noise std (level function)
#: of the image's noisiest pixels, this quantile of them; the first prior is always used
NOISIEST = 0.99
BETA0_RANGE = (1e-4, 0.05)  # bounds of the Gamma prior rate (noise variance, model units)

ProgressCallback = Callable[[int, int], object]
Event = TypeVar("Event")
Outcome = TypeVar("Outcome")


def finish(steps: Generator[Event, None, Outcome], on_event: Callable[[Event], object] | None = None) -> Outcome:
    """Run a generator such as :func:`denoise_steps` to its end and return its return value (the
    result), calling ``on_event`` with each event it yields. ``steps`` is closed even when
    ``on_event`` raises (e.g. :class:`Cancelled`), which propagates."""
    try:
        while True:
            event = next(steps)
            if on_event is not None:
                on_event(event)
    except StopIteration as stop:
        return stop.value
    finally:
        steps.close()


def choose_prior_set(requested: str, correlated: bool, rgb: bool) -> str:
    """The prior set a fit uses (a key of :data:`.priors.PRIOR_FILES`). ``requested`` is
    :attr:`DenoiseSettings.priors`. ``auto``: the grey priors trained for spatially correlated noise
    when ``correlated`` (measured), also on RGB, where they beat the colour priors on camera sRGB
    (docs/priors.md); else the colour priors for an RGB image and the independent-noise ones for
    anything else. ``independent`` or ``correlated`` forces that grey set, channel by channel, also on
    RGB; ``colour`` forces the colour priors, for an RGB image only (ValueError otherwise)."""
    if requested == "colour" and not rgb:
        raise ValueError("priors='colour' needs an RGB image: pass rgb=True with a 3-entry channel_axis, "
                         "or pick 'auto', 'independent' or 'correlated'")
    if requested != "auto":
        return requested
    if correlated:
        return "correlated"
    return "colour" if rgb else "independent"


def denoise_steps(
    image,
    settings: DenoiseSettings | None = None,
    channel_axis: int | None = None,
    warm_start: WarmStart | None = None,
    posterior_std: bool = True,
    noise_model: NoiseModel | None = None,
    rgb: bool = False,
) -> Generator[FitStep, None, DenoiseResult]:
    """The work of :func:`denoise` as a generator: yields a :class:`FitStep` after each Adam step,
    returns the :class:`DenoiseResult`.

    settings: preset, device, seed (this image's), prior weight and prior set (default:
    ``DenoiseSettings()``). warm_start: the ``warm_start`` of an earlier result for a similar image
    (ignored unless made with the same preset, channel count and device). noise_model: a known
    noise model of the image in model units (e.g. a calibration), instead of the estimate. rgb: the
    channel axis holds the R, G, B of a colour image (see :func:`choose_prior_set`). Closing the
    generator (or stopping to iterate it) cancels the fit. The first call tunes the process's memory
    allocator (:mod:`.host_memory`: flat peak memory over many slices).
    """
    t0 = time.perf_counter()
    tune_allocator()
    settings = settings or DenoiseSettings()
    arr = as_channels_first(image, channel_axis, rgb)  # float64 copy, (C, H, W)
    cfg = settings.preset
    dev = resolve_device(settings.device)
    lam = settings.lam
    out_shape = np.shape(image)
    about = {"version": __version__, "preset": cfg.name, "seed": settings.seed, "device": describe_device(dev)}
    norm = fit_normalisation(arr)
    if norm is None:  # a constant image (e.g. a blank frame of a stack): nothing to remove
        info = DenoiseInfo(**about, skipped="constant image: returned unchanged", seconds=time.perf_counter() - t0)
        zeros = np.zeros(out_shape, np.float32)
        # the warm start passes through, so a blank frame does not break a stack's chain
        return DenoiseResult(np.asarray(image, dtype=np.float32).copy(), zeros, zeros.copy(), info, warm_start)
    y = norm.to_model(arr)
    noise = noise_model or estimate_noise(y)  # model units ([0, 1] range)
    noise_std = mean_noise_std(y, list(noise.levels))
    # the image the priors see: its variance-stabilised transform where the preset asks (.vst)
    stabiliser = Stabiliser.for_image(y, noise.levels) if cfg.stabilise and not noise.correlated else None
    y_fit = stabiliser.forward(y) if stabiliser else y
    noise_fit = stabiliser.noise_model(noise.correlation) if stabiliser else noise
    std_fit = mean_noise_std(y_fit, list(noise_fit.levels)) if stabiliser else noise_std
    lam_used = prior_weight(std_fit * 255.0, LAM0) if lam is None else float(lam)
    beta0 = float(np.clip(std_fit**2, *BETA0_RANGE))
    prior_set = choose_prior_set(settings.priors, noise.correlated, rgb)
    priors = load_priors(dev, prior_set)
    usable = warm_start is not None and warm_start.fits(cfg, int(y.shape[0]), str(dev), prior_set)
    # a prior trained only on noise above that of the noisiest pixels smooths detail away
    # (docs/engine.md); the ranges ascend, so the priors kept are the first n. A warm-started
    # slice keeps the priors of its chain's head, whose networks it continues.
    noisiest = noise_fit.std_quantile(y_fit, NOISIEST)
    if usable:
        n = warm_start.components
    elif cfg.cold_start:  # the published method: all K priors, the fit's responsibilities choose
        n = len(priors)
    else:
        n = max(1, sum(p.noise_range[0] <= noisiest for p in priors))
    priors = priors[:n]
    out = yield from fit(y_fit, cfg, priors, lam_used, beta0, init_std=max(std_fit, 1e-3) / 2,
                         device=dev, noise=noise_fit, seed=settings.seed, noise_std=std_fit,
                         init_state=warm_start.nets if usable else None, posterior=posterior_std)
    posterior_scale = out.posterior_scale
    if stabiliser:  # back to model units; the noise variance from the image's own level functions
        model_denoised = stabiliser.inverse(out.denoised)
        model_variance = noise_variance_map(torch.from_numpy(model_denoised), noise.levels,
                                            torch.from_numpy(y)).numpy()
        # the posterior std without the fit's calibration in the transformed domain, carried back ...
        unscaled = out.posterior_std / np.sqrt(np.asarray(out.posterior_scale or 1.0, np.float32))[:, None, None]
        model_std = stabiliser.std_to_model(unscaled, out.denoised)
        if posterior_std:  # ... and calibrated here, in the image's own units (docs/fidelity.md)
            scale = sure_scale(torch.from_numpy(y), torch.from_numpy(model_denoised),
                               torch.from_numpy(model_variance), torch.from_numpy(model_std**2)).numpy()
            model_std = model_std * np.sqrt(scale)
            posterior_scale = tuple(float(v) for v in scale.flatten())
    else:
        model_denoised, model_variance, model_std = out.denoised, out.noise_variance, out.posterior_std
    denoised = norm.image_to_input(model_denoised)
    variance = norm.variance_to_input(model_variance)
    std = norm.std_to_input(model_std)
    if channel_axis is None:
        denoised, variance, std = denoised[0], variance[0], std[0]
    else:
        denoised, variance, std = (np.moveaxis(a, 0, channel_axis) for a in (denoised, variance, std))
    info = DenoiseInfo(
        **about,
        iterations=out.iterations,
        warm_start=usable,  # a state made for another preset, channel count, device or prior set is ignored
        retries=out.retries,
        diverged=out.diverged,
        drift_ratio=out.drift_ratio,
        drifted=out.drifted,
        posterior_scale=posterior_scale,
        lam=lam_used,
        lam_auto=lam is None,
        beta0=beta0,
        noise_std=float(noise_std * np.mean(norm.scale)),
        noise_std_8bit=float(noise_std * 255.0),
        # the noise level function in the input's units, per channel (I in input units)
        photon_transfer=tuple(PhotonTransfer(float(f.slope * sc), float(sc * sc * f.intercept - f.slope * sc * off))
                              for f, sc, off in zip(noise.levels, norm.scale, norm.offset)),
        noise_correlated=noise.correlated,
        noise_lag1=tuple(float(v) for v in noise.lag1),
        prior_set=prior_set,
        stabilised=stabiliser is not None,
        prior_ranges_8bit=tuple(tuple(round(v * 255.0, 1) for v in p.noise_range) for p in priors),
        normalisation_offset=tuple(float(v) for v in norm.offset),
        normalisation_scale=tuple(float(v) for v in norm.scale),
        final_terms=out.final_terms,
        seconds=time.perf_counter() - t0,
    )
    state = WarmStart(cfg, int(y.shape[0]), str(dev), prior_set, n, out.state)
    return DenoiseResult(denoised.astype(np.float32), variance.astype(np.float32), std.astype(np.float32), info,
                         state)


def denoise(
    image,
    channel_axis: int | None = None,
    preset: str | Preset = "balanced",
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: ProgressCallback | None = None,
    lam: float | None = None,
    warm_start: WarmStart | None = None,
    posterior_std: bool = True,
    rgb: bool = False,
) -> DenoiseResult:
    """Denoise one 2D image (H, W), or a 2D image with a channel axis (RGB or multichannel).

    image: any integer or float dtype; never modified. channel_axis: the channel axis of a 3D
    image, or None. preset: ``"fast"``, ``"balanced"`` (the prior
    ensemble) or ``"variational"`` (ScoreDVI's variational fit, minutes). device: ``"auto"`` (CUDA,
    then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"mps"``. seed: same seed and device give the same
    result. progress: called as ``progress(step, total)`` after each iteration; raising from it
    (e.g. :class:`Cancelled`) stops the fit and propagates. lam: prior weight; None picks it from
    the estimated noise level. warm_start: the ``warm_start`` of an earlier result for a similar image
    (e.g. the previous slice): the fit starts from those networks and runs fewer steps.
    posterior_std: False skips the posterior std (2 x K prior passes); it is then all NaN. rgb: the
    channel axis (3 entries) holds R, G, B: where the noise is pixel-independent the colour priors
    denoise them together (:func:`choose_prior_set`); otherwise every channel goes through the grey
    priors on its own.
    """
    settings = DenoiseSettings(preset, str(device), seed, lam)
    steps = denoise_steps(image, settings, channel_axis, warm_start, posterior_std, rgb=rgb)
    return finish(steps, None if progress is None else lambda event: progress(event.step, event.total))
