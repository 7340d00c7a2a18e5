"""What the engine hands back: the result of one image, what ran (typed), the state that warm-starts
the next image (the variational preset), and the progress it reports while it works."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .presets import Preset, VariationalPreset


class Cancelled(Exception):
    """Raise this from a ``progress`` callback to stop the work; ``denoise`` re-raises it."""


@dataclass(frozen=True)
class WorkStep:
    """Progress of one image: ``step`` of its ``total`` units of work are done. ``unit`` says what they
    are: ``"prior pass"`` (the prior ensemble: one prior network on one view of one tile) or
    ``"fit step"`` (the variational fit: one Adam step; ``total`` grows when a diverged fit is redone)."""

    step: int
    total: int
    unit: str


@dataclass(frozen=True)
class PhotonTransfer:
    """The noise level function of one channel in the input's units: ``variance = gain * I + intercept``
    (ADU^2 for an intensity ``I`` in ADU), the image's photon transfer (docs/explanation/noise-and-uncertainty.md)."""

    gain: float
    intercept: float


@dataclass(frozen=True)
class DenoiseInfo:
    """What :func:`~napari_scoredvi.engine.api.denoise` did to one image (JSON-ready with :meth:`as_dict`).

    Intensities are in the input's units unless the name says ``8bit`` (the model's [0, 1] range x 255).
    A constant image is returned unchanged: ``skipped`` says so and the method's fields keep their defaults.
    The fields of the method that did not run keep their defaults.
    """

    version: str
    preset: str
    seed: int
    device: str
    seconds: float = 0.0
    skipped: str | None = None
    noise_std: float | None = None
    noise_std_8bit: float | None = None
    photon_transfer: tuple[PhotonTransfer, ...] = ()
    noise_correlated: bool = False
    #: lag-1 correlation of the noise along y and x, the mean over channels; (0, 0) when the noise was
    #: found pixel-independent. The noise-variance map is each pixel's own variance whatever this is; the
    #: mean of n pixels has about ``noise_estimate.region_variance_factor(*noise_lag1)`` times var / n
    noise_lag1: tuple[float, float] = (0.0, 0.0)
    #: the prior set used: ``independent``, ``correlated`` (grey, channel by channel) or ``colour`` (RGB)
    prior_set: str = ""
    #: the training noise ranges (8-bit units) of the prior denoisers used
    prior_ranges_8bit: tuple[tuple[float, float], ...] = ()
    #: per channel: model value = (input - offset) / scale
    normalisation_offset: tuple[float, ...] = ()
    normalisation_scale: tuple[float, ...] = ()
    # -- the prior ensemble (fast, balanced) --
    #: the priors denoised the image's variance-stabilising transform (:mod:`.vst`), not the image
    stabilised: bool = False
    #: mean squared residual of the output over that of the plain mixture of the priors' estimates;
    #: above :data:`.ensemble.DRIFT_LIMIT` the output "drifted" and the mixture was returned
    drift_ratio: float = 1.0
    drifted: bool = False
    #: per channel, the factor (0.5-4) by which the posterior variance was scaled to the denoised image's
    #: error as Stein's unbiased risk estimate reads it
    posterior_scale: tuple[float, ...] = ()
    #: neighbouring slices on each side fused with the slice (0: the slice on its own;
    #: fewer than asked at the ends of a stack), and the whole-pixel shift (dy, dx) each neighbour was
    #: registered by, in :func:`.context.offsets` order after the slice
    context: int = 0
    context_shifts: tuple[tuple[int, int], ...] = ()
    #: the mean weight of the neighbours' pixels in the fused slice (0 to 1; about 0.88 where all agree)
    context_weight: float = 0.0
    # -- the variational fit --
    #: Adam steps run (0 for the prior ensemble)
    iterations: int = 0
    #: the fit continued the networks of a warm-start state (the previous slice of a stack)
    warm_start: bool = False
    retries: int = 0
    diverged: bool = False
    #: the prior weight and whether it was chosen from the noise level (None for the prior ensemble)
    lam: float | None = None
    lam_auto: bool = True
    #: the Gamma prior's rate (noise variance, model units)
    beta0: float | None = None
    #: the objective's terms at the last step
    final_terms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain JSON-ready values (lists for tuples)."""
        return _plain(asdict(self))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class WarmStart:
    """The fitted networks of one image (the variational preset), to start the fit of the next, similar
    image (the next slice of a stack). Used only for the same preset, channel count, device and prior
    set (networks fitted with one set's scores are no start for another's)."""

    preset: VariationalPreset
    channels: int
    device: str
    prior_set: str
    nets: dict[str, torch.Tensor] = field(repr=False)

    def fits(self, preset: Preset, channels: int, device: str, prior_set: str) -> bool:
        """Whether this state can start a fit with these settings."""
        return (self.preset, self.channels, self.device, self.prior_set) == (preset, channels, device, prior_set)


@dataclass
class DenoiseResult:
    """Outputs of :func:`~napari_scoredvi.engine.api.denoise`, all float32 with the input image's shape.

    denoised: posterior mean, in the input's intensity units.
    noise_variance: per-pixel noise variance (the image's noise level function at the denoised
    intensity), input units squared.
    posterior_std: per-pixel posterior standard deviation, input units (the prior ensemble: Tweedie's
    second-order formula, calibrated; the variational fit: q's own).
    info: what ran. warm_start (the variational preset): the fitted networks; pass it as ``warm_start``
    when denoising the next, similar image with the same preset and device (None for the prior
    ensemble, and for a constant image without one).
    """

    denoised: np.ndarray
    noise_variance: np.ndarray
    posterior_std: np.ndarray
    info: DenoiseInfo
    warm_start: WarmStart | None = field(default=None, repr=False)
