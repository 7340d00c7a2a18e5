"""A results folder reopened whole in a real napari viewer with our reader (issue 37, point 6):
the denoised, noise-variance and posterior-std layers, with the input's micrometres, the maps hidden."""

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from viewer_fixtures import gl_extensions_known  # noqa: E402, F401 - autouse

from napari_scoredvi.engine.settings import DenoiseSettings  # noqa: E402
from napari_scoredvi.io.read import volume_from_array  # noqa: E402
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack  # noqa: E402
from napari_scoredvi.pipeline.run import prepare_run  # noqa: E402

SCALE = (2.0, 0.5, 0.5)


def _results(path, posterior_std: bool):
    """A finished stack run of a 3 x 32 x 32 layer 'cells' (ZYX, micrometres) into ``path``."""
    stack = noisy_fluorescence_stack(3, (32, 32), seed=1)[0]
    volume = volume_from_array(stack, "ZYX", list(SCALE), dict.fromkeys("ZYX", "micrometer"), name="cells")
    list(prepare_run(volume, path, DenoiseSettings("fast", "cpu"), posterior_std=posterior_std).steps())
    return str(path)


@pytest.mark.parametrize("posterior_std", [False, True])
def test_a_results_folder_reopens_whole(make_napari_viewer, tmp_path, posterior_std):
    out = _results(tmp_path / "cells-denoised.zarr", posterior_std)
    viewer = make_napari_viewer()
    from napari.plugins import _npe2

    # what napari's "Choose reader" dialog lists for the folder (File > Open Folder...)
    readers = _npe2.get_readers(out)
    assert readers.get("napari-scoredvi") == "napari-scoredvi"
    # the dialog selects the first by name: not ours, which napari also lists for folders that are no results
    assert sorted(readers.values())[0] != "napari-scoredvi"
    added = viewer.open(out, plugin="napari-scoredvi")
    names = ["denoised (cells)", "noise variance [ADU²] (cells)"] + (["posterior std [ADU] (cells)"] * posterior_std)
    assert [layer.name for layer in added] == [layer.name for layer in viewer.layers] == names
    for layer in viewer.layers:
        assert tuple(layer.scale) == pytest.approx(SCALE)
        assert [str(u) for u in layer.units] == ["micrometer"] * 3 and tuple(layer.axis_labels) == ("z", "y", "x")
        assert layer.data.shape == (3, 32, 32) and layer.metadata["scoredvi"]["reopened"] is True
        assert layer.metadata["scoredvi"]["store"] == out
    den = viewer.layers["denoised (cells)"]
    assert den.visible and all(not viewer.layers[name].visible for name in names[1:])
    assert np.isfinite(np.asarray(den.data[1])).all() and den.contrast_limits[1] > den.contrast_limits[0]
    assert viewer.layers[names[1]].metadata["scoredvi"]["unit"] == "ADU^2"
