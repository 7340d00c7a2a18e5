"""The benchmark's opponents (benchmarks/opponents.py): the oracle sigma search (the VST they use is the
engine's: tests/engine/test_vst.py)."""

import numpy as np
import pytest

from benchmarks import opponents


@pytest.mark.parametrize("best", [23.7, 2.2, 230.0])  # 8-bit equivalents: between grid values, below, above
def test_oracle_search_finds_the_best_sigma_finely(monkeypatch, best):
    monkeypatch.setattr(opponents, "_bm3d", lambda noisy, sigma, rgb: noisy + sigma)
    data_range = 1000.0
    unit = data_range / 255

    def score(out):
        s8 = float(out.mean()) / unit
        return -abs(s8 - best), 0.0

    r = opponents.bm3d_oracle(np.zeros((4, 4)), False, data_range, score, fine=True)
    assert abs(r["sigma_8bit"] - best) < opponents.FINE_TOL_8BIT
    assert r["sigma"] == pytest.approx(r["sigma_8bit"] * unit)
    coarse = opponents.bm3d_oracle(np.zeros((4, 4)), False, data_range, score, fine=False)
    if best == 23.7:
        assert coarse["sigma_8bit"] == 25.0 and coarse["evaluations"] == len(opponents.COARSE_8BIT)


@pytest.mark.slow
def test_vst_bm3d_on_poisson_gaussian_image():
    pytest.importorskip("bm3d")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    photons = 3 + 40 * (xx / 127) * (0.5 + 0.5 * np.sin(yy / 9.0) ** 2)
    gain, offset, read_e = 4.0, 100.0, 2.0
    clean = gain * photons + offset
    noisy = gain * rng.poisson(photons) + rng.normal(offset, gain * read_e, clean.shape)
    out, info = opponents.vst_bm3d(noisy)
    assert info["slope"] == pytest.approx(gain, rel=0.25)  # the estimator sees the gain
    noise_std = np.sqrt(gain * (clean - offset) + (gain * read_e) ** 2).mean()
    assert abs((out - clean).mean()) < 0.05 * noise_std  # unbiased over the image
    mse_in, mse_out = np.mean((noisy - clean) ** 2), np.mean((out - clean) ** 2)
    assert 10 * np.log10(mse_in / mse_out) > 6  # and it denoises
