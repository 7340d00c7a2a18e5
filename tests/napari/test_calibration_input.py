"""Which layer the noise-calibration widget proposes, and its hints, without Qt."""

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.layers import Image  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402

from napari_scoredvi.io.synthetic import noisy_fluorescence_stack  # noqa: E402
from napari_scoredvi.napari.calibration_input import NOISE_FREE, looks_noise_free, noise_hint, pick_raw_layer  # noqa: E402
from napari_scoredvi.napari.sample_data import make_sample_data  # noqa: E402


def _sample_layers() -> list[Image]:
    return [Image(data, **kwargs) for data, kwargs, _ in make_sample_data()]


def test_the_raw_noisy_layer_is_proposed():
    clean, noisy = _sample_layers()  # the plugin's sample: a hidden float32 ground truth, a uint16 stack
    assert pick_raw_layer([clean, noisy]) is noisy and pick_raw_layer([noisy, clean]) is noisy
    shown_clean = Image(clean.data, name="clean, shown")  # visible, but float: the integer frame still wins
    assert pick_raw_layer([noisy, shown_clean]) is noisy
    output = Image(noisy.data, name="denoised (x)", metadata={"scoredvi": {"source": "x"}})
    assert pick_raw_layer([noisy, output]) is noisy  # never a ScoreDVI output when another fits
    hidden = Image(noisy.data, name="hidden noisy", visible=False)
    assert pick_raw_layer([noisy, hidden]) is noisy
    assert pick_raw_layer([clean]) is clean  # the only one there is
    assert pick_raw_layer([]) is None
    a, b = Image(noisy.data, name="a"), Image(noisy.data, name="b")
    assert pick_raw_layer([a, b]) is b  # the topmost among equals


def test_noise_free_layers_are_named():
    noisy, clean = noisy_fluorescence_stack(n_slices=2, shape=(256, 256), seed=0)
    for z in range(2):
        assert not looks_noise_free(noisy[z]) and noise_hint(noisy[z]) is None
        assert looks_noise_free(clean[z]) and noise_hint(clean[z]) == NOISE_FREE
        assert not looks_noise_free(gaussian_filter(noisy[z].astype(float), 1))  # smoothed, still noisy enough
    assert looks_noise_free(np.full((32, 32), 5.0))
    assert "ScoreDVI output" in noise_hint(noisy[0], output=True)
    scaled = noisy[0] / 7.0  # rescaled: not whole numbers, so not raw ADU (only said when the fit failed)
    assert "not whole numbers" in noise_hint(scaled) and noise_hint(scaled, failed=False) is None
