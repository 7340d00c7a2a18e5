"""Neighbouring slices as context: a stack's slice denoised with the slices around it.

Neighbouring z-slices and time points show nearly the same structure under independent noise. A
slice's *window* is the slice and its neighbours at offsets -1, +1, -2, +2, ... along the stack
(:func:`offsets`). Each neighbour is registered to the slice by a whole-pixel shift (:func:`register`;
whole pixels keep the noise independent from pixel to pixel), then, in the variance-stabilised domain
where every pixel's noise has the same variance, the window is **fused** (:func:`fuse`): each
neighbour pixel is weighted by how well the neighbour agrees with the slice around it (their
smoothed difference against what the noise alone would give), so a structure only the neighbours
have, an unrelated slice or a moved part weighs nothing, and agreeing pixels average the noise down.
The fused slice, with its per-pixel noise variance, goes to the same prior ensemble as a single
image. A neighbour that does not exist (the ends of the stack) is simply not there: no seam, fewer
neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: the largest shift (pixels, per axis) a neighbour is registered by
MAX_SHIFT = 32
#: the stds (pixels) of the Gaussians the frames are smoothed by to find a neighbour's shift: each
#: proposes one, the frames' closeness at the smoothest decides (no shift where none is closer)
REGISTER_SMOOTH_PX = (2.0, 4.0)
#: the std (pixels) of the Gaussian over which a neighbour's agreement with the slice is measured
AGREE_SMOOTH_PX = 2.0
#: a neighbour pixel's weight is ``exp(-b^2 / (2 (TOLERANCE sigma)^2))``, ``b^2 = max(d^2 - s^2, 0)`` the
#: squared difference of neighbour and slice beyond what the noise alone gives (``d`` their smoothed
#: difference, ``s`` its std from the noise alone) and ``sigma`` a pixel's noise std: near 1 where they
#: agree, 0.6 for a difference of half the noise, nothing for a structure the slice lacks
TOLERANCE = 0.5
#: a pixel's weight is the least over the ERODE x ERODE pixels around it: trusted only amid agreement
ERODE = 5
#: a neighbour's gate: the correlation of neighbour and slice, both smoothed by a Gaussian of
#: GATE_SMOOTH_PX pixels; it weighs nothing below GATE[0] (an unrelated slice), fully above GATE[1]
GATE_SMOOTH_PX = 4.0
GATE = (0.6, 0.85)


def offsets(context: int) -> list[int]:
    """The window's slices in order: 0 (the slice), -1, +1, -2, +2, ..."""
    return [0] + [s * j for j in range(1, context + 1) for s in (-1, 1)]


def register(neighbour: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """``neighbour`` (C, H, W) shifted by whole pixels onto ``centre`` (C, H, W), edges reflected, and
    the shift (dy, dx). Shifts are proposed by phase correlation of both frames smoothed (noise at a
    few photons per pixel makes the raw frames' correlation peak wander; :data:`REGISTER_SMOOTH_PX`),
    at most :data:`MAX_SHIFT` pixels; the one that brings the smoothest frames closest is kept, no
    shift unless one does better."""
    from scipy.ndimage import gaussian_filter
    from skimage.registration import phase_cross_correlation

    candidates, judge = {(0, 0)}, None
    for sigma in REGISTER_SMOOTH_PX:  # the last, smoothest, judges: the least noisy comparison
        a, b = (gaussian_filter(f.mean(0), sigma) for f in (centre, neighbour))
        a, b = a - a.mean(), b - b.mean()
        shift, _, _ = phase_cross_correlation(a, b, normalization=None)
        found = tuple(int(round(float(v))) for v in shift)
        if max(abs(v) for v in found) <= MAX_SHIFT:
            candidates.add(found)
        judge = (a, b)
    dy, dx = min(sorted(candidates), key=lambda d: (_misfit(*judge, *d), abs(d[0]) + abs(d[1])))
    if (dy, dx) == (0, 0):
        return neighbour, (0, 0)
    h, w = neighbour.shape[-2:]
    pad = ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)))
    padded = np.pad(neighbour, pad, mode="reflect" if min(h, w) > max(abs(dy), abs(dx)) else "edge")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[:, top : top + h, left : left + w], (dy, dx)


def _misfit(a: np.ndarray, b: np.ndarray, dy: int, dx: int) -> float:
    """Mean squared difference of ``a`` and ``b`` shifted by (dy, dx), over the pixels both cover."""
    h, w = a.shape
    ya, yb = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xa, xb = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    return float(np.mean((a[ya, xa] - b[yb, xb]) ** 2))


def fuse(centre: np.ndarray, neighbours: Sequence[np.ndarray | None], noise_std: float
         ) -> tuple[np.ndarray, np.ndarray, float]:
    """The slice ``centre`` (C, H, W) fused with its registered ``neighbours`` (each (C, H, W) or None),
    all variance-stabilised (pixel noise std ``noise_std`` everywhere): ``(fused, factor, used)``, the
    fused slice (float32), its noise variance as a share of one frame's (``factor``, (C, H, W), 1 where
    no neighbour agrees, about ``1 / (2K + 1)`` where all do) and the mean weight of a neighbour pixel.

    A neighbour pixel's weight is ``exp(-b^2 / (2 (TOLERANCE noise_std)^2))`` with
    ``b^2 = max(d^2 - s^2, 0)``, ``d`` the neighbour's difference from the slice smoothed by a
    Gaussian of :data:`AGREE_SMOOTH_PX` pixels and ``s`` the std that difference has from the noise
    alone; the least such weight over :data:`ERODE` x :data:`ERODE` pixels around it, times the
    neighbour's gate (:func:`gate`). The fused slice is the weighted mean (the slice weighs 1)."""
    from scipy.ndimage import gaussian_filter, minimum_filter

    sigma = (0.0, AGREE_SMOOTH_PX, AGREE_SMOOTH_PX)
    # the noise of the difference of two frames, 2 noise_std^2, through the Gaussian: times sum(g^2)
    s = noise_std * np.sqrt(2.0 / (4.0 * np.pi * AGREE_SMOOTH_PX**2))
    c = centre.astype(np.float64)
    total, weights, squares, used = c.copy(), np.ones_like(c), np.ones_like(c), []
    for n in neighbours:
        if n is None:
            continue
        most = gate(c, n)
        if most == 0.0:  # an unrelated slice: it weighs nothing anywhere
            used.append(0.0)
            continue
        d = gaussian_filter(n.astype(np.float64) - c, sigma)
        excess = np.maximum(d**2 - s**2, 0.0)
        w = most * minimum_filter(np.exp(-excess / (2.0 * (TOLERANCE * noise_std) ** 2)), size=(1, ERODE, ERODE))
        total += w * n
        weights += w
        squares += w**2
        used.append(float(w.mean()))
    fused = (total / weights).astype(np.float32)
    return fused, (squares / weights**2).astype(np.float32), float(np.mean(used)) if used else 0.0


def gate(centre: np.ndarray, neighbour: np.ndarray) -> float:
    """How much a neighbour (C, H, W) may weigh at most, 0 to 1: from the correlation of it and the slice,
    both smoothed by :data:`GATE_SMOOTH_PX` pixels (an unrelated slice correlates about 0, a neighbour
    of a stack highly, even where some of its structures changed; :data:`GATE`)."""
    from scipy.ndimage import gaussian_filter

    sigma = (0.0, GATE_SMOOTH_PX, GATE_SMOOTH_PX)
    a, b = gaussian_filter(centre.astype(np.float64), sigma), gaussian_filter(neighbour.astype(np.float64), sigma)
    a, b = a - a.mean(), b - b.mean()
    r = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-30))
    return min(1.0, max(0.0, (r - GATE[0]) / (GATE[1] - GATE[0])))
