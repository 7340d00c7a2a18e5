"""Variance stabilisation: the priors see an image whose noise has the same std everywhere.

The generalised Anscombe transform (GAT; Mäkitalo & Foi, IEEE TIP 22(1), 2013) of an image whose
noise variance is ``slope * I + intercept`` (its noise level function) has noise of std about 1 at
every intensity; the closed-form approximation of its exact unbiased inverse (Mäkitalo & Foi, IEEE
TIP 20(9), 2011) maps a denoised transformed image back. Our priors are Gaussian denoisers: on the
real W2S widefield frames they denoise the transformed image 0.44 dB better than the image itself,
where shot noise makes the std grow with the intensity (docs/explanation/variance-stabilisation.md).
:class:`Stabiliser` wraps that for the engine, in model units, channel by channel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .noise_estimate import NoiseCorrelation, NoiseLevelFunction, NoiseModel

_SQRT_3_2 = math.sqrt(1.5)
#: the closed-form inverse's minimum lies at about this D; below it the inverse is held constant
D_MIN = 0.838
_MIN_SPAN = 1e-6


def gat_forward(z: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """GAT of ``z`` whose noise variance is ``slope * E[z] + intercept``:
    ``2 * sqrt(max(z / slope + 3/8 + intercept / slope^2, 0))``, dimensionless, noise std about 1
    (for ``z = alpha * Poisson + N(mu, sigma^2)``: slope ``alpha``, intercept ``sigma^2 - alpha * mu``).
    ``slope <= 0`` (Gaussian noise) gives ``z / sqrt(intercept)``."""
    z = np.asarray(z, dtype=np.float64)
    if slope <= 0:
        return z / math.sqrt(max(intercept, 1e-12))
    return 2.0 * np.sqrt(np.maximum(z / slope + 0.375 + intercept / slope**2, 0.0))


def gat_inverse(d: np.ndarray, slope: float, intercept: float, floor: float | None = None) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse of :func:`gat_forward`:
    ``slope * I(D) - intercept / slope`` with ``I(D) = D^2/4 + sqrt(3/2)/4 D^-1 - 11/8 D^-2 +
    5/8 sqrt(3/2) D^-3 - 1/8``, ``D`` held at :data:`D_MIN` below it. ``floor``: clamp the result
    there (e.g. 0 for an image that cannot be negative; None: no clamp)."""
    d = np.asarray(d, dtype=np.float64)
    if slope <= 0:
        out = d * math.sqrt(max(intercept, 1e-12))
    else:
        d = np.maximum(d, D_MIN)
        inv = d**2 / 4 + _SQRT_3_2 / 4 / d - 11 / 8 / d**2 + 5 / 8 * _SQRT_3_2 / d**3 - 1 / 8
        out = slope * inv - intercept / slope
    return out if floor is None else np.maximum(out, floor)


def gat_step(d: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """How much the image changes per unit of the transformed image at ``d``: ``slope * D / 2``,
    the noise std there (the inverse of the forward transform's derivative; ``sqrt(intercept)`` for
    Gaussian noise). Carries a std from the transformed image back (delta method)."""
    d = np.asarray(d, dtype=np.float64)
    if slope <= 0:
        return np.full_like(d, math.sqrt(max(intercept, 1e-12)))
    return slope * np.maximum(d, D_MIN) / 2


@dataclass(frozen=True)
class Stabiliser:
    """The GAT of each channel of a (C, H, W) model-units image with its own noise level function,
    mapped onto [0, 1] by the transformed image's minimum ``low`` and range ``span`` (one pair for
    all channels, so all keep the same noise std, ``1 / span``: colour priors need that)."""

    levels: tuple[NoiseLevelFunction, ...]
    low: float
    span: float

    @classmethod
    def for_image(cls, y: np.ndarray, levels: Sequence[NoiseLevelFunction]) -> Stabiliser:
        d = cls._gat(y, tuple(levels))
        low = float(d.min())
        return cls(tuple(levels), low, max(float(d.max()) - low, _MIN_SPAN))

    @staticmethod
    def _gat(y: np.ndarray, levels: tuple[NoiseLevelFunction, ...]) -> np.ndarray:
        return np.stack([gat_forward(c, f.slope, f.intercept) for c, f in zip(y, levels)])

    def forward(self, y: np.ndarray) -> np.ndarray:
        """(C, H, W) model units -> the transformed image on [0, 1] (float32), noise std ``1 / span``."""
        return ((self._gat(y, self.levels) - self.low) / self.span).astype(np.float32)

    def noise_model(self, correlation: Sequence[NoiseCorrelation]) -> NoiseModel:
        """The noise of :meth:`forward`'s image: the same std ``1 / span`` everywhere, per channel."""
        flat = NoiseLevelFunction(0.0, 1.0 / self.span**2)
        return NoiseModel(tuple(flat for _ in self.levels), tuple(correlation))

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """A denoised (C, H, W) transformed image -> model units (float32)."""
        d = x.astype(np.float64) * self.span + self.low
        return np.stack([gat_inverse(c, f.slope, f.intercept) for c, f in zip(d, self.levels)]).astype(np.float32)

    def std_to_model(self, std: np.ndarray, x: np.ndarray) -> np.ndarray:
        """A (C, H, W) std of the transformed image at the denoised transformed image ``x`` -> model units."""
        d = x.astype(np.float64) * self.span + self.low
        step = np.stack([gat_step(c, f.slope, f.intercept) for c, f in zip(d, self.levels)])
        return (std * self.span * step).astype(np.float32)
