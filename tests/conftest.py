import numpy as np
import pytest
import torch

from napari_scoredvi.presets import Preset

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
    ["mps"] if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available() else []
)

#: A very short fit for tests that check plumbing, not quality.
TINY = Preset("tiny", iterations=8, crop=32, crops=2, samples=1, unet_levels=2, unet_base=8, aux_depth=2, aux_width=8,
              warm_iterations=4)


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture
def tiny_preset():
    return TINY


def psnr(a, b, data_range):
    return float(10 * np.log10(data_range**2 / np.mean((np.asarray(a, np.float64) - b) ** 2)))
