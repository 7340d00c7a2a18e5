"""The noise-calibration dock widget with a real viewer, on the plugin's sample data."""

import csv
import importlib
import json

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("matplotlib")

from viewer_fixtures import gl_extensions_known  # noqa: E402, F401 - autouse

from napari_scoredvi._qt import calibration_widget as _calibration_widget  # noqa: E402
from napari_scoredvi._qt.calibration_widget import NoiseCalibrationWidget  # noqa: E402

SAMPLE = "noisy fluorescence stack"
#: the sample stack (samples.noisy_fluorescence_stack): Poisson counts read directly as ADU, i.e. gain
#: 1 ADU/e-, read noise 3 ADU (= 3 e-), offset 100 ADU
SAMPLE_GAIN, SAMPLE_READ_NOISE, SAMPLE_OFFSET = 1.0, 3.0, 100.0


@pytest.fixture
def errors(monkeypatch):
    seen = []
    monkeypatch.setattr(_calibration_widget, "show_error", seen.append)
    return seen


def test_manifest_has_the_widget():
    from npe2 import PluginManifest

    mf = PluginManifest.from_distribution("napari-scoredvi")
    commands = {c.id: c for c in mf.contributions.commands}
    cmd = commands["napari-scoredvi.make_calibration_widget"]
    module, name = cmd.python_name.split(":")
    assert getattr(importlib.import_module(module), name) is NoiseCalibrationWidget
    assert "Noise calibration (photon transfer)" in {w.display_name for w in mf.contributions.widgets}


def test_calibrates_the_sample_slice_shown_and_exports(make_napari_viewer, tmp_path, errors):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-scoredvi", "noisy_stack")
    _, w = viewer.window.add_plugin_dock_widget("napari-scoredvi", "Noise calibration (photon transfer)")
    assert isinstance(w, NoiseCalibrationWidget)
    layer = viewer.layers[SAMPLE]
    w._layer_box.value = layer
    w._offset_box.value = str(SAMPLE_OFFSET)
    w._gain_box.value = str(SAMPLE_GAIN)
    viewer.dims.set_current_step(0, 2)
    r = w.compute()
    assert not errors, errors
    # the fit is of the slice shown: the same numbers as the core on that slice
    from napari_scoredvi.calibration.photon_transfer import calibrate

    same = calibrate(layer.data[2], offset=SAMPLE_OFFSET)
    assert r.gain == same.gain and w.result is r
    # 256 x 256 fluorescence-like slices with few flat regions: the estimator reads the gain a little
    # low (0.87-0.97 on the 5 sample slices), so 15% here; the 10% target is tested on flat targets
    # in test_calibration.py
    assert r.gain == pytest.approx(SAMPLE_GAIN, rel=0.15)
    assert r.read_noise_e == pytest.approx(SAMPLE_READ_NOISE, rel=0.25)
    assert "gain:" in w._status.value and "measured / known gain" in w._status.value
    # the noise's lag-1 correlation, listed and in the plot's numbers: the sample's noise is pixel-independent
    lag1 = f"noise lag-1 correlation: y {r.noise_lag1_y:.2f}, x {r.noise_lag1_x:.2f}"
    assert abs(r.noise_lag1_y) < 0.1 and abs(r.noise_lag1_x) < 0.1
    assert lag1 in w._status.value.splitlines() and "spatially correlated" not in w._status.value
    ax = w.figure.axes[0]
    assert ax.get_xlabel() == "intensity (ADU)" and len(ax.lines) >= 1 and "slice [2]" in ax.get_title()
    assert any(lag1 in t.get_text() for t in ax.texts)
    viewer.dims.set_current_step(0, 4)  # another slice: another fit
    assert w.compute().gain == calibrate(layer.data[4]).gain
    written = w.export(tmp_path / "calib.json")
    assert [p.name for p in written] == ["calib.json", "calib.csv", "calib.png"]
    d = json.loads(written[0].read_text())
    assert d["gain"] == pytest.approx(w.result.gain) and d["offset"] == SAMPLE_OFFSET
    assert d["noise_lag1_y"] == pytest.approx(w.result.noise_lag1_y) and d["units"]["noise_lag1_x"] == "1"
    rows = list(csv.DictReader(written[1].open()))
    assert len(rows) == len(w.result.measured.intensity)
    assert written[2].read_bytes()[:4] == b"\x89PNG"


def test_overlays_a_noise_variance_layer(make_napari_viewer, errors):
    """A ScoreDVI-like output pair (here the true variance map and the clean image) adds the map's curve,
    binned by the matching "denoised" layer."""
    viewer = make_napari_viewer()
    viewer.open_sample("napari-scoredvi", "noisy_stack")
    clean = viewer.layers["clean ground truth"].data
    true_var = SAMPLE_GAIN * (clean - SAMPLE_OFFSET) + SAMPLE_READ_NOISE**2
    meta = {"scoredvi": {"source": SAMPLE}}
    viewer.add_image(clean, name=f"denoised ({SAMPLE})", metadata=meta)
    var_layer = viewer.add_image(true_var, name=f"noise variance [ADU²] ({SAMPLE})", metadata=meta)
    w = NoiseCalibrationWidget(viewer)
    w._layer_box.value = viewer.layers[SAMPLE]
    w._map_box.value = var_layer
    r = w.compute()
    assert not errors, errors
    assert r.map_gain == pytest.approx(SAMPLE_GAIN, rel=1e-4)
    assert "binned by" in w._status.value and len(w.figure.axes[0].lines) >= 2


@pytest.mark.parametrize("field,text,message", [
    ("_offset_box", "abc", "not a number"),
    ("_gain_box", "-1", "the known gain is"),
])
def test_bad_fields_are_reported(make_napari_viewer, errors, field, text, message):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).poisson(50, (64, 64)).astype(np.uint16), name="frame")
    w = NoiseCalibrationWidget(viewer)
    getattr(w, field).value = text
    assert w.compute() is None and w.result is None
    assert errors and message in errors[-1]
    with pytest.raises(ValueError, match="Compute first"):
        w.export("x")


def test_rgb_and_constant_layers_are_reported(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    rgb = viewer.add_image(np.zeros((64, 64, 3), np.uint8), name="rgb", rgb=True)
    flat = viewer.add_image(np.full((64, 64), 3.0), name="flat")
    w = NoiseCalibrationWidget(viewer)
    assert w.compute(rgb) is None and "RGB" in errors[-1]
    assert w.compute(flat) is None and "constant" in errors[-1]


def test_proposes_the_visible_noisy_layer(make_napari_viewer):
    """Never the hidden float ground truth of the sample (nor a ScoreDVI output) when a raw frame is there;
    a layer the user picks stays picked."""
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-scoredvi", "Noise calibration (photon transfer)")
    viewer.open_sample("napari-scoredvi", "noisy_stack")
    noisy, clean = viewer.layers[SAMPLE], viewer.layers["clean ground truth"]
    assert w._layer_box.value is noisy
    viewer.add_image(clean.data, name=f"denoised ({SAMPLE})", metadata={"scoredvi": {"source": SAMPLE}})
    viewer.add_image(clean.data, name="another hidden one", visible=False)
    assert w._layer_box.value is noisy
    new = NoiseCalibrationWidget(viewer)  # made after the layers: the same choice
    assert new._layer_box.value is noisy
    w._layer_box.value = clean  # the user's choice is kept while layers come and go
    viewer.add_image(noisy.data[0], name="frame")
    assert w._layer_box.value is clean
    viewer.layers.remove(clean)  # gone: a raw frame is proposed again
    assert w._layer_box.value in (noisy, viewer.layers["frame"])


def test_a_noise_free_layer_fails_once_and_says_why(make_napari_viewer, qtbot, errors, monkeypatch):
    """Compute on the sample's ground truth: one error notification naming the likely cause; nothing is
    raised into napari's event loop (napari's own error relay is never reached)."""
    from napari.utils.notifications import notification_manager

    relayed = []
    monkeypatch.setattr(notification_manager, "receive_error", lambda *args, **kwargs: relayed.append(args))
    viewer = make_napari_viewer()
    viewer.open_sample("napari-scoredvi", "noisy_stack")
    w = NoiseCalibrationWidget(viewer)
    w._layer_box.value = viewer.layers["clean ground truth"]
    w._compute_button.clicked()
    qtbot.waitUntil(lambda: w.worker is None, timeout=60_000)
    assert len(errors) == 1 and not relayed, (errors, relayed)
    assert "only 0 intensity level(s)" in errors[0] and "looks noise-free" in errors[0]
    assert "pick the raw noisy frame" in errors[0] and w.result is None and not w._export_button.enabled
    assert w.compute() is None and len(errors) == 2 and "looks noise-free" in errors[1]  # the same here
    w._layer_box.value = viewer.layers[SAMPLE]  # the raw frame: no hint
    assert w.compute() is not None and len(errors) == 2 and "warning" not in w._status.value


def test_docking_keeps_the_window_narrow(make_napari_viewer, errors):
    """The dock's width hint stays under 450 px, also with long layer names and a long error message
    (it was 528 px, and 1196 px after an error, which widened a 1500 px window to 1784 px)."""
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer()
    viewer.window._qt_window.resize(1500, 640)
    viewer.open_sample("napari-scoredvi", "noisy_stack")
    viewer.add_image(np.ones((5, 64, 64), np.float32), name=f"noise variance [ADU²] ({SAMPLE}) of a long acquisition")
    dock, w = viewer.window.add_plugin_dock_widget("napari-scoredvi", "Noise calibration (photon transfer)")

    def widths() -> tuple[int, int]:
        QApplication.processEvents()
        return dock.sizeHint().width(), dock.minimumSizeHint().width()

    assert max(widths()) < 450, widths()
    w.compute(viewer.layers["clean ground truth"])
    assert errors and max(widths()) < 450, widths()
    assert viewer.window._qt_window.width() <= 1500


def test_compute_button_runs_in_a_worker(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-scoredvi", "noisy_stack")
    w = NoiseCalibrationWidget(viewer)
    w._layer_box.value = viewer.layers[SAMPLE]
    viewer.dims.set_current_step(0, 1)
    w._compute_button.clicked()
    assert w.worker is not None
    qtbot.waitUntil(lambda: w.worker is None, timeout=60_000)
    assert not errors, errors
    from napari_scoredvi.calibration.photon_transfer import calibrate

    assert w.result.gain == calibrate(viewer.layers[SAMPLE].data[1]).gain and w._export_button.enabled
    w._gain_box.value = "zero"  # an error before the worker: reported, nothing started
    w._compute_button.clicked()
    assert w.worker is None and "not a number" in errors[-1] and w.result is None
