"""Shared fixtures; also picks Qt's offscreen platform for the GUI tests (see README)."""

import atexit
import dataclasses
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_scoredvi.engine.presets import get_preset

# Before pytest-qt creates the QApplication: the GUI tests draw nothing, so they use Qt's offscreen
# platform. Without it Qt tries its xcb (X11) plugin, which aborts the whole run where there is no
# display or where X11 libraries it needs (e.g. libxcb-icccm4) are missing. A platform set by the
# user (QT_QPA_PLATFORM=xcb to watch the widgets) is left alone.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# widget choices remembered between sessions go to a throwaway folder, never the user's config
os.environ["NAPARI_SCOREDVI_CONFIG_DIR"] = tempfile.mkdtemp(prefix="napari-scoredvi-test-config-")
# So do napari's settings and caches, never ~/.config/napari or ~/.cache/napari: NAPARI_CONFIG names napari's
# settings file on every platform; napari puts the rest (e.g. theme icons) in platformdirs' folders,
# which follow XDG_CONFIG_HOME / XDG_CACHE_HOME on Linux. napari reads them when first imported, after this
# file (napari's pytest plugin imports no settings); tests/test_isolation.py checks that they took.
NAPARI_TEST_HOME = tempfile.mkdtemp(prefix="napari-scoredvi-test-napari-")
os.environ["NAPARI_CONFIG"] = os.path.join(NAPARI_TEST_HOME, "config", "napari", "settings.yaml")
os.environ["XDG_CONFIG_HOME"] = os.path.join(NAPARI_TEST_HOME, "config")
os.environ["XDG_CACHE_HOME"] = os.path.join(NAPARI_TEST_HOME, "cache")
atexit.register(shutil.rmtree, NAPARI_TEST_HOME, ignore_errors=True)

# the repository's ``benchmarks`` package, importable whichever way pytest is started
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
    ["mps"] if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available() else []
)

#: The variational preset with a few steps and small networks, for tests of what only a fit has (warm
#: starts and their chains, the prior weight, fit-step progress), not of its quality. The prior ensemble
#: is tested with its shipped presets, fast and balanced.
SHORT_FIT = dataclasses.replace(get_preset("variational"), iterations=4, warm_iterations=2, unet_levels=2, unet_base=8,
                                aux_depth=2, aux_width=8)


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture
def short_fit():
    return SHORT_FIT


def psnr(a, b, data_range):
    return float(10 * np.log10(data_range**2 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


@pytest.fixture
def notes(monkeypatch):
    """Record the denoise widget's notifications instead of showing them."""
    from napari_scoredvi._qt import denoise_widget

    seen = {"info": [], "error": [], "warning": []}
    for kind in seen:
        monkeypatch.setattr(denoise_widget, f"show_{kind}", seen[kind].append)
    return seen
