"""The fit's tiling of whole-image passes (the priors' estimates, the final pass)."""

import torch

from napari_scoredvi.engine import fit
from napari_scoredvi.engine.priors import load_priors
from napari_scoredvi.io.synthetic import add_camera_noise, clean_fluorescence


def test_tiles_blend_back_to_the_whole_image(monkeypatch):
    monkeypatch.setattr(fit, "TILE", 48)
    monkeypatch.setattr(fit, "TILE_OVERLAP", 8)
    image = torch.rand(2, 3, 100, 130)
    out = fit._tiled(lambda rows, cols: image[..., rows, cols] * 2, (2, 3), (100, 130), image.device)
    torch.testing.assert_close(out, image * 2)


def test_tiled_prior_estimates_match_the_whole_image(monkeypatch):
    clean = clean_fluorescence((160, 160), seed=1)
    noisy = add_camera_noise(clean, seed=1).astype("float32")
    y = torch.from_numpy((noisy - noisy.min()) / (noisy.max() - noisy.min()))[None]
    priors = load_priors(torch.device("cpu"))
    whole = fit.prior_estimates(y, priors)
    monkeypatch.setattr(fit, "TILE", 96)
    monkeypatch.setattr(fit, "TILE_OVERLAP", 32)
    tiled = fit.prior_estimates(y, priors)
    assert tiled.shape == whole.shape == (len(priors), 1, 160, 160)
    # the nets see less context near tile edges only: tiny differences against a noise std of ~0.05
    assert float((tiled - whole).abs().mean()) < 1e-3 and float((tiled - whole).abs().max()) < 0.02
