"""The napari plugin with Qt: manifest, sample data, the dock widget's form, and runs started from the
widget (driven by :class:`DenoiseRequest` objects; the decisions themselves are tested headless in
tests/napari)."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from viewer_fixtures import gl_extensions_known  # noqa: E402, F401 - autouse

from napari_scoredvi._qt import denoise_widget  # noqa: E402
from napari_scoredvi._qt.denoise_form import NO_FIT_NOTE  # noqa: E402
from napari_scoredvi._qt.denoise_widget import (  # noqa: E402
    BAR_STEPS,
    RUN_CLUSTER,
    RUN_HERE,
    SCOPE_ALL,
    SCOPE_RANGE,
    SCOPE_SLICE,
    ScoreDVIWidget,
)
from napari_scoredvi.engine.settings import DenoiseSettings  # noqa: E402
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack  # noqa: E402
from napari_scoredvi.napari.layers import source_layer_name  # noqa: E402
from napari_scoredvi.napari.request import DenoiseRequest  # noqa: E402
from napari_scoredvi.napari.sample_data import make_sample_data  # noqa: E402
from napari_scoredvi.pipeline.events import SliceDone, SliceStep  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60_000
#: slices of the stacks whose runs are stopped mid-stack: `fast` takes a few tenths of a second per
#: 64 x 64 slice, so most of such a run is still ahead when its first slice is done
LONG, LONG_SIZE = 6, (64, 64)


def _request(layer, preset="fast", lam=None, **kwargs) -> DenoiseRequest:
    """A run of ``layer`` with ``preset`` (a name, or the variational ``short_fit``) on the CPU."""
    return DenoiseRequest(layer, DenoiseSettings(preset, "cpu", lam=lam), **kwargs)


@pytest.fixture
def viewer_model(qapp):
    """A napari ``ViewerModel``: layers, dims and layer selection, all the widget uses, without a
    canvas. A canvas needs OpenGL, which Qt 5's offscreen platform has only on an X display; the
    tests that need the window itself (docking) use ``make_napari_viewer`` and add no layers."""
    from napari.components import ViewerModel
    from npe2 import PluginManager

    PluginManager.instance().discover()  # readers (napari's own, napari-ome-zarr) whatever ran before
    return ViewerModel()


def _widget_for(viewer) -> ScoreDVIWidget:
    w = ScoreDVIWidget(viewer)
    w._run_on_box.value = RUN_HERE  # whatever an earlier test left remembered
    return w


def _out(viewer, source: str, output: str = "denoised"):
    """Output layer ``output`` of the layer named ``source``."""
    return viewer.layers[source_layer_name(viewer.layers[source], output)]


def _wait_done(qtbot, w):
    qtbot.waitUntil(lambda: w.worker is None, timeout=TIMEOUT)


def _long_stack_run(qtbot, w, layer, out) -> None:
    """Start a `fast` all-slices run of ``layer`` (a :data:`LONG` stack) into ``out``; return once its
    first slice is done."""
    w.run(_request(layer, scope=SCOPE_ALL, output=out))
    qtbot.waitUntil(lambda: w.slices_done >= 1, timeout=TIMEOUT)


def _long_stack(seed: int) -> np.ndarray:
    return noisy_fluorescence_stack(LONG, LONG_SIZE, seed=seed)[0]


def _long_stack_run_of_new_layer(qtbot, viewer, out, seed: int) -> tuple:
    """A :data:`LONG` stack layer "stack" and a widget running :func:`_long_stack_run` on it: (widget, layer)."""
    src = viewer.add_image(_long_stack(seed), name="stack")
    w = _widget_for(viewer)
    _long_stack_run(qtbot, w, src, out)
    return w, src


def _shown(widget) -> bool:
    return not widget.native.isHidden()


def test_manifest_root_matches_package():
    assert (ROOT / "napari.yaml").read_text() == (ROOT / "src/napari_scoredvi/napari.yaml").read_text()


def test_manifest_valid_and_registered():
    from npe2 import PluginManager, PluginManifest

    mf = PluginManifest.from_distribution("napari-scoredvi")
    assert {c.id for c in mf.contributions.commands} >= {"napari-scoredvi.make_widget", "napari-scoredvi.sample"}
    pm = PluginManager.instance()
    pm.discover()
    assert pm.get_manifest("napari-scoredvi").name == "napari-scoredvi"


def test_sample_data():
    layers = make_sample_data()
    assert [lt for _, _, lt in layers] == ["image", "image"]
    assert layers[1][0].dtype == np.uint16 and layers[0][0].shape == layers[1][0].shape


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


def test_the_form_as_a_request(viewer_model, tmp_path):
    viewer = viewer_model
    src = viewer.add_image(np.zeros((3, 4, 32, 32), np.float32), name="tz")
    viewer.dims.set_current_step(0, 2)
    viewer.dims.set_current_step(1, 1)
    w = _widget_for(viewer)
    r = w.request()
    assert r.layer is src and r.shown == (2, 1) and r.scope == "current 2D slice" and r.output is None
    assert r.settings.preset.name == "fast" and r.settings.device == "auto" and r.settings.lam is None
    assert r.settings.warm_start and not r.posterior_std and r.run_on == RUN_HERE
    w._preset_box.value, w._device_box.value, w._lam_box.value = "variational", "cpu", 1.5
    w._scope_box.value, w._warm_box.value, w._std_box.value = SCOPE_RANGE, False, True
    w._first_box.value, w._last_box.value, w._output_box.value = 1, 2, tmp_path / "o.zarr"
    w._run_on_box.value, w._scheduler_box.value = RUN_CLUSTER, " tcp://h:8786 "
    r = w.request()
    assert (r.settings.preset.name, r.settings.device, r.settings.lam, r.settings.warm_start) == (
        "variational", "cpu", 1.5, False)
    assert (r.scope, r.first, r.last, r.output, r.posterior_std) == (SCOPE_RANGE, 1, 2, tmp_path / "o.zarr", True)
    assert r.on_cluster and r.scheduler == "tcp://h:8786"
    # the fit's controls count only for the variational preset: fast gets neither the prior weight nor
    # the "no warm start" left in the hidden boxes
    w._preset_box.value = "fast"
    r = w.request()
    assert (r.settings.preset.name, r.settings.lam, r.settings.warm_starts) == ("fast", None, False)


def test_the_fit_controls_show_only_for_the_variational_preset(viewer_model):
    w = _widget_for(viewer_model)
    w._scope_box.value = SCOPE_ALL
    for preset in ("fast", "balanced"):
        w._preset_box.value = preset
        assert not _shown(w._warm_box) and not _shown(w._lam_box)
        assert _shown(w._fit_note) and w._fit_note.value == NO_FIT_NOTE.format(preset=preset)
        assert preset in w._fit_note.value and "variational" in w._fit_note.value
    w._preset_box.value = "variational"
    assert _shown(w._warm_box) and _shown(w._lam_box) and not _shown(w._fit_note)
    w._scope_box.value = SCOPE_SLICE  # one slice has no neighbour to warm-start from; the weight still counts
    assert not _shown(w._warm_box) and _shown(w._lam_box) and not _shown(w._fit_note)
    w._preset_box.value = "fast"
    assert not _shown(w._lam_box) and _shown(w._fit_note)


def test_form_shows_what_the_scope_needs(viewer_model):
    w = _widget_for(viewer_model)
    assert w._first_box.native.isHidden() and w._output_box.native.isHidden()
    w._scope_box.value = SCOPE_RANGE
    assert not w._first_box.native.isHidden() and not w._last_box.native.isHidden()
    assert not w._output_box.native.isHidden() and w._scheduler_box.native.isHidden()
    w._run_on_box.value = RUN_CLUSTER
    assert not w._scheduler_box.native.isHidden()
    w._scope_box.value = SCOPE_ALL
    assert w._first_box.native.isHidden()


def test_run_2d_adds_layers_with_geometry(viewer_model, qtbot, notes):
    viewer = viewer_model
    noisy, _ = noisy_fluorescence_stack(1, (32, 32), seed=2)
    src = viewer.add_image(noisy[0], name="cells", scale=(0.5, 0.25), translate=(3.0, -2.0))
    w = _widget_for(viewer)
    w.run(_request(src))
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    den, var = _out(viewer, "cells"), _out(viewer, "cells", "noise_variance")
    for out in (den, var):
        np.testing.assert_allclose(out.scale, src.scale)
        np.testing.assert_allclose(out.translate, src.translate)
        assert out.data.shape == (32, 32) and out.data.dtype == np.float32
        assert out.metadata["scoredvi"]["preset"]["name"] == "fast"
    assert den.data.any() and (var.data > 0).all()
    assert var.colormap.name == "magma"
    # the maps above the denoised layer: shown with their eye, they are seen on top of it
    assert [ly.name for ly in viewer.layers] == ["cells", "denoised (cells)", "noise variance [ADU²] (cells)"]
    assert w._layer_box.value is src  # the outputs are never proposed as the next input
    viewer.layers.selection.active = den
    assert w._layer_box.value is src
    assert any("denoised 1 slice(s) of 'cells'" in m for m in notes["info"]), notes["info"]
    before = den.data
    w.run(_request(src))  # the same source again: the in-memory layers are reused
    _wait_done(qtbot, w)
    assert _out(viewer, "cells").data is before


def test_posterior_std_layer(viewer_model, qtbot, notes):
    viewer = viewer_model
    noisy, _ = noisy_fluorescence_stack(1, (32, 32), seed=4)
    src = viewer.add_image(noisy[0], name="cells", scale=(2.0, 2.0))
    w = _widget_for(viewer)
    w.run(_request(src, posterior_std=True))
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    std = _out(viewer, "cells", "posterior_std")
    np.testing.assert_allclose(std.scale, src.scale)
    assert (std.data > 0).all() and std.contrast_limits[1] > 0
    meta = _out(viewer, "cells").metadata["scoredvi"]
    assert meta["lam"] == "auto" and meta["info"]["lam"] is None  # fast has no fit to weigh


def test_a_manual_prior_weight_reaches_the_fit(viewer_model, qtbot, notes, short_fit):
    viewer = viewer_model
    noisy, _ = noisy_fluorescence_stack(1, (32, 32), seed=4)
    src = viewer.add_image(noisy[0], name="cells")
    w = _widget_for(viewer)
    w.run(_request(src, short_fit, lam=1.5))
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    meta = _out(viewer, "cells").metadata["scoredvi"]
    assert meta["lam"] == 1.5 and meta["info"]["lam"] == 1.5 and not meta["info"]["lam_auto"]
    assert meta["info"]["iterations"] >= short_fit.iterations  # fit steps ran (more if a diverged fit was redone)


def test_stack_goes_to_an_ome_zarr_store_shown_lazily(viewer_model, qtbot, notes, tmp_path):
    """All slices: outputs written into an OME-Zarr store (the batch layout) and shown as lazy dask
    layers with the source's geometry; equal to the batch pipeline at the same seed."""
    da = pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr", minversion="3")
    from napari_scoredvi.pipeline.run import denoise_volume

    viewer = viewer_model
    noisy, _ = noisy_fluorescence_stack(3, (32, 32), seed=3)
    src = viewer.add_image(da.from_array(noisy, chunks=(1, 32, 32)), name="stack", scale=(2.0, 0.5, 0.5),
                           translate=(1.0, 0.0, 3.0))
    out = tmp_path / "stack-out.zarr"
    w = _widget_for(viewer)
    w.run(_request(src, scope=SCOPE_ALL, output=out))
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    den = _out(viewer, "stack")
    assert isinstance(den.data, da.Array) and den.data.shape == (3, 32, 32)
    assert np.isfinite(np.asarray(den.data)).all() and w.slices_done == 3
    np.testing.assert_allclose(den.scale, src.scale)
    np.testing.assert_allclose(den.translate, src.translate)
    assert den.metadata["scoredvi"]["store"] == str(out.resolve())
    assert len(den.metadata["scoredvi"]["slices_done"]) == 3
    assert w._status.value == "3/3 slice(s) done" and w._progress.value == w._progress.max == BAR_STEPS
    group = zarr.open_group(str(out), mode="r")
    assert group["done"][:].tolist() == [1, 1, 1] and group.attrs["napari_scoredvi"]["status"] == "complete"
    ms = group["denoised"].attrs["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.0, 0.5, 0.5]
    # the same arrays as the batch command at the same seed
    import tifffile

    tifffile.imwrite(tmp_path / "s.tif", noisy, ome=True, metadata={"axes": "ZYX"})
    batch = denoise_volume(tmp_path / "s.tif", tmp_path / "batch.zarr", DenoiseSettings("fast", "cpu"))
    np.testing.assert_allclose(np.asarray(den.data), zarr.open_array(str(batch / "denoised" / "0"))[:],
                               rtol=1e-6, atol=1e-4)


def test_rerun_asks_then_resumes_or_replaces(viewer_model, qtbot, notes, tmp_path):
    zarr = pytest.importorskip("zarr", minversion="3")
    viewer = viewer_model
    src = viewer.add_image(_long_stack(seed=4), name="stack")
    out = tmp_path / "o.zarr"
    w = _widget_for(viewer)
    _long_stack_run(qtbot, w, src, out)
    w.cancel()
    _wait_done(qtbot, w)
    flags = zarr.open_array(str(out / "done"), mode="r")[:].tolist()
    assert 1 <= sum(flags) < LONG and any("kept on disk" in m for m in notes["info"]), (flags, notes)
    assert zarr.open_group(str(out), mode="r").attrs["napari_scoredvi"]["status"] == "interrupted"
    before = zarr.open_array(str(out / "denoised" / "0"), mode="r")[0]
    asked = []
    w.ask_existing = lambda path, owner=None: asked.append(path) or "cancel"
    w.run(_request(src, scope=SCOPE_ALL, output=out))
    assert asked == [out] and w.worker is None  # cancelled: nothing started, nothing touched
    assert w._status.value.startswith("not started: the output exists and was kept") and w._progress.value == 0
    w.ask_existing = lambda path, owner=None: "resume"
    w.run(_request(src, "balanced", scope=SCOPE_ALL, output=out))  # another preset: cannot resume, says what differs
    assert any("different preset" in m for m in notes["error"]), notes["error"]
    w.run(_request(src, scope=SCOPE_ALL, output=out))
    assert "done before" in w._status.value
    _wait_done(qtbot, w)
    assert zarr.open_array(str(out / "done"), mode="r")[:].tolist() == [1] * LONG
    np.testing.assert_array_equal(zarr.open_array(str(out / "denoised" / "0"), mode="r")[0], before)
    runs = zarr.open_group(str(out), mode="r").attrs["napari_scoredvi"]["runs"]
    assert [r["resumed"] for r in runs] == [False, True]
    w.ask_existing = lambda path, owner=None: "replace"
    w.run(_request(src, scope=SCOPE_RANGE, first=0, last=1, output=out))
    _wait_done(qtbot, w)
    meta = zarr.open_group(str(out), mode="r").attrs["napari_scoredvi"]
    assert meta["parameters"]["preset"]["name"] == "fast" and len(meta["runs"]) == 1
    assert zarr.open_array(str(out / "done"), mode="r")[:].tolist() == [1, 1] + [0] * (LONG - 2)  # started again


def test_default_output_in_the_form(viewer_model, tmp_path):
    import tifffile

    from napari_scoredvi.napari.layers import default_output

    viewer = viewer_model
    noisy, _ = noisy_fluorescence_stack(2, (32, 32), seed=4)
    mem = viewer.add_image(noisy, name="in memory")
    tif = tmp_path / "cells.ome.tif"
    tifffile.imwrite(tif, noisy, ome=True, metadata={"axes": "ZYX"})
    filed = viewer.open(str(tif), plugin="napari")[0]
    w = _widget_for(viewer)
    w._scope_box.value = SCOPE_ALL
    w._layer_box.value = filed
    assert w._output_box.value == tmp_path / "cells-denoised.zarr" and not w._output_note.visible
    w._layer_box.value = mem
    assert w._output_box.value == default_output(mem)[0] and "deleted when napari closes" in w._output_note.value
    w._output_box.value = tmp_path / "mine.zarr"  # typed by the user for this layer: never carried to another
    w._layer_box.value = filed
    assert w._output_box.value == tmp_path / "cells-denoised.zarr"
    w._layer_box.value = mem  # back: the path typed for it
    assert w._output_box.value == tmp_path / "mine.zarr" and w.request().output == tmp_path / "mine.zarr"


def test_a_fast_run_shows_the_time_left_and_a_moving_bar(viewer_model, qtbot, notes, tmp_path, monkeypatch):
    """From the first prior pass of the first slice on, the status says the time left; the bar (and
    napari's activity bar with it) moves in thousandths of the run's work, up to the end."""
    bars, napari_progress = [], denoise_widget.activity

    def activity(**kwargs):  # napari's progress bar, kept to look at after the run
        bars.append(napari_progress(**kwargs))
        return bars[-1]

    monkeypatch.setattr(denoise_widget, "activity", activity)
    viewer = viewer_model
    src = viewer.add_image(noisy_fluorescence_stack(3, (32, 32), seed=6)[0], name="stack")
    w = _widget_for(viewer)
    w.run(_request(src, scope=SCOPE_ALL, output=tmp_path / "out.zarr"))
    assert w._status.value == "running on 3 slice(s)" and w._progress.value == 0
    seen = []  # after each prior pass and slice: (status line, our bar, napari's bar)
    w.worker.yielded.connect(lambda event: seen.append((w._status.value, w._progress.value, bars[-1].n))
                             if isinstance(event, (SliceStep, SliceDone)) else None)
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    statuses, values = [s for s, _, _ in seen], [v for _, v, _ in seen]
    # the first prior pass of the first slice already gives a time left
    assert statuses[0].startswith("0/3 slice(s) done, about ") and statuses[0].endswith(" left"), statuses
    assert all(s.endswith(" left") for s in statuses if not s.startswith("3/3")), statuses
    assert any(s.startswith("2/3 slice(s) done, about ") for s in statuses), statuses
    assert 0 < values[0] < 100 and values == sorted(values) and len(set(values)) >= 10, values  # moves, never back
    assert all(ours == theirs for _, ours, theirs in seen)  # napari's activity bar moves with ours
    assert w._status.value == "3/3 slice(s) done" and w._progress.value == BAR_STEPS
    assert len(bars) == 1 and bars[0].total == BAR_STEPS and bars[0].n == BAR_STEPS and w._activity is None


def test_cancel_lands_within_a_slice_and_keeps_the_finished_ones(viewer_model, qtbot, notes, tmp_path):
    """Cancel stops a `balanced` slice that has seconds of work left within a prior pass or two; the
    slices finished before it stay on disk and in the layers, the one in progress is not written."""
    zarr = pytest.importorskip("zarr", minversion="3")
    import time

    viewer = viewer_model
    noisy = noisy_fluorescence_stack(3, (256, 256), seed=4)[0]
    noisy[0] = 100  # a blank frame: done at once (returned unchanged), then two slices of seconds each
    src = viewer.add_image(noisy, name="stack")
    w = _widget_for(viewer)
    out = tmp_path / "out.zarr"
    w.run(_request(src, "balanced", scope=SCOPE_ALL, output=out))
    qtbot.waitUntil(lambda: w.slices_done == 1 and w.active.progress.units_done >= 1, timeout=TIMEOUT)
    passes = w.active.progress.units_left()
    assert passes > 5, passes  # the slice in progress has most of its work ahead
    t0 = time.monotonic()
    w.cancel()
    _wait_done(qtbot, w)
    assert time.monotonic() - t0 < 2.0
    assert zarr.open_array(str(out / "done"), mode="r")[:].tolist() == [1, 0, 0]
    den = np.asarray(_out(viewer, "stack").data)
    assert (den[0] == 100).all() and np.isnan(den[1:]).all()
    assert any("cancelled: 1 of 3 slices done (kept on disk" in m for m in notes["info"]), notes["info"]
    assert w._status.value.startswith("cancelled: 1 of 3 slices done")
    assert zarr.open_group(str(out), mode="r").attrs["napari_scoredvi"]["status"] == "interrupted"


def test_errors_are_notifications(viewer_model, qtbot, notes):
    viewer = viewer_model
    labels = viewer.add_labels(np.zeros((32, 32), np.int32), name="lab")
    w = _widget_for(viewer)
    w.run(_request(labels))
    assert any("Image layers" in m for m in notes["error"])
    w.run(_request(None))
    assert notes["error"][-1] == "ScoreDVI: no image layer selected"
    bad = np.ones((32, 32), np.float32)
    bad[3, 3] = np.nan
    img = viewer.add_image(bad, name="nan")
    w.run(_request(img))  # fails in the worker
    _wait_done(qtbot, w)
    assert len(notes["error"]) == 3 and "NaN" in notes["error"][-1], notes["error"]
    assert w._run_button.enabled and not w._cancel_button.enabled


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
    w.run(_request(src))
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    assert any("multiscale" in m for m in notes["info"])
    den = _out(viewer, "ms")
    assert den.data.shape == (32, 32) and den.data.any()
    np.testing.assert_allclose(den.scale, src.scale)


def test_range_scope_and_bad_range(viewer_model, qtbot, notes, tmp_path):
    viewer = viewer_model
    noisy, _ = noisy_fluorescence_stack(4, (32, 32), seed=5)
    src = viewer.add_image(noisy, name="stack")
    w = _widget_for(viewer)
    w.run(_request(src, scope=SCOPE_RANGE, first=1, last=2, output=tmp_path / "range.zarr"))
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    den = np.asarray(_out(viewer, "stack").data)
    assert [bool(np.isfinite(den[z]).all()) for z in range(4)] == [False, True, True, False]
    meta = pytest.importorskip("zarr").open_group(str(tmp_path / "range.zarr"), mode="r").attrs["napari_scoredvi"]
    assert meta["status"] == "partial" and meta["parameters"]["input"] == "napari layer 'stack'"
    w.run(_request(src, scope=SCOPE_RANGE, first=3, last=9, output=tmp_path / "range.zarr"))
    assert any("outside the stack" in m for m in notes["error"]), notes["error"]


def test_rgb_layer(viewer_model, qtbot, notes):
    viewer = viewer_model
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(120, 30, (32, 40, 3)), 0, 255).astype(np.uint8)
    src = viewer.add_image(img, name="rgb", rgb=True, scale=(0.5, 0.5))
    w = _widget_for(viewer)
    w.run(_request(src))
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    den, var = _out(viewer, "rgb"), _out(viewer, "rgb", "noise_variance")
    assert den.rgb and den.data.shape == img.shape and den.data.any()
    assert var.data.shape == img.shape[:2] and (var.data > 0).all()
    np.testing.assert_allclose(var.scale, (0.5, 0.5))


@pytest.fixture(scope="module")
def cluster():
    """A dask LocalCluster with worker processes (as a lab GPU machine would run them)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None) as cl:
        yield cl


def test_cluster_run_from_the_widget_in_a_real_viewer(make_napari_viewer, qtbot, notes, tmp_path, cluster):
    """Run on a dask cluster: an in-memory layer is sent slice by slice, a TIFF layer is read by path on
    the workers; both equal a local run at the same seed. Cancel stops the cluster's tasks; the
    scheduler address is remembered."""
    zarr = pytest.importorskip("zarr", minversion="3")
    import tifffile

    from napari_scoredvi.napari import remembered

    viewer = make_napari_viewer()
    noisy, _ = noisy_fluorescence_stack(3, (32, 32), seed=7)
    mem = viewer.add_image(noisy, name="mem")
    tif = tmp_path / "filed.tif"
    tifffile.imwrite(tif, noisy, ome=True, metadata={"axes": "ZYX"})
    filed = viewer.open(str(tif), plugin="napari")[0]
    _, w = viewer.window.add_plugin_dock_widget("napari-scoredvi", "ScoreDVI denoise")
    local = tmp_path / "local.zarr"
    w.run(_request(mem, scope=SCOPE_ALL, output=local))
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    ref = zarr.open_array(str(local / "denoised" / "0"))[:]

    address = cluster.scheduler_address
    for layer, out in ((mem, tmp_path / "mem.zarr"), (filed, tmp_path / "filed.zarr")):
        w.run(_request(layer, scope=SCOPE_ALL, output=out, run_on=RUN_CLUSTER, scheduler=address))
        _wait_done(qtbot, w)
        assert not notes["error"], notes["error"]
        meta = zarr.open_group(str(out), mode="r").attrs["napari_scoredvi"]
        assert meta["status"] == "complete" and meta["runs"][-1]["scheduler"] == address
        np.testing.assert_allclose(zarr.open_array(str(out / "denoised" / "0"))[:], ref, rtol=1e-4, atol=1e-3)
        assert np.isfinite(np.asarray(_out(viewer, layer.name).data)).all()
    assert meta["parameters"]["input"] == str(tif.resolve())
    assert remembered.load() == {"run_on": RUN_CLUSTER, "scheduler": address}
    new = ScoreDVIWidget(viewer)  # a new session's widget
    assert new._run_on_box.value == RUN_CLUSTER and new._scheduler_box.value == address

    # cancel: the run stops, its tasks are released, the finished slices are kept and resume works
    out = tmp_path / "cancel.zarr"
    long = viewer.add_image(_long_stack(seed=7), name="long")
    w.run(_request(long, scope=SCOPE_ALL, output=out, run_on=RUN_CLUSTER, scheduler=address))
    qtbot.waitUntil(lambda: w.slices_done >= 1, timeout=TIMEOUT)  # reported one by one, not once a chain is done
    assert w.worker is not None
    w.cancel()
    _wait_done(qtbot, w)
    client = __import__("distributed").Client(address, set_as_default=False)
    try:
        qtbot.waitUntil(lambda: not any(client.processing().values()), timeout=TIMEOUT)
    finally:
        client.close()
    meta = zarr.open_group(str(out), mode="r").attrs["napari_scoredvi"]
    flags = zarr.open_array(str(out / "done"), mode="r")[:].tolist()
    assert meta["status"] == "interrupted" and 1 <= sum(flags) < LONG, flags
    kept = zarr.open_array(str(out / "denoised" / "0"))[0]
    w.ask_existing = lambda path, owner=None: "resume"
    w.run(_request(long, scope=SCOPE_ALL, output=out, run_on=RUN_CLUSTER, scheduler=address))  # resume there
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    meta = zarr.open_group(str(out), mode="r").attrs["napari_scoredvi"]
    assert meta["status"] == "complete" and [r["resumed"] for r in meta["runs"]] == [False, True]
    np.testing.assert_array_equal(zarr.open_array(str(out / "denoised" / "0"))[0], kept)


def test_closing_napari_mid_run_stops_cleanly(make_napari_viewer, qtbot, notes, tmp_path):
    """Closing the viewer during a run: no traceback from the worker thread, finished slices on disk."""
    zarr = pytest.importorskip("zarr", minversion="3")
    viewer = make_napari_viewer()
    src = viewer.add_image(_long_stack(seed=8), name="stack")
    _, w = viewer.window.add_plugin_dock_widget("napari-scoredvi", "ScoreDVI denoise")
    out = tmp_path / "closed.zarr"
    _long_stack_run(qtbot, w, src, out)
    worker = w.worker
    assert worker is not None, (notes, w._status.value)
    viewer.close()
    qtbot.waitUntil(lambda: w.worker is None, timeout=TIMEOUT)
    assert worker.abort_requested and not notes["error"], notes["error"]
    meta = zarr.open_group(str(out), mode="r").attrs["napari_scoredvi"]
    flags = zarr.open_array(str(out / "done"), mode="r")[:].tolist()
    assert meta["status"] == "interrupted" and 1 <= sum(flags) < LONG


def test_cluster_problems_are_notifications(viewer_model, qtbot, notes, monkeypatch, tmp_path):
    import importlib.util

    noisy, _ = noisy_fluorescence_stack(2, (32, 32), seed=9)
    w = _widget_for(viewer_model)
    src = viewer_model.add_image(noisy, name="stack")
    out = tmp_path / "c.zarr"
    w.run(_request(src, scope=SCOPE_ALL, output=out, run_on=RUN_CLUSTER))
    assert "scheduler's address" in notes["error"][-1] and w.worker is None
    assert not out.exists()
    if importlib.util.find_spec("distributed") is not None:  # nobody listens there: a clear error, soon
        from napari_scoredvi.pipeline import cluster

        monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
        w.run(_request(src, scope=SCOPE_ALL, output=out, run_on=RUN_CLUSTER, scheduler="tcp://127.0.0.1:1"))
        _wait_done(qtbot, w)
        assert "could not connect to the dask scheduler at 'tcp://127.0.0.1:1'" in notes["error"][-1], notes


def test_a_bad_slice_of_a_stack_is_a_notification(viewer_model, qtbot, notes, tmp_path):
    zarr = pytest.importorskip("zarr", minversion="3")
    noisy, _ = noisy_fluorescence_stack(3, (32, 32), seed=12)
    bad = noisy.astype(np.float32)
    bad[1, 4, 4] = np.nan
    w = _widget_for(viewer_model)
    w.run(_request(viewer_model.add_image(bad, name="bad"), scope=SCOPE_ALL, output=tmp_path / "bad.zarr"))
    _wait_done(qtbot, w)
    assert len(notes["error"]) == 1 and "slice Z=1 failed" in notes["error"][0], notes["error"]
    assert zarr.open_array(str(tmp_path / "bad.zarr" / "done"), mode="r")[:].tolist() == [1, 0, 0]
    assert w._status.value.startswith("failed: 1/3")


def test_removing_the_source_layer_stops_its_run(viewer_model, qtbot, notes, tmp_path):
    viewer = viewer_model
    w, src = _long_stack_run_of_new_layer(qtbot, viewer, tmp_path / "removed.zarr", seed=9)
    viewer.layers.remove(src)
    _wait_done(qtbot, w)
    assert any("was removed" in m for m in notes["info"]) and not notes["error"], notes
    flags = __import__("zarr").open_array(str(tmp_path / "removed.zarr" / "done"), mode="r")[:].tolist()
    assert 1 <= sum(flags) < LONG


def test_a_current_slice_is_denoised_with_its_neighbours(viewer_model, qtbot, notes):
    from napari_scoredvi.engine.settings import DEFAULT_CONTEXT

    viewer = viewer_model
    flat = viewer.add_image(noisy_fluorescence_stack(1, (32, 32), seed=2)[0][0], name="flat")
    src = viewer.add_image(noisy_fluorescence_stack(4, (32, 32), seed=2)[0], name="stack")
    w = _widget_for(viewer)
    assert w._context_box.value == DEFAULT_CONTEXT and w.request().settings.context == DEFAULT_CONTEXT
    w._layer_box.value = flat
    assert not w._context_box.visible  # a 2D image has no neighbours
    w._layer_box.value = src
    w._preset_box.value = "variational"
    assert not w._context_box.visible and w.request().settings.stack_context == 0  # the fit stays 2D
    w._preset_box.value = "fast"
    w._context_box.value = 1
    viewer.dims.set_point(0, 2)  # the shown slice: neighbours on both sides
    w.run(w.request())
    _wait_done(qtbot, w)
    assert not notes["error"], notes["error"]
    meta = _out(viewer, "stack").metadata["scoredvi"]
    assert meta["context"] == 1 and meta["info"]["context"] == 1 and len(meta["info"]["context_shifts"]) == 2
