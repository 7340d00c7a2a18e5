"""The public entry point: ``denoise(image) -> DenoiseResult``.

Data flow: image in (:mod:`.validate`) -> normalise (:mod:`.normalise`) -> noise estimate
(:mod:`.noise_estimate`) -> the preset's method, chosen by its kind here and only here: the prior
ensemble (:mod:`.ensemble`) or the variational fit (:mod:`.variational`) -> outputs back in the
input's units.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from typing import TypeVar

import numpy as np
import torch

from .._version import __version__
from .context import offsets, register
from .devices import describe_device, resolve_device
from .ensemble import denoise_ensemble
from .host_memory import tune_allocator
from .noise_estimate import NoiseModel, estimate_noise, mean_noise_std
from .normalise import fit_normalisation
from .presets import DEFAULT_PRESET, Preset
from .priors import load_priors
from .result import Cancelled, DenoiseInfo, DenoiseResult, PhotonTransfer, WarmStart, WorkStep
from .settings import DEFAULT_CONTEXT, DenoiseSettings
from .validate import as_channels_first
from .variational import denoise_variational

__all__ = ["Cancelled", "DenoiseResult", "denoise", "denoise_steps", "finish"]

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
    (docs/explanation/priors.md); else the colour priors for an RGB image and the independent-noise ones for
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
    neighbours: Sequence | None = None,
) -> Generator[WorkStep, None, DenoiseResult]:
    """The work of :func:`denoise` as a generator: yields a :class:`WorkStep` after each prior pass (the
    prior ensemble) or Adam step (the variational fit), returns the :class:`DenoiseResult`.

    settings: preset, device, seed (this image's), prior weight and prior set (default:
    ``DenoiseSettings()``). warm_start (the variational preset): the ``warm_start`` of an earlier
    result for a similar image (ignored unless made with the same preset, channel count, device and
    prior set). noise_model: a known noise model of the image in model units (e.g. a calibration),
    instead of the estimate. rgb: the channel axis holds the R, G, B of a colour image (see
    :func:`choose_prior_set`). neighbours: the image's neighbouring slices in its stack, like it
    (same shape and channel axis), in :func:`.context.offsets` order after it (-1, +1, -2, +2, ...),
    None where the stack has none; the first ``2 * settings.context`` are fused with the image where
    they agree with it (:mod:`.context`; the prior ensemble with pixel-independent noise only:
    otherwise ignored, and ``info.context`` is 0). Closing the generator (or stopping to iterate it)
    stops the work. The first call tunes the process's memory allocator (:mod:`.host_memory`: fewer
    page faults, flat peak memory over many slices).
    """
    t0 = time.perf_counter()
    tune_allocator()
    settings = settings or DenoiseSettings()
    arr = as_channels_first(image, channel_axis, rgb)  # float64 copy, (C, H, W)
    cfg = settings.preset
    dev = resolve_device(settings.device)
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
    prior_set = choose_prior_set(settings.priors, noise.correlated, rgb)
    priors = load_priors(dev, prior_set)
    state = None
    if cfg.kind == "ensemble":
        window, shifts = _window(neighbours, settings, prior_set, norm, channel_axis, rgb, y, out_shape)
        out = yield from denoise_ensemble(y, cfg, priors, noise, dev, settings.seed, posterior_std, window)
        priors = priors[: out.components]
        used = max((abs(o) for o, n in zip(offsets(settings.context)[1:], window) if n is not None), default=0)
        used = used if out.stabilised else 0  # correlated noise: no stabilised domain to fuse in
        method = {"stabilised": out.stabilised, "drift_ratio": out.drift_ratio, "drifted": out.drifted,
                  "posterior_scale": out.posterior_scale, "context": used, "context_shifts": shifts if used else (),
                  "context_weight": round(out.agreement, 4) if used else 0.0}
    else:
        usable = warm_start is not None and warm_start.fits(cfg, int(y.shape[0]), str(dev), prior_set)
        out = yield from denoise_variational(y, cfg, priors, noise, dev, settings.seed, settings.lam,
                                             warm_start.nets if usable else None, posterior_std)
        state = WarmStart(cfg, int(y.shape[0]), str(dev), prior_set, out.state)
        # a state made for another preset, channel count, device or prior set is ignored
        method = {"iterations": out.iterations, "warm_start": usable, "retries": out.retries,
                  "diverged": out.diverged, "lam": out.lam, "lam_auto": settings.lam is None, "beta0": out.beta0,
                  "final_terms": out.final_terms}
    denoised = norm.image_to_input(out.denoised)
    variance = norm.variance_to_input(out.noise_variance)
    std = norm.std_to_input(out.posterior_std)
    if channel_axis is None:
        denoised, variance, std = denoised[0], variance[0], std[0]
    else:
        denoised, variance, std = (np.moveaxis(a, 0, channel_axis) for a in (denoised, variance, std))
    info = DenoiseInfo(
        **about,
        **method,
        noise_std=float(noise_std * np.mean(norm.scale)),
        noise_std_8bit=float(noise_std * 255.0),
        # the noise level function in the input's units, per channel (I in input units)
        photon_transfer=tuple(PhotonTransfer(float(f.slope * sc), float(sc * sc * f.intercept - f.slope * sc * off))
                              for f, sc, off in zip(noise.levels, norm.scale, norm.offset)),
        noise_correlated=noise.correlated,
        noise_lag1=tuple(float(v) for v in noise.lag1),
        prior_set=prior_set,
        prior_ranges_8bit=tuple(tuple(round(v * 255.0, 1) for v in p.noise_range) for p in priors),
        normalisation_offset=tuple(float(v) for v in norm.offset),
        normalisation_scale=tuple(float(v) for v in norm.scale),
        seconds=time.perf_counter() - t0,
    )
    return DenoiseResult(denoised.astype(np.float32), variance.astype(np.float32), std.astype(np.float32), info,
                         state)


def _window(neighbours, settings: DenoiseSettings, prior_set: str, norm, channel_axis, rgb: bool, y: np.ndarray,
            shape: tuple[int, ...]):
    """The neighbours fused with the slice ``y`` (model units): each in model units by the slice's
    normalisation and registered to it (:func:`.context.register`), None where missing; and their
    shifts. Empty where no context applies (settings, prior set, no neighbour)."""
    wanted = list(neighbours or [])[: 2 * settings.context]
    if prior_set != "independent" or not any(n is not None for n in wanted):
        return [], ()
    window, shifts = [], []
    for n in wanted:
        if n is None:
            window.append(None)
            continue
        if np.shape(n) != tuple(shape):
            raise ValueError(f"a neighbouring slice has shape {np.shape(n)}, the slice {tuple(shape)}: the slices of "
                             "a stack must all have the same shape")
        try:
            plane = as_channels_first(n, channel_axis, rgb)
        except (ValueError, TypeError):  # a bad neighbour (NaN, ...) is no context; it fails on its own turn
            window.append(None)
            continue
        moved, shift = register(norm.to_model(plane), y)
        window.append(moved)
        shifts.append(shift)
    return window, tuple(shifts)


def denoise(
    image,
    channel_axis: int | None = None,
    preset: str | Preset = DEFAULT_PRESET,
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: ProgressCallback | None = None,
    lam: float | None = None,
    warm_start: WarmStart | None = None,
    posterior_std: bool = True,
    rgb: bool = False,
    neighbours: Sequence | None = None,
    context: int = DEFAULT_CONTEXT,
) -> DenoiseResult:
    """Denoise one 2D image (H, W), or a 2D image with a channel axis (RGB or multichannel).

    image: any integer or float dtype; never modified. channel_axis: the channel axis of a 3D
    image, or None. preset: ``"fast"`` (the default), ``"balanced"`` (the prior ensemble) or
    ``"variational"`` (ScoreDVI's variational fit, minutes). device: ``"auto"`` (CUDA, then MPS, then
    CPU), ``"cpu"``, ``"cuda"``, ``"mps"``. seed: same seed and device give the same result.
    progress: called as ``progress(step, total)`` after each prior pass or fit step; raising from it
    (e.g. :class:`Cancelled`) stops the work and propagates. lam (the variational preset): prior
    weight; None picks it from the estimated noise level. warm_start (the variational preset): the
    ``warm_start`` of an earlier result for a similar image (e.g. the previous slice): the fit starts
    from those networks and runs fewer steps. posterior_std: False skips the posterior std (the prior
    ensemble: 3 x K prior passes per tile); it is then all NaN. rgb: the
    channel axis (3 entries) holds R, G, B: where the noise is pixel-independent the colour priors
    denoise them together (:func:`choose_prior_set`); otherwise every channel goes through the grey
    priors on its own. neighbours: the image's neighbouring slices in its stack (like it; in the order
    -1, +1, -2, +2, ...; None where there is none), of which ``context`` on each side are read with it
    (:func:`denoise_steps`).
    """
    settings = DenoiseSettings(preset, str(device), seed, lam, context=context)
    steps = denoise_steps(image, settings, channel_axis, warm_start, posterior_std, rgb=rgb, neighbours=neighbours)
    return finish(steps, None if progress is None else lambda event: progress(event.step, event.total))
