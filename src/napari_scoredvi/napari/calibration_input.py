"""Which layer the noise-calibration widget proposes, and what to tell the user when a layer cannot
be calibrated, without Qt.

Photon transfer needs a raw camera frame: noisy, in ADU, usually integer. :func:`raw_layer_rank`
orders the image layers so that the widget proposes one (a visible, integer, non-RGB layer that is
not a ScoreDVI output) before a hidden float "ground truth" or a denoised output. :func:`noise_hint`
names the likely cause when a frame looks noise-free or is not raw data.
"""

from __future__ import annotations

import numpy as np

#: a plane whose noise (estimated from its pixel-to-pixel differences) is below this fraction of
#: its intensity range looks noise-free. Raw frames measured here: 0.08 (the sample stack, 100-150
#: ADU), over 1e-3 for a 10,000-count signal on a 100 ADU background; a noise-free ground truth:
#: 3e-4; a noisy frame smoothed by a Gaussian of 2 pixels: 1.5e-3.
NOISE_FREE_RATIO = 1e-3
NOISE_FREE = "this layer looks noise-free (a ground truth or an already denoised image?): pick the raw noisy frame"


def raw_layer_rank(layer) -> tuple:
    """A sort key: the larger, the more a layer looks like a raw camera frame to calibrate (not a
    ScoreDVI output, visible, integer data, not RGB)."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    integer = np.issubdtype(np.dtype(getattr(data, "dtype", np.float32)), np.integer)
    metadata = getattr(layer, "metadata", None) or {}
    return ("scoredvi" not in metadata, bool(getattr(layer, "visible", True)), integer,
            not getattr(layer, "rgb", False))


def pick_raw_layer(layers):
    """The image layer of ``layers`` (bottom to top, as napari lists them) that best fits
    :func:`raw_layer_rank`, the topmost among equals; None when there is none."""
    layers = list(layers)[::-1]
    return max(layers, key=raw_layer_rank) if layers else None


def noise_std(plane) -> float:
    """The noise standard deviation of a 2D plane from its discrete Laplacian (robust: the median
    absolute deviation, so edges count little; exact for white noise)."""
    x = np.asarray(plane, np.float64)
    if min(x.shape[-2:]) < 3:
        return float("nan")
    lap = x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:] - 4 * x[1:-1, 1:-1]  # variance 20 sigma^2
    lap = lap[np.isfinite(lap)]
    if not lap.size:
        return float("nan")
    return float(1.4826 * np.median(np.abs(lap - np.median(lap))) / np.sqrt(20))


def looks_noise_free(plane) -> bool:
    """Whether the plane's noise is below :data:`NOISE_FREE_RATIO` of its intensity range (0.5-99.5
    percentiles); a constant plane counts as noise-free."""
    x = np.asarray(plane, np.float64)
    finite = x[np.isfinite(x)]
    if finite.size < 9:
        return False
    lo, hi = np.percentile(finite, [0.5, 99.5])
    if hi <= lo:
        return True
    return bool(noise_std(x) < NOISE_FREE_RATIO * (hi - lo))


def noise_hint(plane, output: bool = False, failed: bool = True) -> str | None:
    """Why ``plane`` (the shown slice of a layer; ``output``: a ScoreDVI output layer) is not a raw
    noisy frame, if it looks so: a ScoreDVI output, a noise-free image, or (when the calibration
    ``failed``) non-integer values; None when it looks raw."""
    if output:
        return "this layer is a ScoreDVI output, not raw camera data: pick the raw noisy frame it came from"
    values = np.asarray(plane)
    if looks_noise_free(values):
        return NOISE_FREE
    if failed and np.issubdtype(values.dtype, np.floating):
        finite = values[np.isfinite(values)]
        if finite.size and not np.array_equal(finite, np.round(finite)):
            return ("its values are not whole numbers, so it may not be raw camera data (ADU): "
                    "background-subtracted, rescaled or filtered frames do not calibrate; pick the raw frame")
    return None
