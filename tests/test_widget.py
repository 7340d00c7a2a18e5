"""The napari plugin: manifest, sample data, the per-slice generator and the dock widget."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from conftest import TINY  # noqa: E402
from napari_scoredvi import _widget  # noqa: E402
from napari_scoredvi._sample import make_sample_data  # noqa: E402
from napari_scoredvi._widget import SCOPE_ALL, SCOPE_RANGE, ScoreDVIWidget, denoise_slices  # noqa: E402
from napari_scoredvi.presets import Preset  # noqa: E402
from napari_scoredvi.samples import noisy_fluorescence_stack  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: longer than TINY so a cancel lands mid-stack
SLOW = Preset("slow", iterations=60, crop=32, crops=2, samples=1, unet_levels=2, unet_base=8, aux_depth=2,
              aux_width=8, warm_iterations=60)
TIMEOUT = 60_000


@pytest.fixture
def notes(monkeypatch):
    """Record the widget's notifications instead of showing them."""
    seen = {"info": [], "error": [], "warning": []}
    for kind in seen:
        monkeypatch.setattr(_widget, f"show_{kind}", seen[kind].append)
    return seen


@pytest.fixture
def viewer_model(qapp):
    """A napari ``ViewerModel``: layers, dims and layer selection, all the widget uses, without a
    canvas. A canvas needs OpenGL, which Qt 5's offscreen platform has only on an X display; the
    tests that need the window itself (docking) use ``make_napari_viewer`` and add no layers."""
    from napari.components import ViewerModel

    return ViewerModel()


def _widget_for(viewer) -> ScoreDVIWidget:
    w = ScoreDVIWidget(viewer)
    w.preset_override = TINY
    w._device_box.value = "cpu"
    return w


def _wait_done(qtbot, w):
    qtbot.waitUntil(lambda: w.worker is None, timeout=TIMEOUT)


def test_manifest_root_matches_package():
    assert (ROOT / "napari.yaml").read_text() == (ROOT / "src/napari_scoredvi/napari.yaml").read_text()


def test_manifest_valid_and_registered():
    from npe2 import PluginManager, PluginManifest

    mf = PluginManifest.from_distribution("napari-scoredvi")
    assert {c.id for c in mf.contributions.commands} >= {"napari-scoredvi.make_widget", "napari-scoredvi.sample"}
    pm = PluginManager.instance()
    pm.discover()
    assert "napari-scoredvi" in pm._manifests


def test_sample_data():
    layers = make_sample_data()
    assert [lt for _, _, lt in layers] == ["image", "image"]
    assert layers[1][0].dtype == np.uint16 and layers[0][0].shape == layers[1][0].shape


def test_denoise_slices_headless_and_close():
    noisy, _ = noisy_fluorescence_stack(3, (32, 32), seed=1)
    den = np.zeros(noisy.shape, np.float32)
    var = np.zeros(noisy.shape, np.float32)
    gen = denoise_slices(noisy, (3,), [0, 1, 2], den, var, TINY, "cpu")
    events = []
    for ev in gen:
        events.append(ev)
        if ev["kind"] == "slice" and ev["index"] == (0,):
            break
    gen.close()
    assert den[0].any() and not den[1].any() and not den[2].any()
    assert (var[0] > 0).all()
    # run to completion: every slice
    gen = denoise_slices(noisy, (3,), [0, 1, 2], den, var, TINY, "cpu")
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    assert stop.value.value["done"] == [(0,), (1,), (2,)] and stop.value.value["error"] is None
    assert all(den[i].any() for i in range(3))


def test_dock_through_npe2(make_napari_viewer):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-scoredvi", "ScoreDVI denoise")
    assert isinstance(widget, ScoreDVIWidget)
    # the prior weight reads "auto" at 0 (automatic) and shows the number otherwise
    lam = widget._lam_box
    assert lam.value == 0.0 and lam.native.text() == "auto"
    lam.value = 1.25
    assert lam.native.text() == "1.25"
    lam.value = 0.0
    assert lam.native.text() == "auto"


def test_run_2d_adds_layers_with_geometry(viewer_model, qtbot, notes):
    viewer = viewer_model
    noisy, _ = noisy_fluorescence_stack(1, (32, 32), seed=2)
    src = viewer.add_image(noisy[0], name="cells", scale=(0.5, 0.25), translate=(3.0, -2.0))
    w = _widget_for(viewer)
    w._layer_box.value = src
    w.run()
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    den, var = viewer.layers["cells denoised"], viewer.layers["cells noise variance"]
    for out in (den, var):
        np.testing.assert_allclose(out.scale, src.scale)
        np.testing.assert_allclose(out.translate, src.translate)
        assert out.data.shape == (32, 32) and out.data.dtype == np.float32
        assert out.metadata["scoredvi"]["preset"]["name"] == "tiny"
    assert den.data.any() and (var.data > 0).all()
    assert var.colormap.name == "magma"
    assert [ly.name for ly in viewer.layers] == ["cells", "cells noise variance", "cells denoised"]
    assert w._layer_box.value is src  # the outputs are never proposed as the next input
    viewer.layers.selection.active = den
    assert w._layer_box.value is src


def test_posterior_std_layer_and_manual_prior_weight(viewer_model, qtbot, notes):
    viewer = viewer_model
    noisy, _ = noisy_fluorescence_stack(1, (32, 32), seed=4)
    src = viewer.add_image(noisy[0], name="cells", scale=(2.0, 2.0))
    w = _widget_for(viewer)
    w._layer_box.value = src
    w._std_box.value = True
    w._lam_box.value = 1.5
    w.run()
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    std = viewer.layers["cells posterior std"]
    np.testing.assert_allclose(std.scale, src.scale)
    assert (std.data > 0).all() and std.contrast_limits[1] > 0
    meta = viewer.layers["cells denoised"].metadata["scoredvi"]
    assert meta["lam"] == 1.5 and meta["info"]["lam"] == 1.5 and not meta["info"]["lam_auto"]


def test_run_dask_stack_all_slices(viewer_model, qtbot, notes):
    da = pytest.importorskip("dask.array")
    viewer = viewer_model
    noisy, _ = noisy_fluorescence_stack(3, (32, 32), seed=3)
    src = viewer.add_image(da.from_array(noisy, chunks=(1, 32, 32)), name="stack")
    w = _widget_for(viewer)
    w._layer_box.value = src
    w._scope_box.value = SCOPE_ALL
    w.run()
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    den = viewer.layers["stack denoised"]
    assert isinstance(den.data, np.ndarray) and den.data.shape == (3, 32, 32)
    assert all(den.data[z].any() for z in range(3))
    assert w.slices_done == 3
    assert len(den.metadata["scoredvi"]["slices_done"]) == 3


def test_cancel_keeps_finished_slices(viewer_model, qtbot, notes):
    viewer = viewer_model
    noisy, _ = noisy_fluorescence_stack(4, (32, 32), seed=4)
    src = viewer.add_image(noisy, name="stack")
    w = _widget_for(viewer)
    w.preset_override = SLOW
    w._layer_box.value = src
    w._scope_box.value = SCOPE_ALL
    w.run()
    qtbot.waitUntil(lambda: w.slices_done >= 1, timeout=TIMEOUT)
    w.cancel()
    _wait_done(qtbot, w)
    den = viewer.layers["stack denoised"].data
    done = [z for z in range(4) if den[z].any()]
    assert 1 <= len(done) < 4 and done == list(range(len(done)))
    assert any("cancelled" in m for m in notes["info"]), notes["info"]


def test_bad_layers_notify(viewer_model, qtbot, notes):
    viewer = viewer_model
    labels = viewer.add_labels(np.zeros((32, 32), np.int32), name="lab")
    w = _widget_for(viewer)
    w.run(labels)
    assert any("Image layers" in m for m in notes["error"])
    bad = np.ones((32, 32), np.float32)
    bad[3, 3] = np.nan
    img = viewer.add_image(bad, name="nan")
    w.run(img)
    _wait_done(qtbot, w)
    assert len(notes["error"]) == 2, notes["error"]


def test_layer_box_follows_active_and_sample_command(viewer_model):
    viewer = viewer_model
    w = _widget_for(viewer)
    a = viewer.add_image(np.zeros((32, 32), np.float32), name="a")
    viewer.add_labels(np.zeros((32, 32), np.int32), name="lab")
    b = viewer.add_image(np.zeros((32, 32), np.float32), name="b")
    assert w._layer_box.value is b
    viewer.layers.selection.active = a
    assert w._layer_box.value is a
    assert {ly.name for ly in w._layer_box.choices} == {"a", "b"}
    viewer.open_sample("napari-scoredvi", "noisy_stack")
    assert "noisy fluorescence stack" in viewer.layers and "clean ground truth" in viewer.layers
    assert w._layer_box.value is viewer.layers["noisy fluorescence stack"]


def test_multiscale_uses_full_resolution(viewer_model, qtbot, notes):
    viewer = viewer_model
    noisy, _ = noisy_fluorescence_stack(1, (32, 32), seed=5)
    src = viewer.add_image([noisy[0], noisy[0, ::2, ::2]], multiscale=True, name="ms", scale=(2.0, 2.0))
    w = _widget_for(viewer)
    w.run(src)
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    assert any("multiscale" in m for m in notes["info"])
    den = viewer.layers["ms denoised"]
    assert den.data.shape == (32, 32) and den.data.any()
    np.testing.assert_allclose(den.scale, src.scale)


def test_range_scope_and_bad_range(viewer_model, qtbot, notes):
    viewer = viewer_model
    noisy, _ = noisy_fluorescence_stack(4, (32, 32), seed=5)
    src = viewer.add_image(noisy, name="stack")
    w = _widget_for(viewer)
    w._layer_box.value = src
    w._scope_box.value = SCOPE_RANGE
    assert not w._first_box.native.isHidden() and not w._last_box.native.isHidden()
    w._first_box.value, w._last_box.value = 1, 2
    w.run()
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    den = viewer.layers["stack denoised"].data
    assert [bool(den[z].any()) for z in range(4)] == [False, True, True, False]
    w._first_box.value, w._last_box.value = 3, 9
    w.run()
    assert any("outside the stack" in m for m in notes["error"]), notes["error"]


def test_rgb_layer(viewer_model, qtbot, notes):
    viewer = viewer_model
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(120, 30, (32, 40, 3)), 0, 255).astype(np.uint8)
    src = viewer.add_image(img, name="rgb", rgb=True, scale=(0.5, 0.5))
    w = _widget_for(viewer)
    w.run(src)
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    den, var = viewer.layers["rgb denoised"], viewer.layers["rgb noise variance"]
    assert den.rgb and den.data.shape == img.shape and den.data.any()
    assert var.data.shape == img.shape[:2] and (var.data > 0).all()
    np.testing.assert_allclose(var.scale, (0.5, 0.5))


def test_batch_output_opens_in_napari_with_its_scale(viewer_model, tmp_path):
    """The batch command's OME-Zarr output opens in napari (napari-ome-zarr) with the input's pixel sizes."""
    pytest.importorskip("zarr", minversion="3")
    pytest.importorskip("napari_ome_zarr")
    import tifffile

    from napari_scoredvi.batch import denoise_volume
    from napari_scoredvi.settings import DenoiseSettings

    noisy, _ = noisy_fluorescence_stack(2, (32, 32), seed=6)
    tif = tmp_path / "in.tif"
    tifffile.imwrite(tif, noisy, imagej=True, resolution=(1 / 0.25, 1 / 0.25), metadata={"axes": "ZYX",
                                                                                        "spacing": 2.0})
    out = denoise_volume(tif, tmp_path / "out.zarr", DenoiseSettings(TINY, "cpu"))
    viewer = viewer_model
    layers = viewer.open(str(out / "denoised"), plugin="napari-ome-zarr")
    assert len(layers) == 1
    data = layers[0].data
    level0 = data[0] if layers[0].multiscale else data
    assert tuple(level0.shape) == noisy.shape and np.isfinite(np.asarray(level0)).all()
    np.testing.assert_allclose(layers[0].scale, [2.0, 0.25, 0.25])
