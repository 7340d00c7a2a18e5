"""Tiling of whole-image passes over large images (the prior ensemble's estimates and outputs)."""

import torch

from napari_scoredvi.engine import tiling
from napari_scoredvi.engine.api import finish
from napari_scoredvi.engine.priors import load_priors, self_ensemble
from napari_scoredvi.io.synthetic import add_camera_noise, clean_fluorescence


def _whole(fn):
    """A tile function as :func:`tiling.tiled` takes it: a generator that yields once per tile."""

    def tile(rows, cols):
        yield (rows, cols)
        return fn(rows, cols)

    return tile


def test_tiles_blend_back_to_the_whole_image(monkeypatch):
    monkeypatch.setattr(tiling, "TILE", 48)
    monkeypatch.setattr(tiling, "TILE_OVERLAP", 8)
    image = torch.rand(2, 3, 100, 130)
    seen = []
    out = finish(tiling.tiled(_whole(lambda rows, cols: image[..., rows, cols] * 2), (2, 3), (100, 130),
                              image.device), seen.append)
    torch.testing.assert_close(out, image * 2)
    assert len(seen) == tiling.tile_count((100, 130)) == 3 * 4  # every tile, each once
    covered = torch.zeros(100, 130, dtype=torch.bool)
    for rows, cols in seen:
        assert rows.stop - rows.start <= 48 and cols.stop - cols.start <= 48
        covered[rows, cols] = True
    assert covered.all()


def test_tiled_prior_estimates_match_the_whole_image(monkeypatch):
    clean = clean_fluorescence((160, 160), seed=1)
    noisy = add_camera_noise(clean, seed=1).astype("float32")
    y = torch.from_numpy((noisy - noisy.min()) / (noisy.max() - noisy.min()))[None]
    prior = load_priors(torch.device("cpu"))[0]

    def estimate():
        def tile(rows, cols):
            return (yield from self_ensemble(prior, y[None, :, rows, cols], 1))[0]

        return finish(tiling.tiled(tile, (1,), (160, 160), y.device))

    whole = estimate()
    monkeypatch.setattr(tiling, "TILE", 96)
    monkeypatch.setattr(tiling, "TILE_OVERLAP", 32)
    tiled = estimate()
    assert tiled.shape == whole.shape == (1, 160, 160)
    # the nets see less context near tile edges only: tiny differences against a noise std of ~0.05
    assert float((tiled - whole).abs().mean()) < 1e-3 and float((tiled - whole).abs().max()) < 0.02
