"""Noise calibration (photon transfer) from one raw 2D camera image.

The noise of a linear camera is Poisson-Gaussian: a pixel reading ``I`` ADU (analogue-digital units)
with dark level (``offset``) ``o`` has variance ``var(I) = gain * (I - o) + read_var``, i.e. a line
``var = gain * I + intercept`` with ``gain`` in ADU per photoelectron and
``intercept = read_var - gain * o`` in ADU^2. The per-intensity-bin variances come from the project's
single-image estimator (:func:`~napari_scoredvi.noise_estimate.measure_noise_levels`: weak-texture
patches of the 16 stride-4 pixel-shuffled sub-images, min-eigenvalue variance per bin, weighted
line fit); their spread and the uncertainty of the fit are delete-one-sub-image jackknife standard
errors. Optionally a noise-variance map (e.g. ScoreDVI's) is binned by a denoised image as a second
curve, to compare the map against the measurement. The noise's lag-1 spatial correlation in y and x
(:func:`~napari_scoredvi.engine.noise_estimate.noise_correlation`, on flat patches at full
resolution, against the fitted line) says whether per-pixel error bars understate the error of a
region's mean. Needs numpy only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.noise_estimate import (
    PATCH,
    STRIDE,
    NoiseLevelFunction,
    corrected_min_eigenvalue,
    measure_noise_levels,
    noise_correlation,
    region_variance_factor,
    weighted_line,
)
from ..engine.validate import check_dtype
from ..io.errors import Argument, BadArgument

#: smallest image side: below this the estimator cannot use its 16 stride-4 sub-images
MIN_SIDE = STRIDE * 3 * PATCH
#: quantile bins of the noise-variance map's curve
MAP_BINS = 10
#: fraction of pixels at the integer type's maximum above which a saturation note is added
SATURATED_FRACTION = 0.001
#: lag-1 correlation of the noise (the larger of y and x) above which a note says that per-pixel error
#: bars understate a region's error (positive correlation only: see :func:`_correlation_note`)
CORRELATED_LAG1 = 0.1


@dataclass(frozen=True)
class CurveBins:
    """One photon-transfer curve, one entry per intensity bin, all arrays (K,).

    intensity: mean intensity of the bin (ADU). variance: noise variance (ADU^2). spread (ADU^2): for
    the image's measured curve, the jackknife standard error of the bin's variance over the 16
    sub-images (NaN if not computable); for a noise-variance map's curve, the standard deviation of
    the map over the bin's pixels. count: patches (measured curve) or pixels (map curve) in the bin.
    """

    source: str
    intensity: np.ndarray
    variance: np.ndarray
    spread: np.ndarray
    count: np.ndarray

    def rows(self) -> list[dict]:
        return [{"curve": self.source, "bin": k, "intensity_adu": _num(self.intensity[k]),
                 "variance_adu2": _num(self.variance[k]), "spread_adu2": _num(self.spread[k]),
                 "count": int(self.count[k])} for k in range(len(self.intensity))]


@dataclass(frozen=True)
class Calibration:
    """Photon-transfer fit ``variance = gain * intensity + intercept`` of one 2D image, in ADU.

    gain: ADU per photoelectron (the slope); intercept: ADU^2; ``*_se``: jackknife standard errors
    (NaN when not computable). measured: the binned curve that was fitted. map_curve / map_gain /
    map_intercept: the noise-variance map's curve and its weighted line fit, when a map was given.
    offset (ADU, dark level; offset_se when derived), read_variance_adu (ADU^2), read_noise_adu,
    read_noise_e (read_noise_e_se when derived): filled in from
    whichever of offset or read noise the user gave (``given`` says which; None where not computable,
    ``notes`` says why). gain_known and gain_ratio (measured / known) when a known gain was given.
    noise_lag1_y, noise_lag1_x: the noise's lag-1 spatial correlation (see below).
    """

    shape: tuple[int, int]
    gain: float
    intercept: float
    gain_se: float
    intercept_se: float
    measured: CurveBins
    map_curve: CurveBins | None = None
    map_gain: float | None = None
    map_intercept: float | None = None
    given: str | None = None
    offset: float | None = None
    offset_se: float | None = None
    read_variance_adu: float | None = None
    read_noise_adu: float | None = None
    read_noise_e: float | None = None
    read_noise_e_se: float | None = None
    gain_known: float | None = None
    gain_ratio: float | None = None
    #: Lag-1 spatial correlation of the noise along y: the correlation of the noise of vertically
    #: adjacent pixels (dimensionless; 0 = independent pixels), measured on flat patches at full
    #: resolution, each pixel's noise divided by the fitted line's std at its patch's intensity
    #: (:func:`~napari_scoredvi.engine.noise_estimate.noise_correlation`). With correlation at lag 1
    #: only, the variance of the mean of a region of n pixels is approximately
    #: ``(1 + 2 * noise_lag1_y) * (1 + 2 * noise_lag1_x)`` times ``var / n`` (an approximation: it
    #: ignores longer-range correlation and the region's edges). NaN when too few flat patches.
    noise_lag1_y: float = math.nan
    #: Lag-1 spatial correlation of the noise along x (horizontally adjacent pixels); as ``noise_lag1_y``.
    noise_lag1_x: float = math.nan
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """Plain JSON-able numbers (NaN becomes None); the curves as lists of rows."""
        out = {k: _num(getattr(self, k)) for k in (
            "gain", "gain_se", "intercept", "intercept_se", "map_gain", "map_intercept", "given", "offset", "offset_se",
            "read_variance_adu", "read_noise_adu", "read_noise_e", "read_noise_e_se", "gain_known", "gain_ratio",
            "noise_lag1_y", "noise_lag1_x")}
        out["units"] = {"gain": "ADU per photoelectron", "intercept": "ADU^2", "offset": "ADU",
                        "read_variance_adu": "ADU^2", "read_noise_adu": "ADU", "read_noise_e": "electrons",
                        "noise_lag1_y": "1", "noise_lag1_x": "1",
                        "intensity_adu": "ADU", "variance_adu2": "ADU^2", "spread_adu2": "ADU^2"}
        out["model"] = "variance = gain * intensity + intercept; read_variance_adu = intercept + gain * offset"
        out["noise_lag1_meaning"] = (
            "correlation of the noise of vertically (y) / horizontally (x) adjacent pixels, measured on flat "
            "patches against the fitted line; 0 = independent pixels; the variance of the mean of n pixels is "
            "approximately (1 + 2 noise_lag1_y) (1 + 2 noise_lag1_x) var / n (lag-1 correlation only)")
        out["shape"] = list(self.shape)
        out["notes"] = list(self.notes)
        out["bins"] = self.rows()
        return out

    def rows(self) -> list[dict]:
        """Every bin of the measured curve, then of the map's curve (if any), as dicts."""
        return self.measured.rows() + (self.map_curve.rows() if self.map_curve is not None else [])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["curve", "bin", "intensity_adu", "variance_adu2", "spread_adu2",
                                                 "count"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        return buf.getvalue()

    def write_json(self, path: str | Path) -> Path:
        return _write_atomic(Path(path), self.to_json())

    def write_csv(self, path: str | Path) -> Path:
        return _write_atomic(Path(path), self.to_csv())

    def summary(self) -> list[str]:
        """Human-readable lines: the fit and whatever derived quantities are known."""
        lines = [f"gain: {self.gain:.4g} ADU/e- (+- {_fmt(self.gain_se)})",
                 f"intercept: {self.intercept:.4g} ADU^2 (+- {_fmt(self.intercept_se)})"]
        if self.offset is not None:
            lines.append(f"offset: {self.offset:.4g} ADU" + (" (given)" if self.given == "offset" else
                                                              f" (+- {_fmt(self.offset_se)}) (derived)"))
        if self.read_noise_e is not None:
            how = f" (+- {_fmt(self.read_noise_e_se)}), " if self.given == "offset" else ", "
            lines.append(f"read noise: {self.read_noise_e:.4g} e-{how}{self.read_noise_adu:.4g} ADU"
                         + (" (derived)" if self.given == "offset" else " (given)"))
        if self.gain_ratio is not None:
            lines.append(f"measured / known gain: {self.gain_ratio:.3f} (known {self.gain_known:.4g} ADU/e-)")
        lines.append(f"noise lag-1 correlation: y {_fmt2(self.noise_lag1_y)}, x {_fmt2(self.noise_lag1_x)}")
        if self.map_gain is not None:
            lines.append(f"noise-variance map: slope {self.map_gain:.4g} ADU/e-, intercept {self.map_intercept:.4g} "
                         "ADU^2")
        return lines + [f"note: {n}" for n in self.notes]


def derived_from_offset(gain: float, intercept: float, offset: float) -> tuple[float, float]:
    """(read variance in ADU^2, read noise in e-) from the fit and the dark level ``offset`` (ADU).

    ``read_var = intercept + gain * offset``; read noise (e-) = ``sqrt(read_var) / gain`` (NaN if
    ``read_var <= 0``)."""
    read_var = intercept + gain * offset
    return read_var, (math.sqrt(read_var) / gain if read_var > 0 else math.nan)


def offset_from_read_noise(gain: float, intercept: float, read_noise_adu: float) -> float:
    """Dark level (ADU) from the fit and the read noise in ADU: ``(read_noise_adu**2 - intercept) / gain``."""
    return (read_noise_adu**2 - intercept) / gain


def calibrate(image, *, offset: float | None = None, read_noise_e: float | None = None,
              read_noise_adu: float | None = None, gain_known: float | None = None,
              denoised=None, noise_variance=None) -> Calibration:
    """Photon-transfer fit of one raw 2D image (H, W), intensities in ADU (its own units).

    Give at most one of ``offset`` (camera dark level, ADU), ``read_noise_e`` (electrons) or
    ``read_noise_adu`` to get the other; ``gain_known`` (ADU/e-) to compare. ``denoised`` and
    ``noise_variance`` (both (H, W), e.g. a ScoreDVI result of this image) add the map's curve: the
    map binned by denoised intensity. Raises ValueError, saying what to do, for unusable input.
    """
    img = _as_plane(image, "image")
    h, w = img.shape
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"image is {h} x {w} pixels; the calibration needs at least {MIN_SIDE} x {MIN_SIDE} "
                         "(it measures the noise on 16 sub-images of every 4th pixel); use a larger image "
                         "(256 x 256 or more is best)")
    if float(img.max()) == float(img.min()):
        raise ValueError(f"image is constant ({float(img.min()):g} everywhere): there is no noise to measure; "
                         "give a raw camera image of a sample")
    given = [name for name, v in (("offset", offset), ("read_noise_e", read_noise_e),
                                  ("read_noise_adu", read_noise_adu)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of offset, read noise (e-) or read noise (ADU), got {', '.join(given)}: "
                         "the other follows from the fit")
    for name, v, positive in (("the offset", offset, False), ("the read noise", read_noise_e, False),
                              ("the read noise", read_noise_adu, False), ("the known gain", gain_known, True)):
        if v is not None and (not math.isfinite(v) or v < 0 or (positive and v == 0)):
            raise ValueError(f"{name} is {v!r}; give a finite number {'> 0' if positive else '>= 0'} (from the "
                             "camera's data sheet) or leave it out")

    if (denoised is None) != (noise_variance is None):
        raise ValueError("give both a denoised image and its noise-variance map for the map's curve, or neither")
    kw: dict = {}
    if denoised is not None:
        curve, mg, mb = map_curve(denoised, noise_variance, shape=(h, w))
        kw.update(map_curve=curve, map_gain=mg, map_intercept=mb)
    m = measure_noise_levels(img)
    if len(m.levels) < 2 or m.patches is None:
        raise ValueError(f"only {len(m.levels)} intensity level(s) had enough flat (weakly textured) patches; "
                         "the image needs flat regions at several intensities (background and uniform objects)")
    gain, intercept = m.nlf.slope, m.nlf.intercept
    lo, hi = float(m.levels.min()), float(m.levels.max())
    if not gain > 0:
        raise ValueError(f"the noise variance does not grow with intensity over {lo:.4g}-{hi:.4g} (fitted slope <= "
                         "0), so the gain cannot be determined: the image has too little intensity range in flat "
                         "regions, or is not raw camera data (background-subtracted, rescaled, clipped or "
                         "already denoised); use a raw frame with dim and bright flat regions")
    bin_var_jk, fit_jk = _jackknife(m)
    gain_se, intercept_se = _jk_se(fit_jk[:, 0]), _jk_se(fit_jk[:, 1])
    measured = CurveBins("measured", m.levels, m.variances,
                         np.array([_jk_se(bin_var_jk[:, k]) for k in range(len(m.levels))]), m.counts.astype(int))
    notes = []
    if np.issubdtype(np.asarray(image).dtype, np.integer):
        top = np.iinfo(np.asarray(image).dtype).max
        frac = float(np.mean(img >= top))
        if frac > SATURATED_FRACTION:
            notes.append(f"{100 * frac:.2g}% of pixels are saturated ({top}); saturated regions read as noise-free")
    lag1 = _lag1(img, gain, intercept)
    note = _correlation_note(*lag1)
    if note:
        notes.append(note)
    if gain_se > 0.1 * gain:
        notes.append(f"the gain is uncertain (+- {100 * gain_se / gain:.0f}%): the image has little intensity "
                     "range in flat regions")

    if offset is not None or read_noise_e is not None or read_noise_adu is not None:
        if offset is not None:
            kw["given"], kw["offset"] = "offset", float(offset)
            read_var, rn_e = derived_from_offset(gain, intercept, offset)
            jk_rn = np.array([derived_from_offset(g, b, offset)[1] for g, b in fit_jk])
            kw["read_variance_adu"] = read_var
            if read_var > 0:
                kw["read_noise_e"], kw["read_noise_adu"] = rn_e, math.sqrt(read_var)
                kw["read_noise_e_se"] = _jk_se(jk_rn)
            else:
                notes.append(f"intercept + gain x offset = {read_var:.3g} ADU^2 <= 0, so no read noise: the offset "
                             "given is lower than the data imply (check the dark level) or the intercept is too "
                             f"uncertain (+- {intercept_se:.3g} ADU^2)")
        else:
            rn_adu = float(read_noise_adu) if read_noise_adu is not None else float(read_noise_e) * gain
            kw["given"] = "read_noise_adu" if read_noise_adu is not None else "read_noise_e"
            kw["read_noise_adu"], kw["read_noise_e"], kw["read_variance_adu"] = rn_adu, rn_adu / gain, rn_adu**2
            kw["offset"] = offset_from_read_noise(gain, intercept, rn_adu)
            # a read noise given in electrons is gain * read_noise_e ADU for each replicate's gain
            jk_rn_adu = [rn_adu if read_noise_adu is not None else float(read_noise_e) * g for g, _ in fit_jk]
            kw["offset_se"] = _jk_se(np.array([offset_from_read_noise(g, b, r)
                                               for (g, b), r in zip(fit_jk, jk_rn_adu)]))
    if gain_known is not None:
        kw["gain_known"], kw["gain_ratio"] = float(gain_known), gain / float(gain_known)
    return Calibration((h, w), gain, intercept, gain_se, intercept_se, measured, noise_lag1_y=lag1[0],
                       noise_lag1_x=lag1[1], notes=tuple(notes), **kw)


def map_curve(denoised, noise_variance, shape: tuple[int, int] | None = None,
              n_bins: int = MAP_BINS) -> tuple[CurveBins, float | None, float | None]:
    """A noise-variance map (H, W) binned by the denoised intensity (H, W) into ``n_bins`` quantile
    bins: the curve (mean map value per bin, spread = its std within the bin) and the count-weighted
    line fit (slope, intercept), None if the intensities do not spread over two bins."""
    den = _as_plane(denoised, "denoised image")
    var = _as_plane(noise_variance, "noise-variance map")
    if den.shape != var.shape or (shape is not None and den.shape != tuple(shape)):
        raise ValueError(f"the denoised image {den.shape}, the noise-variance map {var.shape}"
                         + (f" and the image {tuple(shape)}" if shape is not None else "")
                         + " must have the same shape; pick the outputs of one denoising run of this slice")
    x, y = den.ravel(), var.ravel()
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:
        edges = np.array([x.min(), x.max()])
    bin_of = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    count = np.bincount(bin_of, minlength=len(edges) - 1)
    ok = count > 0
    sx, sy, syy = (np.bincount(bin_of, weights=v, minlength=len(edges) - 1) for v in (x, y, y * y))
    n = np.maximum(count, 1)
    mean_y = sy / n
    std_y = np.sqrt(np.maximum(syy / n - mean_y**2, 0.0))
    curve = CurveBins("map", (sx / n)[ok], mean_y[ok], std_y[ok], count[ok])
    fit = weighted_line(curve.intensity, curve.variance, curve.count.astype(float))
    return curve, (fit[0] if fit else None), (fit[1] if fit else None)


# -- helpers -----------------------------------------------------------------------------------------
def _as_plane(data, what: str) -> np.ndarray:
    arr = np.asarray(data)
    check_dtype(arr.dtype, f"the {what} has dtype {{dtype}}; need an integer or float image in camera units (ADU)")
    if arr.ndim != 2:
        raise ValueError(f"the {what} has shape {arr.shape}; pass one 2D (Y, X) slice: one slice of a stack and one "
                         "channel of a colour image")
    out = arr.astype(np.float64)  # float64 holds every uint16/int32 value exactly: no overflow in squares
    if not np.isfinite(out).all():
        raise ValueError(f"the {what} contains NaN or infinite values; calibrate a raw image (or crop the bad "
                         "pixels away)")
    return out


def _replicate_variance(n: float, s1: np.ndarray, s2: np.ndarray) -> float:
    """The estimator's bin variance from the sums of the row-centred patches (``s1`` (p,), ``s2``
    (p, p)) of ``n`` patches."""
    return corrected_min_eigenvalue((s2 - np.outer(s1, s1) / n) / (n - 1), n)


def _jackknife(m) -> tuple[np.ndarray, np.ndarray]:
    """Delete-one-sub-image replicates: bin variances (J, K) and line fits (J, 2) with the estimator's
    weights (patch counts). The noise of different sub-images is independent, so these give honest
    standard errors (overlapping patches inside one sub-image are not)."""
    n_sub = int(m.sub_image.max()) + 1
    K = len(m.levels)
    cnt = np.zeros((n_sub, K))
    lev = np.zeros((n_sub, K))
    s1 = np.zeros((n_sub, K, PATCH * PATCH))
    s2 = np.zeros((n_sub, K, PATCH * PATCH, PATCH * PATCH))
    for k, idx in enumerate(m.kept):
        p = m.patches[idx]
        means = p.mean(axis=1)
        c = p - means[:, None]
        sub = m.sub_image[idx]
        for j in range(n_sub):
            sel = sub == j
            cj = c[sel]
            cnt[j, k], lev[j, k] = sel.sum(), means[sel].sum()
            s1[j, k], s2[j, k] = cj.sum(axis=0), cj.T @ cj
    var_jk = np.full((n_sub, K), np.nan)
    fit_jk = np.full((n_sub, 2), np.nan)
    if n_sub < 2:
        return var_jk, fit_jk
    tot_n, tot_l, tot1, tot2 = cnt.sum(0), lev.sum(0), s1.sum(0), s2.sum(0)
    for j in range(n_sub):
        n = tot_n - cnt[j]
        if (n < 2 * PATCH * PATCH).any():
            continue
        var_jk[j] = [_replicate_variance(n[k], tot1[k] - s1[j, k], tot2[k] - s2[j, k]) for k in range(K)]
        fit = weighted_line((tot_l - lev[j]) / n, var_jk[j], n)
        if fit is not None:
            fit_jk[j] = fit
    return var_jk, fit_jk


def _lag1(img: np.ndarray, gain: float, intercept: float) -> tuple[float, float]:
    """The noise's lag-1 correlation (y, x) of the float64 plane ``img``, each pixel's noise scaled by
    the fitted line ``var = gain * I + intercept``; NaN, NaN when too few patches are flat to tell."""
    c = noise_correlation(img, NoiseLevelFunction(gain, intercept))
    if c.residual == 1.0 and c.lag1_y == 0.0 and c.lag1_x == 0.0:  # noise_correlation's "too few flat patches"
        return math.nan, math.nan
    return c.lag1_y, c.lag1_x


def _correlation_note(lag1_y: float, lag1_x: float) -> str | None:
    """The note for noise correlated above ``CORRELATED_LAG1``, or None.

    Only a positive correlation gets it: on pixel-independent noise in scenes with few flat areas the
    fitted line can misread the flat patches' variance, which reads as a negative lag-1 correlation
    (down to about -0.2 on synthetic fluorescence frames), not as anti-correlated noise."""
    if not max(lag1_y, lag1_x) > CORRELATED_LAG1:  # False for NaN too
        return None
    factor = region_variance_factor(lag1_y, lag1_x)
    return (f"the noise is spatially correlated (lag-1 {lag1_y:.2f} in y, {lag1_x:.2f} in x): per-pixel error "
            f"bars understate the error of a region's mean by about {factor:.1f}x in variance "
            f"({math.sqrt(factor):.1f}x in std); binned, resampled or demosaiced data?")


def _jk_se(values: np.ndarray) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return math.nan
    return float(np.sqrt((len(v) - 1) / len(v) * np.sum((v - v.mean()) ** 2)))


def _num(v):
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.2g}"


def _fmt2(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.2f}"


def _write_atomic(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def read_plane(path: str | Path, index: list[int] | tuple[int, ...] | None = None,
               axes: str | None = None) -> tuple[np.ndarray, str]:
    """One 2D (Y, X) plane of a TIFF/Zarr image and a description of which one.

    index: one position per axis before Y, X (default: the middle of each). axes as for
    :func:`~napari_scoredvi.io.read.open_volume`. Reads only that plane. The description says
    "(the middle)" where ``index`` was not given.
    """
    from ..io.read import open_volume

    vol = open_volume(path, axes)
    lead, names = tuple(vol.array.shape[:-2]), vol.axes[:-2]
    if not lead:
        if index:
            raise BadArgument.of("%r is a single 2D image (shape %s): it has no slices to pick; leave out %s",
                                 str(path), tuple(vol.array.shape), Argument("index", list(index)))
        return np.asarray(vol.array.compute()), "the 2D image"
    default = index is None
    if default:
        index = [n // 2 for n in lead]
    if len(index) != len(lead) or not all(0 <= i < n for i, n in zip(index, lead)):
        raise BadArgument.of("%s does not fit the axes before Y, X (%s, sizes %s); give one index per axis, each "
                             "from 0 to its size - 1", Argument("index", list(index)), names,
                             " x ".join(map(str, lead)))
    plane = np.asarray(vol.array[tuple(index)].compute())
    where = "slice " + ", ".join(f"{a}={i}" for a, i in zip(names, index)) + f" of {'x'.join(map(str, lead))}"
    return plane, where + (" (the middle)" if default else "")
