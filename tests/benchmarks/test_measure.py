"""The benchmarks' shared measurements (benchmarks/measure.py): the same numbers as the formulas they replaced."""

import sys

import numpy as np
import pytest

from benchmarks import measure


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    clean = rng.uniform(100, 4000, (64, 64))
    out = (clean + rng.normal(0, 50, clean.shape)).astype(np.float32)  # the engine's outputs are float32
    return out, clean


def test_psnr_is_the_old_fidelity_formula_bit_for_bit(images):
    out, clean = images
    peak = float(clean.max() - clean.min())
    assert measure.psnr(out, clean, peak) == float(10 * np.log10(peak**2 / np.mean((out - clean) ** 2)))


def test_psnr_ssim_is_skimage_bit_for_bit(images):
    metrics = pytest.importorskip("skimage.metrics")
    out, clean = images
    gt, o = clean.astype(np.float64), np.asarray(out, dtype=np.float64)
    p, s = measure.psnr_ssim(out, clean, 255.0)
    assert p == float(metrics.peak_signal_noise_ratio(gt, o, data_range=255.0))
    assert s == float(metrics.structural_similarity(gt, o, data_range=255.0))
    rgb_out, rgb_clean = np.stack([out] * 3, -1), np.stack([clean] * 3, -1)
    _, s_rgb = measure.psnr_ssim(rgb_out, rgb_clean, 255.0, channel_axis=-1)
    assert s_rgb == float(metrics.structural_similarity(np.stack([gt] * 3, -1), np.stack([o] * 3, -1),
                                                        data_range=255.0, channel_axis=-1))


def test_affine_scoring_fits_out_to_clean_first(images):
    _, clean = images
    p, _ = measure.psnr_ssim(3.0 * clean - 7.0, clean, 255.0, affine=True)
    assert p > 200  # an affine copy of the clean image scores as the clean image


def test_memory_figures():
    assert measure.peak_rss_mb() > 1
    if sys.platform.startswith("linux"):
        assert 1 <= measure.rss_mb() <= measure.peak_rss_mb() + 1
    assert measure.page_faults() > 0
