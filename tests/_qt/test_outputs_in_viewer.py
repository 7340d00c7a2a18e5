"""The output layers in a real napari viewer, on the plugin's sample data: contrast from their own
data, units and colour bars, readable names, whole panels in grid mode, and slices not yet
computed shown blank (NaN) with a status line that says which slices hold results."""

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from viewer_fixtures import gl_extensions_known  # noqa: E402, F401 - autouse

from napari_scoredvi._qt.denoise_widget import SCOPE_RANGE, ScoreDVIWidget  # noqa: E402
from napari_scoredvi.engine.settings import DenoiseSettings  # noqa: E402
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack  # noqa: E402
from napari_scoredvi.napari.layers import text_overlay  # noqa: E402
from napari_scoredvi.napari.partial import PartialStack  # noqa: E402
from napari_scoredvi.napari.request import RUN_HERE, DenoiseRequest  # noqa: E402

SAMPLE = "noisy fluorescence stack"
#: generous: the CPU may be shared (a 256 x 256 `fast` slice takes about 1.5 s on 2 cores)
TIMEOUT = 300_000
FAST = DenoiseSettings("fast", "cpu")


def _sample_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-scoredvi", "noisy_stack")
    return viewer


def _dock(viewer) -> ScoreDVIWidget:
    _, w = viewer.window.add_plugin_dock_widget("napari-scoredvi", "ScoreDVI denoise")
    w._run_on_box.value = RUN_HERE
    return w


def _camera(viewer) -> tuple:
    return tuple(np.round(viewer.camera.center, 6)), round(float(viewer.camera.zoom), 6)


def test_outputs_explain_themselves_in_grid_mode(make_napari_viewer, qtbot, notes):
    viewer = _sample_viewer(make_napari_viewer)
    src = viewer.layers[SAMPLE]
    viewer.canvas.grid.enabled = True
    viewer.reset_view()
    one_panel = _camera(viewer)
    w = _dock(viewer)
    w.run(DenoiseRequest(src, FAST, shown=(2,), posterior_std=True))
    qtbot.waitUntil(lambda: w.worker is None, timeout=TIMEOUT)
    assert not notes["error"], notes["error"]
    # what each output is comes first: still told apart when the layer list cuts the names short
    assert [ly.name for ly in viewer.layers] == ["clean ground truth", SAMPLE, f"denoised ({SAMPLE})",
                                                 f"noise variance [ADU²] ({SAMPLE})", f"posterior std [ADU] ({SAMPLE})"]
    den = viewer.layers[f"denoised ({SAMPLE})"]
    var = viewer.layers[f"noise variance [ADU²] ({SAMPLE})"]
    std = viewer.layers[f"posterior std [ADU] ({SAMPLE})"]
    # the denoised layer's contrast is its own data's robust range, not the noisy layer's (which made it dim)
    plane = np.asarray(den.data[2])
    assert tuple(den.contrast_limits) == pytest.approx(tuple(np.percentile(plane, (0.25, 99.75))))
    assert tuple(den.contrast_limits) != pytest.approx(tuple(src.contrast_limits))
    # the maps carry their units; the selected output shows its colour bar, labelled, one at a time
    assert var.metadata["scoredvi"]["unit"] == "ADU^2" and std.metadata["scoredvi"]["unit"] == "ADU"
    assert den.metadata["scoredvi"]["unit"] == "ADU"
    assert viewer.layers.selection.active is src and not any(ly.colorbar.visible for ly in (den, var, std))
    viewer.layers.selection.active = var
    assert var.colorbar.visible and not std.colorbar.visible and not den.colorbar.visible
    label = text_overlay(viewer)
    assert label.visible and label.text == var.name
    # grid mode: the view was reset to show the new panels whole
    after = _camera(viewer)
    assert after != one_panel and after[1] < one_panel[1]
    viewer.reset_view()
    assert _camera(viewer) == after
    # the 4 slices not denoised are NaN (blank in napari), not zeros that look like a result
    for out in (den, var, std):
        assert isinstance(out.data, PartialStack) and out.data.shape[0] == 5
        values = np.asarray(out.data)
        assert np.isfinite(values[2]).all() and all(np.isnan(values[z]).all() for z in (0, 1, 3, 4))
    assert w._status.value == "1/1 slice(s) done; slice 3 of 5 computed (z=2); the other 4 are not computed (blank)"
    # slice by slice into the same layers: the status follows what they hold
    w.run(DenoiseRequest(src, FAST, shown=(4,)))
    qtbot.waitUntil(lambda: w.worker is None, timeout=TIMEOUT)
    assert viewer.layers[f"denoised ({SAMPLE})"] is den and np.isfinite(np.asarray(den.data)[4]).all()
    assert w._status.value.endswith("2 of 5 slices computed (z=2, 4); the other 3 are not computed (blank)")


def test_a_range_into_a_store_says_which_slices_hold_results(make_napari_viewer, qtbot, notes, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(noisy_fluorescence_stack(5, (32, 32), seed=3)[0], name="stack")
    w = _dock(viewer)
    w.run(DenoiseRequest(viewer.layers["stack"], FAST, SCOPE_RANGE, first=1, last=2,
                         output=tmp_path / "range.zarr"))
    qtbot.waitUntil(lambda: w.worker is None, timeout=TIMEOUT)
    assert not notes["error"], notes["error"]
    assert w._status.value == "2/2 slice(s) done; 2 of 5 slices computed (z=1-2); the other 3 are not computed (blank)"
    var = viewer.layers["noise variance [ADU²] (stack)"]
    assert var.metadata["scoredvi"]["unit"] == "ADU^2"
    den = viewer.layers["denoised (stack)"]
    computed = np.asarray(den.data[1:3])  # the contrast spans the computed slices, not the blank ones
    lo, hi = den.contrast_limits
    assert lo >= np.nanmin(computed) - 1e-3 and hi <= np.nanmax(computed) + 1e-3


def test_grid_view_is_left_alone_when_no_layer_is_added(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    src = viewer.add_image(noisy_fluorescence_stack(3, (32, 32), seed=4)[0], name="stack")
    w = _dock(viewer)
    w.run(DenoiseRequest(src, FAST, shown=(0,)))
    qtbot.waitUntil(lambda: w.worker is None, timeout=TIMEOUT)
    viewer.canvas.grid.enabled = True
    viewer.camera.zoom = viewer.camera.zoom * 3  # the user zooms in
    zoomed = _camera(viewer)
    w.run(DenoiseRequest(src, FAST, shown=(1,)))  # reuses the layers
    qtbot.waitUntil(lambda: w.worker is None, timeout=TIMEOUT)
    assert not notes["error"], notes["error"]
    assert _camera(viewer) == zoomed
