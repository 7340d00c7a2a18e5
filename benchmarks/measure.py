"""What the benchmarks measure, written once: image quality (PSNR, SSIM), process memory (resident
set size) and page faults.

PSNR is ``10 log10(data_range^2 / MSE)`` in float64, the formula of ``skimage.metrics.
peak_signal_noise_ratio`` (same numbers); each benchmark picks its data range (``quality``: 255,
or the clean range of the synthetic sets; ``fidelity``: the clean range). SSIM is
``skimage.metrics.structural_similarity``. Memory figures are Linux's: ``VmRSS`` now, ``ru_maxrss``
(the peak of this process so far); page faults are ``ru_minflt + ru_majflt``.
"""

from __future__ import annotations

import resource
import sys

import numpy as np

from . import sets


def psnr(out: np.ndarray, clean: np.ndarray, data_range: float) -> float:
    """PSNR (dB) of ``out`` against ``clean``: ``10 log10(data_range^2 / mean((out - clean)^2))``, float64."""
    err = np.mean((np.asarray(clean, dtype=np.float64) - np.asarray(out, dtype=np.float64)) ** 2, dtype=np.float64)
    return float(10 * np.log10(float(data_range) ** 2 / err))


def ssim(out: np.ndarray, clean: np.ndarray, data_range: float, channel_axis: int | None = None) -> float:
    """SSIM of ``out`` against ``clean`` (skimage, its default 7x7 uniform window); ``channel_axis`` for RGB."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(np.asarray(clean, dtype=np.float64), np.asarray(out, dtype=np.float64),
                                       data_range=data_range, channel_axis=channel_axis))


def psnr_ssim(out: np.ndarray, clean: np.ndarray, data_range: float, affine: bool = False,
              channel_axis: int | None = None) -> tuple[float, float]:
    """(PSNR dB, SSIM) of ``out`` against ``clean``; with ``affine``, after the least-squares map
    ``a * out + b`` onto ``clean`` (W2S: each file was stretched to 8 bit on its own,
    docs/reference/benchmark-results.md)."""
    clean = np.asarray(clean, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    if affine:
        out = sets.affine_fit(out, clean)
    return psnr(out, clean, data_range), ssim(out, clean, data_range, channel_axis)


def binned(values: np.ndarray, intensity: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` and of ``intensity`` in ``bins`` quantile bins of ``intensity`` (bins left
    empty by repeated intensity values, as in 8-bit data, are dropped)."""
    edges = np.quantile(intensity, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, intensity.ravel(), side="right") - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    full = count > 0
    return ((np.bincount(idx, values.ravel(), bins) / count.clip(1))[full],
            (np.bincount(idx, intensity.ravel(), bins) / count.clip(1))[full])


def rss_mb() -> int:
    """This process's resident set size now (MB; Linux ``VmRSS``; 0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def peak_rss_mb() -> float:
    """The peak resident set size of this process so far (MB; ``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def page_faults() -> int:
    """Page faults of this process so far (minor and major; ``getrusage``)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int(usage.ru_minflt + usage.ru_majflt)
