"""Robust intensity mapping between the input's units and the model's [0, 1] range."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOW_PERCENTILE = 0.1
HIGH_PERCENTILE = 99.9


@dataclass(frozen=True)
class Normalisation:
    """Per-channel affine map ``model = (input - offset) / scale``; arrays of shape (C,)."""

    offset: np.ndarray
    scale: np.ndarray

    def to_model(self, image: np.ndarray) -> np.ndarray:
        """(C, H, W) input units -> model units (float32; values outside [0, 1] are kept)."""
        return ((image - self.offset[:, None, None]) / self.scale[:, None, None]).astype(np.float32)

    def image_to_input(self, image: np.ndarray) -> np.ndarray:
        """(C, H, W) model units -> input units."""
        return image * self.scale[:, None, None] + self.offset[:, None, None]

    def std_to_input(self, std: np.ndarray) -> np.ndarray:
        return std * self.scale[:, None, None]

    def variance_to_input(self, variance: np.ndarray) -> np.ndarray:
        return variance * (self.scale**2)[:, None, None]


def fit_normalisation(image: np.ndarray) -> Normalisation | None:
    """Percentile-based map for a (C, H, W) float image; ``None`` when a channel is constant.

    The 0.1th percentile (not the minimum) is the zero so a camera offset or a few cold pixels do
    not matter; the 99.9th is the one so a few hot pixels do not squash the signal. Falls back to
    min/max when the percentiles coincide (a mostly flat channel).
    """
    flat = image.reshape(image.shape[0], -1)
    lo, hi = np.percentile(flat, [LOW_PERCENTILE, HIGH_PERCENTILE], axis=1)
    scale = hi - lo
    narrow = scale <= 1e-12 * np.maximum(1.0, np.abs(hi))
    if narrow.any():
        lo = np.where(narrow, flat.min(axis=1), lo)
        scale = np.where(narrow, flat.max(axis=1) - lo, scale)
    if (scale <= 0).any():
        return None
    return Normalisation(offset=lo, scale=scale)
