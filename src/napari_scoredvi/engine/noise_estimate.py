"""Single-image signal-dependent noise estimation and the noise-aware prior weight.

Our implementation of the idea of Liu, Tanaka & Okutomi (IEEE TIP 2014, "Practical signal-dependent
noise parameter estimation from a single noisy image"): keep weakly textured patches (their gradient
energy is what noise alone would give), measure the noise variance of those patches per intensity
level as the smallest eigenvalue of their covariance (texture lives in the large ones), and fit the
noise level function ``var(I) = a * I + b`` (Poisson-Gaussian). As in ScoreDVI it runs on the 16
pixel-shuffled sub-images of stride 4, which breaks the spatial correlation of real camera noise.
When the noise turns out to be pixel-independent (:func:`noise_correlation`), :func:`estimate_noise`
measures it again at full resolution (stride 1), where fine texture is smooth from one pixel to the
next and passes the flatness test less often than in the stride-4 sub-images (in which neighbours
are 4 pixels apart). All intensities are in the units of the array passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .stopping import check as check_stop

PATCH = 5
STRIDE = 4  # pixel-shuffle stride of the sub-images (breaks spatially correlated noise)
MAX_PATCHES = 1 << 16  # a full-resolution estimate uses at most about this many patches
QUICK_STEP = 2  # the stride-4 estimate that only decides "correlated or not" uses every 2nd patch
FULL_RES_TRIM = 2  # the full-resolution estimate's flatness test ignores each patch's 2 largest differences
N_BINS = 8
ITERATIONS = 5


@dataclass(frozen=True)
class NoiseLevelFunction:
    """``variance(I) = slope * I + intercept``, in the image's units (squared)."""

    slope: float
    intercept: float

    def variance(self, intensity: np.ndarray | float) -> np.ndarray:
        return np.maximum(self.slope * np.asarray(intensity) + self.intercept, 0.0)


def _patches(image: np.ndarray, step: int = 1) -> np.ndarray:
    """The overlapping PATCH x PATCH patches of a 2D image at every ``step``-th row and column,
    flattened: (P, PATCH*PATCH)."""
    win = np.lib.stride_tricks.sliding_window_view(image, (PATCH, PATCH))[::step, ::step]
    return win.reshape(-1, PATCH * PATCH)


def _gradient_energy(patches: np.ndarray, trim: int = 0) -> np.ndarray:
    """Sum of the squared differences of horizontally and vertically adjacent pixels of each patch,
    leaving out its ``trim`` largest (so that one outlying pixel, which is in at most 4 differences,
    does not fail the flatness test on its own)."""
    if not trim:
        p = patches.reshape(-1, PATCH, PATCH)
        return (np.diff(p, axis=1) ** 2).sum(axis=(1, 2)) + (np.diff(p, axis=2) ** 2).sum(axis=(1, 2))
    out = np.empty(len(patches))
    for start in range(0, len(patches), 1 << 16):  # in chunks: the differences take 40 values per patch
        p = patches[start : start + (1 << 16)].reshape(-1, PATCH, PATCH)
        d = np.concatenate([np.diff(p, axis=1).reshape(len(p), -1), np.diff(p, axis=2).reshape(len(p), -1)], 1) ** 2
        out[start : start + len(p)] = np.partition(d, d.shape[1] - trim - 1, axis=1)[:, : d.shape[1] - trim].sum(1)
    return out


@lru_cache(maxsize=4)
def _flat_threshold(trim: int = 0) -> float:
    """0.99 quantile of the gradient energy (:func:`_gradient_energy` with ``trim``) of a pure
    unit-variance Gaussian noise patch (Monte Carlo, fixed seed).

    A patch whose energy exceeds ``variance * this`` very likely holds texture as well as noise.
    """
    noise = np.random.default_rng(12345).standard_normal((40000, PATCH * PATCH))
    return float(np.quantile(_gradient_energy(noise, trim), 0.99))


def _min_eigenvalue(patches: np.ndarray) -> float:
    """Noise variance of weak-texture patches: the smallest covariance eigenvalue once each patch's
    own mean is removed (binning by intensity constrains the mean, so that direction is dropped),
    corrected for the finite-sample low bias of that eigenvalue (Marchenko-Pastur lower edge)."""
    n, p = patches.shape
    centred = patches - patches.mean(axis=1, keepdims=True)
    return corrected_min_eigenvalue(np.cov(centred, rowvar=False), n)


def corrected_min_eigenvalue(cov: np.ndarray, n: float) -> float:
    """The noise variance from the (p, p) covariance of ``n`` row-centred patches: its smallest
    eigenvalue but the removed mean's (``[1]``; ``[0]`` is 0), divided by the Marchenko-Pastur lower
    edge ``(1 - sqrt((p - 1) / n))^2`` to undo the finite-sample low bias."""
    lam = float(np.linalg.eigvalsh(cov)[1])
    return max(lam, 0.0) / (1.0 - np.sqrt((len(cov) - 1) / n)) ** 2


def _sub_images(image: np.ndarray, stride: int = STRIDE) -> list[np.ndarray]:
    if stride > 1 and min(image.shape) >= stride * 3 * PATCH:
        return [image[i::stride, j::stride] for i in range(stride) for j in range(stride)]
    return [image]  # stride 1, or too small to shuffle: estimate on the image itself


def _fallback_variance(image: np.ndarray) -> float:
    """Robust global noise variance from the 2x2 Haar diagonal detail (MAD); for tiny images."""
    h, w = (s - s % 2 for s in image.shape)
    x = image[:h, :w]
    d = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float((np.median(np.abs(d - np.median(d))) / 0.6745) ** 2)


def estimate_noise_level_function(image: np.ndarray, stride: int = STRIDE, trim: int = 0,
                                  step: int = 1, own_threshold: bool = False) -> NoiseLevelFunction:
    """Fit ``var(I) = a I + b`` to one 2D image (H, W) in its own units. Never raises on valid input.

    ``stride``: the patches come from the ``stride**2`` pixel-shuffled sub-images (the default 4:
    robust to spatially correlated noise); 1 measures the image itself, which reads correlated noise
    low but reads textured images far better when the noise is pixel-independent. ``trim``: the flatness
    test leaves out each patch's ``trim`` largest squared pixel differences (:func:`_gradient_energy`),
    so that heavy-tailed noise (isolated bright pixels) is not taken for texture. ``step``: use every
    ``step``-th patch of each sub-image in each direction (a quicker, rougher estimate).
    ``own_threshold``: see :func:`measure_noise_levels`."""
    return measure_noise_levels(image, stride, trim, step, own_threshold).nlf


@dataclass(frozen=True)
class NoiseLevelBins:
    """The per-intensity-bin measurements behind a fitted noise level function (its last iteration).

    levels, variances, counts: (K,) mean intensity, min-eigenvalue noise variance and number of kept
    weak-texture patches of each bin used in the fit. kept: K index arrays into ``patches`` (P, PATCH**2),
    whose rows came from sub-image ``sub_image`` (P,). Empty (and ``patches`` None) when the image was
    too small or had no usable bin and ``nlf`` is the global fallback.
    """

    nlf: NoiseLevelFunction
    levels: np.ndarray
    variances: np.ndarray
    counts: np.ndarray
    kept: tuple[np.ndarray, ...] = ()
    patches: np.ndarray | None = None
    sub_image: np.ndarray | None = None


def measure_noise_levels(image: np.ndarray, stride: int = STRIDE, trim: int = 0, step: int = 1,
                         own_threshold: bool = False) -> NoiseLevelBins:
    """:func:`estimate_noise_level_function` with the per-bin measurements it fitted; same units.

    ``own_threshold``: each bin's texture test uses the bin's own last measured variance instead of
    the fitted line's value there, and a bin whose test would leave too few patches keeps its last
    measurement. For noise that is not linear in intensity (camera sRGB), where the line misfits
    the bins and the iterations collapse onto the lowest-noise patches (docs/explanation/prior-ensemble.md)."""
    image = np.asarray(image, dtype=np.float64)
    subs = _sub_images(image, stride)
    if len(subs) == 1:  # the image itself: on a large one, every step-th patch in each direction is plenty
        patches = _patches(subs[0], max(step, int(np.ceil(np.sqrt(image.size / MAX_PATCHES)))))
        sub_image = np.zeros(len(patches), dtype=np.int64)
    else:
        per_sub = [_patches(s, step) for s in subs]
        patches = np.concatenate(per_sub)
        sub_image = np.repeat(np.arange(len(subs)), [len(p) for p in per_sub])
    min_count = 4 * PATCH * PATCH
    empty = np.zeros(0)
    if len(patches) < min_count * 2:
        return NoiseLevelBins(NoiseLevelFunction(0.0, _fallback_variance(image)), empty, empty, empty)
    check_stop()  # the measurement takes seconds on a large frame (..stopping)
    means = patches.mean(axis=1)
    energy = _gradient_energy(patches, trim)
    check_stop()
    edges = np.quantile(means, np.linspace(0, 1, N_BINS + 1))
    bin_of = np.clip(np.searchsorted(edges, means, side="right") - 1, 0, N_BINS - 1)
    # each bin's patches (indices, ascending), found once: the texture test below only narrows them
    starts = np.cumsum(np.bincount(bin_of, minlength=N_BINS))[:-1]
    bins = [idx for idx in np.split(np.argsort(bin_of, kind="stable"), starts) if len(idx) >= min_count]
    bin_means = [float(means[idx].mean()) for idx in bins]
    # start from all patches of each bin (an over-estimate: texture included), then iterate the texture test
    nlf = None
    measured: dict[int, tuple[np.ndarray, float, float]] = {}  # bin -> (kept patches, level, variance)
    for _ in range(ITERATIONS):
        levels, variances, counts, kept = [], [], [], []
        changed = False
        for b, (idx, bin_mean) in enumerate(zip(bins, bin_means)):
            check_stop()
            if nlf is None:
                keep = idx
            else:
                var_k = measured[b][2] if own_threshold and b in measured else float(nlf.variance(bin_mean))
                keep = idx[energy[idx] <= max(var_k, 1e-12) * _flat_threshold(trim)]
            if len(keep) < min_count and own_threshold and b in measured:
                keep = measured[b][0]  # too few flat patches at its own level: keep the last measurement
            if len(keep) < min_count:
                changed |= measured.pop(b, None) is not None
                continue
            if b in measured and np.array_equal(measured[b][0], keep):  # same patches: same measurement
                _, level, variance = measured[b]
            else:
                level, variance = means[keep].mean(), _min_eigenvalue(patches[keep])
                measured[b], changed = (keep, level, variance), True
            levels.append(level)
            variances.append(variance)
            counts.append(len(keep))
            kept.append(keep)
        if not levels:
            return NoiseLevelBins(NoiseLevelFunction(0.0, _fallback_variance(image)), empty, empty, empty)
        if not changed:  # the fit below would repeat the last one exactly: converged
            break
        nlf = _fit_line(np.array(levels), np.array(variances), np.array(counts, dtype=np.float64))
    return NoiseLevelBins(nlf, np.array(levels), np.array(variances), np.array(counts, dtype=np.float64),
                          tuple(kept), patches, sub_image)


def weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float] | None:
    """Weighted least squares ``y = a x + b`` (unconstrained): ``(a, b)``, or None if x has no spread."""
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    A = np.stack([x, np.ones_like(x)], axis=1) * np.sqrt(w)[:, None]
    a, b = np.linalg.lstsq(A, y * np.sqrt(w), rcond=None)[0]
    return float(a), float(b)


def _fit_line(levels: np.ndarray, variances: np.ndarray, weights: np.ndarray) -> NoiseLevelFunction:
    """Weighted least squares for ``var = a I + b`` with ``a >= 0`` (noise never falls with signal)."""
    fit = weighted_line(levels, variances, weights)
    if fit is not None and fit[0] >= 0:
        return NoiseLevelFunction(*fit)
    return NoiseLevelFunction(0.0, float(np.average(variances, weights=weights)))


def estimate_noise_level_functions(image: np.ndarray, stride: int = STRIDE, trim: int = 0,
                                   step: int = 1, own_threshold: bool = False) -> list[NoiseLevelFunction]:
    """One noise level function per channel of a (C, H, W) or (H, W) image, in its units."""
    image = np.asarray(image, dtype=np.float64)
    return [estimate_noise_level_function(c, stride, trim, step, own_threshold)
            for c in (image[None] if image.ndim == 2 else image)]


def mean_noise_std(image: np.ndarray, nlfs: list[NoiseLevelFunction]) -> float:
    """Average noise std of a (C, H, W) or (H, W) image given its channels' noise level functions:
    ``mean var = a * mean(I) + b`` (the function is linear in I), averaged over channels."""
    image = np.asarray(image, dtype=np.float64)
    channels = image[None] if image.ndim == 2 else image
    variances = [f.variance(c.mean()) for f, c in zip(nlfs, channels)]
    return float(np.sqrt(max(float(np.mean(variances)), 0.0)))


def estimate_noise_std(image: np.ndarray) -> float:
    """Average noise std of a (C, H, W) or (H, W) image, in its units (see :func:`mean_noise_std`)."""
    return mean_noise_std(image, estimate_noise_level_functions(image))


def prior_weight(noise_std_8bit: float, lam0: float = 0.5) -> float:
    """ScoreDVI's noise-aware weight of the prior term, from the noise std in 8-bit units (0..255)."""
    if noise_std_8bit <= 10:
        return lam0
    if noise_std_8bit <= 25:
        return 1.0
    return 1.0 / lam0


@dataclass(frozen=True)
class NoiseCorrelation:
    """Spatial correlation of the noise, measured on flat patches at full resolution.

    ``residual``: the smallest eigenvalue of the covariance of flat 5x5 patches (each divided by its
    expected noise std): about 1 for pixel-independent noise, well below for correlated noise
    (0.01-0.16 at a lag-1 correlation of 0.6 on our synthetic set, 0.02-0.21 on PolyU camera sRGB;
    0.48-0.97 for independent noise, 0.94-1.02 on the W2S raw frames; benchmarks/noise_correlation.py):
    correlated noise has little energy at the highest spatial frequencies. ``lag1_y``/``lag1_x``: the correlation of
    vertically/horizontally adjacent noise values.
    """

    residual: float
    lag1_y: float
    lag1_x: float

    #: below this ``residual`` the noise is treated as spatially correlated
    THRESHOLD = 0.35

    @property
    def correlated(self) -> bool:
        return self.residual < self.THRESHOLD


def noise_correlation(image: np.ndarray, nlf: NoiseLevelFunction) -> NoiseCorrelation:
    """Measure the spatial correlation of the noise of a 2D image (H, W), given its noise level
    function ``nlf`` (measured on the pixel-shuffled sub-images, where the correlation is broken,
    so it gives each pixel's variance). See :class:`NoiseCorrelation`."""
    image = np.asarray(image, dtype=np.float64)
    # every k-th patch in raster order is enough; gathered from the window view so that the full
    # (H * W, 25) patch array (840 MB for a 2048 x 2048 slice) is never made
    win = np.lib.stride_tricks.sliding_window_view(image, (PATCH, PATCH))
    flat = np.arange(0, win.shape[0] * win.shape[1], max(1, image.size // 60000))
    patches = win[flat // win.shape[1], flat % win.shape[1]].reshape(-1, PATCH * PATCH)
    means = patches.mean(axis=1)
    var = np.maximum(nlf.variance(means), 1e-12)
    keep = _gradient_energy(patches) <= var * _flat_threshold()
    if keep.sum() < 8 * PATCH * PATCH:
        return NoiseCorrelation(1.0, 0.0, 0.0)  # too few flat patches to tell: independent pixels
    unit = (patches[keep] / np.sqrt(var[keep])[:, None]).reshape(-1, PATCH, PATCH)
    lag_y = 1.0 - float(np.mean(np.diff(unit, axis=1) ** 2)) / 2
    lag_x = 1.0 - float(np.mean(np.diff(unit, axis=2) ** 2)) / 2
    return NoiseCorrelation(_min_eigenvalue(unit.reshape(len(unit), -1)), lag_y, lag_x)


def region_variance_factor(lag1_y: float, lag1_x: float) -> float:
    """Approximately how many times ``var / n`` the variance of the mean of a large region of n pixels
    is, when the noise is correlated at lag 1 only: ``(1 + 2 lag1_y) (1 + 2 lag1_x)`` (each factor
    floored at 0). 1 for pixel-independent noise; 4.8 at a lag-1 correlation of 0.6 in y and x."""
    return max(1.0 + 2.0 * lag1_y, 0.0) * max(1.0 + 2.0 * lag1_x, 0.0)


def correlation_text(lag1_y: float, lag1_x: float) -> str:
    """``"lag-1 0.58 in y, 0.61 in x"`` and what it does to a region's mean, for a user's note."""
    return (f"lag-1 {lag1_y:.2f} in y, {lag1_x:.2f} in x; the mean of a region of n pixels has about "
            f"{region_variance_factor(lag1_y, lag1_x):.1f} x variance / n")


@dataclass(frozen=True)
class NoiseModel:
    """What the engine knows of the noise of one (C, H, W) image, in that image's units: each
    channel's noise level function and spatial correlation."""

    levels: tuple[NoiseLevelFunction, ...]
    correlation: tuple[NoiseCorrelation, ...]

    @property
    def correlated(self) -> bool:
        """Spatially correlated noise (camera sRGB, some widefield cameras): the mean residual of
        the channels is below :attr:`NoiseCorrelation.THRESHOLD`."""
        return float(np.mean([c.residual for c in self.correlation])) < NoiseCorrelation.THRESHOLD

    def std_quantile(self, image: np.ndarray, q: float = 0.99) -> float:
        """The ``q`` quantile over the pixels of a (C, H, W) image of the noise std its level
        functions give them (the image's units): how noisy the noisiest pixels are."""
        channels = np.asarray(image, dtype=np.float64)
        channels = channels[None] if channels.ndim == 2 else channels
        step = max(1, channels[0].size // 2**20)  # a quantile of a regular sample: large frames stay cheap
        var = np.concatenate([np.clip(f.variance(c.ravel()[::step]), 0.0, None)
                              for f, c in zip(self.levels, channels)])
        return float(np.sqrt(np.quantile(var, q)))

    @property
    def lag1(self) -> tuple[float, float]:
        """Mean (y, x) lag-1 correlation of the noise over the channels, 0 for independent noise."""
        if not self.correlated:
            return 0.0, 0.0
        return (float(np.mean([c.lag1_y for c in self.correlation])),
                float(np.mean([c.lag1_x for c in self.correlation])))


def estimate_noise(image: np.ndarray) -> NoiseModel:
    """The :class:`NoiseModel` of a (C, H, W) or (H, W) image.

    The noise level functions are first measured on the stride-4 sub-images (quickly: every 2nd
    patch, ``QUICK_STEP``), which gives each pixel's variance whether or not the noise is spatially
    correlated, and the correlation is measured with them. Correlated noise then gets the stride-4
    functions measured with every patch. When the noise is pixel-independent, the level functions
    are measured again on the full-resolution image (stride 1): fine texture, which the stride-4
    sub-images turn into pixel-to-pixel variation that passes for noise, is smooth there (on the
    synthetic Poisson-Gaussian set the slope of the stride-4 function was up to 4x the gain on BSD68
    photographs at low noise, and 0.86-1.18x of it this way; ``benchmarks/noise_levels.py``,
    docs/explanation/prior-ensemble.md). That estimate's flatness test ignores each patch's 2 largest squared
    differences (``FULL_RES_TRIM``): the dark noise of the W2S frames is heavy-tailed (kurtosis
    4.4-12.1), and the plain test, which expects Gaussian noise, rejected the patches with its
    bright outliers and read the darkest levels up to 24 % low."""
    image = np.asarray(image, dtype=np.float64)
    channels = image[None] if image.ndim == 2 else image
    # which case it is, from a quick stride-4 function (every 2nd patch): only the correlation test uses it
    quick = estimate_noise_level_functions(channels, step=QUICK_STEP)
    model = NoiseModel(tuple(quick), tuple(noise_correlation(c, f) for c, f in zip(channels, quick)))
    if model.correlated:  # the stride-4 functions are the answer: measure them with every patch, each
        # bin's texture test at its own level (camera sRGB noise is not linear in intensity)
        levels = tuple(estimate_noise_level_functions(channels, own_threshold=True))
        return NoiseModel(levels, tuple(noise_correlation(c, f) for c, f in zip(channels, levels)))
    return NoiseModel(tuple(estimate_noise_level_functions(channels, stride=1, trim=FULL_RES_TRIM)),
                      model.correlation)
