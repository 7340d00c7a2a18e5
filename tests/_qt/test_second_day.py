"""A biologist's second day in napari, in a real viewer (the plugin docked as napari docks it): an
output path stays with its image and another image's results are never resumed (1); results stay in
view (2); outputs look like their source (3); the image chooser proposes inputs only (4); the status
line says the last action (5); a builtin-reader OME-Zarr input keeps its scale on disk (6; the
results folder reopening is tests/_qt/test_results_in_viewer.py); words, tooltips, menu paths and
provenance that say what is true (7)."""

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
zarr = pytest.importorskip("zarr", minversion="3")

from viewer_fixtures import gl_extensions_known  # noqa: E402, F401 - autouse

from napari_scoredvi._qt import denoise_form  # noqa: E402
from napari_scoredvi._qt.denoise_widget import SCOPE_ALL, SCOPE_RANGE, SCOPE_SLICE, ScoreDVIWidget  # noqa: E402
from napari_scoredvi.engine.settings import DenoiseSettings  # noqa: E402
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack  # noqa: E402
from napari_scoredvi.napari.request import RUN_HERE, DenoiseRequest  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120_000
FAST = DenoiseSettings("fast", "cpu")


def text_overlay(viewer):
    """The viewer's text overlay, where the selected output's colour bar is labelled (napari 0.9)."""
    return viewer.canvas.overlays["text"]


def _dock(viewer) -> ScoreDVIWidget:
    _, w = viewer.window.add_plugin_dock_widget("napari-scoredvi", "ScoreDVI denoise")
    w._run_on_box.value = RUN_HERE
    w._device_box.value = "cpu"
    return w


def _stack(n=3, size=(32, 32), seed=1):
    return noisy_fluorescence_stack(n, size, seed=seed)[0]


def _wait(qtbot, w) -> None:
    qtbot.waitUntil(lambda: w.worker is None, timeout=TIMEOUT)


def _run_form(qtbot, w) -> None:
    """Press Run (the form as it is) and wait for the run to end."""
    w.run()
    _wait(qtbot, w)


def _flags(path: Path) -> list[int]:
    return zarr.open_array(str(path / "done"), mode="r")[:].tolist()


# -- 1: a store belongs to one source ----------------------------------------------------------------
def test_an_output_path_stays_with_its_image_and_no_other_image_resumes_its_store(make_napari_viewer, qtbot,
                                                                                  notes, tmp_path):
    viewer = make_napari_viewer()
    a = viewer.add_image(_stack(seed=1), name="a")
    b = viewer.add_image(_stack(seed=2), name="b")
    w = _dock(viewer)
    viewer.layers.selection.active = a
    w._scope_box.value = SCOPE_ALL
    w._output_box.value = tmp_path / "a-results.zarr"  # typed for a
    _run_form(qtbot, w)
    assert not notes["error"] and _flags(tmp_path / "a-results.zarr") == [1, 1, 1], notes
    viewer.layers.selection.active = b
    assert w._layer_box.value == b
    assert w._output_box.value != tmp_path / "a-results.zarr"  # not carried over to b
    viewer.layers.selection.active = a
    assert w._output_box.value == tmp_path / "a-results.zarr"  # a's own path, back with a
    # b pointed at a's results by hand: only Replace (saying whose) or Cancel is offered
    viewer.layers.selection.active = b
    asked = []
    w.ask_existing = lambda path, owner=None: asked.append((path, owner)) or "cancel"
    w._output_box.value = tmp_path / "a-results.zarr"
    _run_form(qtbot, w)
    assert asked == [(tmp_path / "a-results.zarr", "napari layer 'a'")]
    assert w._status.value.startswith("not started: the output exists and was kept") and w._progress.value == 0
    # a Resume of another image's results is refused; nothing is touched
    w.ask_existing = lambda path, owner=None: "resume"
    _run_form(qtbot, w)
    assert "holds the results of napari layer 'a'" in notes["error"][-1], notes["error"]
    meta = zarr.open_group(str(tmp_path / "a-results.zarr"), mode="r").attrs["napari_scoredvi"]
    assert meta["parameters"]["input"] == "napari layer 'a'" and len(meta["runs"]) == 1


# -- 2: results stay in view -------------------------------------------------------------------------
def test_a_slice_run_after_a_stack_run_keeps_the_stack_in_view(make_napari_viewer, qtbot, notes, tmp_path):
    viewer = make_napari_viewer()
    src = viewer.add_image(_stack(4), name="stack")
    w = _dock(viewer)
    out = tmp_path / "stack.zarr"
    w.run(DenoiseRequest(src, FAST, SCOPE_ALL, output=out))
    _wait(qtbot, w)
    den = viewer.layers["denoised (stack)"]
    assert np.isfinite(np.asarray(den.data)).all()
    assert viewer.layers.selection.active == src  # the source stays the active layer
    viewer.dims.set_point(0, 2)
    w.run(DenoiseRequest(src, FAST, SCOPE_SLICE, shown=(2,)))  # the current slice: into the same store
    _wait(qtbot, w)
    assert not notes["error"], notes["error"]
    assert viewer.layers["denoised (stack)"] is den and np.isfinite(np.asarray(den.data)).all()
    assert any("already done" in m for m in notes["info"]) and _flags(out) == [1, 1, 1, 1], notes["info"]
    assert not any(m.startswith("ScoreDVI: denoised") for m in notes["info"][1:]), notes["info"]  # none was redone
    assert viewer.layers.selection.active == src


def test_a_layer_a_run_did_not_ask_for_is_not_left_on_top_of_it(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    src = viewer.add_image(_stack(3), name="stack")
    w = _dock(viewer)
    w.run(DenoiseRequest(src, FAST, shown=(0,), posterior_std=True))
    _wait(qtbot, w)
    std = viewer.layers["posterior std [ADU] (stack)"]
    std.visible = True  # the user looked at it
    w.run(DenoiseRequest(src, FAST, shown=(1,)))  # no posterior std asked for now
    _wait(qtbot, w)
    assert not notes["error"], notes["error"]
    assert not std.visible
    assert viewer.layers.selection.active == src


# -- 3: outputs look like their source ---------------------------------------------------------------
def test_a_two_channel_images_outputs_keep_its_colours(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    data = np.stack([_stack(2, seed=3), _stack(2, seed=4)])
    c0, c1 = viewer.add_image(data, channel_axis=0, name=["c0", "c1"], colormap=["green", "magenta"])
    assert c1.blending == "additive"
    w = _dock(viewer)
    for src in (c0, c1):
        w.run(DenoiseRequest(src, FAST, shown=(0,)))
        _wait(qtbot, w)
    assert not notes["error"], notes["error"]
    for src, colour in ((c0, "green"), (c1, "magenta")):
        den = viewer.layers[f"denoised ({src.name})"]
        assert den.colormap.name == colour and den.blending == src.blending and den.visible
        plane = np.asarray(den.data)[0]
        lo, hi = den.contrast_limits  # robust: the extreme pixels lie outside
        assert np.nanmin(plane) < lo < hi < np.nanmax(plane)
        assert 0.99 < np.mean((plane >= lo) & (plane <= hi)) < 1.0
        var = viewer.layers[f"noise variance [ADU²] ({src.name})"]
        assert not var.visible  # a map shown over the channels would tint them
    # one colour bar at a time, the selected output's, labelled with its name and unit
    var0 = viewer.layers["noise variance [ADU²] (c0)"]
    var1 = viewer.layers["noise variance [ADU²] (c1)"]
    viewer.layers.selection.active = var0
    assert var0.colorbar.visible and not var1.colorbar.visible
    assert text_overlay(viewer).visible and text_overlay(viewer).text == "noise variance [ADU²] (c0)"
    viewer.layers.selection.active = var1
    assert var1.colorbar.visible and not var0.colorbar.visible and text_overlay(viewer).text == var1.name
    viewer.layers.selection.active = c0
    assert not var0.colorbar.visible and not var1.colorbar.visible and not text_overlay(viewer).visible


# -- 4: the chooser proposes inputs only -------------------------------------------------------------
def test_the_image_chooser_never_proposes_outputs(make_napari_viewer, qtbot, notes, tmp_path):
    viewer = make_napari_viewer()
    src = viewer.add_image(np.stack([_stack(2), _stack(2, seed=5)]), name="timelapse")
    w = _dock(viewer)
    w.run(DenoiseRequest(src, FAST, SCOPE_ALL, output=tmp_path / "t.zarr"))
    _wait(qtbot, w)
    assert not notes["error"], notes["error"]
    assert list(w._layer_box.choices) == [src]  # not 'denoised (timelapse)' nor 'noise variance ... (timelapse)'
    viewer.layers.selection.active = viewer.layers["noise variance [ADU²] (timelapse)"]
    assert w._layer_box.value == src


# -- 5: the status line says the last action ---------------------------------------------------------
def test_the_status_line_says_the_last_action_errors_included(make_napari_viewer, qtbot, notes, monkeypatch):
    import torch

    viewer = make_napari_viewer()
    src = viewer.add_image(_stack(3), name="stack")
    w = _dock(viewer)
    _run_form(qtbot, w)
    assert w._status.value.startswith("1/1 slice(s) done")
    w._scope_box.value = SCOPE_RANGE
    w._first_box.value, w._last_box.value = 2, 7
    _run_form(qtbot, w)
    assert w._status.value.startswith("not started: slice range 2-7 is outside the stack's first axis (0-2)")
    assert w._progress.value == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    w._scope_box.value = SCOPE_SLICE
    w._device_box.value = "cuda"
    _run_form(qtbot, w)
    assert w._status.value.startswith("not started: device 'cuda' was requested but torch sees no CUDA GPU")
    w._device_box.value = "cpu"
    _run_form(qtbot, w)
    viewer.layers.clear()
    assert w._status.value == "'stack' was removed" and w._progress.value == 0
    assert src not in viewer.layers


# -- 6: an OME-Zarr input opened by napari's builtin reader --------------------------------------------
def _ome_zarr_input(path: Path) -> Path:
    from napari_scoredvi.io.store import multiscale

    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", data=_stack(3), chunks=(1, 32, 32))
    group.attrs["multiscales"] = [multiscale("cells", "ZYX", [2.0, 0.25, 0.25],
                                             {"Z": "micrometer", "Y": "micrometer", "X": "micrometer"})]
    return path


def test_a_builtin_reader_ome_zarr_gets_one_note_and_its_results_keep_the_files_scale(make_napari_viewer, qtbot,
                                                                                      notes, tmp_path):
    viewer = make_napari_viewer()
    path = _ome_zarr_input(tmp_path / "cells.ome.zarr")
    src = viewer.open(str(path), plugin="napari")[0]
    assert tuple(src.scale) == (1.0, 1.0, 1.0)  # napari's builtin reader drops the pixel sizes
    w = _dock(viewer)
    out = tmp_path / "cells-results.zarr"
    for _ in range(2):
        w.run(DenoiseRequest(src, FAST, SCOPE_ALL, output=out))
        _wait(qtbot, w)
        w.ask_existing = lambda path, owner=None: "replace"
    assert not notes["error"], notes["error"]
    dropped = [m for m in notes["info"] if "shows no pixel sizes" in m]
    assert len(dropped) == 1 and "z 2 micrometer" in dropped[0] and "napari-ome-zarr" in dropped[0], notes["info"]
    ms = zarr.open_group(str(out / "denoised"), mode="r").attrs["multiscales"][0]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.0, 0.25, 0.25]
    assert tuple(viewer.layers[f"denoised ({src.name})"].scale) == (1.0, 1.0, 1.0)  # overlays its source in view


# -- 7: words that say what is true ------------------------------------------------------------------
def test_the_range_says_what_it_counts_in_a_time_lapse_of_z_stacks(make_napari_viewer):
    viewer = make_napari_viewer()
    tz = viewer.add_image(np.stack([_stack(3), _stack(3, seed=6)]), name="tz", axis_labels=("t", "z", "y", "x"))
    z = viewer.add_image(_stack(3), name="z")
    w = _dock(viewer)
    w._scope_box.value = SCOPE_RANGE
    viewer.layers.selection.active = tz
    assert (w._first_box.label, w._last_box.label) == ("from time point", "to time point")
    assert "each time point covers its 3 z-slices" in w._first_box.tooltip
    viewer.layers.selection.active = z
    assert (w._first_box.label, w._last_box.label) == ("from z-slice", "to z-slice")


def test_every_control_has_a_tooltip(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(_stack(3), name="z")
    w = _dock(viewer)
    w._scope_box.value = SCOPE_RANGE
    w._preset_box.value = "variational"
    from magicgui.widgets import Label

    controls = [c for c in w if not isinstance(c, Label)]
    assert len(controls) >= 12
    missing = [getattr(c, "label", "") or getattr(c, "text", "") for c in controls if not (c.tooltip or "").strip()]
    assert not missing, missing


def test_one_note_per_layer_and_a_cancel_before_any_slice_says_so(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    base = _stack(1, (256, 256))[0]
    src = viewer.add_image([base, base[::2, ::2]], name="pyramid", multiscale=True)
    w = _dock(viewer)
    for _ in range(2):
        w.run(DenoiseRequest(src, FAST))
        _wait(qtbot, w)
    assert not notes["error"], notes["error"]
    assert len([m for m in notes["info"] if "is multiscale" in m]) == 1, notes["info"]
    w.run(DenoiseRequest(src, DenoiseSettings("balanced", "cpu")))
    w.cancel()
    _wait(qtbot, w)
    assert notes["info"][-1] == "ScoreDVI cancelled: no slice was finished", notes["info"]
    assert w._status.value.startswith("cancelled: no slice was finished")


def test_stack_run_layers_carry_the_engines_account(make_napari_viewer, qtbot, notes, tmp_path):
    viewer = make_napari_viewer()
    src = viewer.add_image(_stack(3), name="stack")
    w = _dock(viewer)
    w.run(DenoiseRequest(src, FAST, SCOPE_ALL, output=tmp_path / "s.zarr"))
    _wait(qtbot, w)
    assert not notes["error"], notes["error"]
    for name in ("denoised (stack)", "noise variance [ADU²] (stack)"):
        meta = viewer.layers[name].metadata["scoredvi"]
        assert meta["info"]["noise_std"] > 0 and meta["slices_done"] == [[0], [1], [2]]
        assert meta["store"] == str(tmp_path / "s.zarr")


def test_a_current_slice_fit_is_not_warm_started(make_napari_viewer, qtbot, notes, short_fit, monkeypatch):
    """The variational fit of one slice starts from nothing (no neighbour's fit), as its provenance says."""
    viewer = make_napari_viewer()
    viewer.add_image(_stack(3), name="stack")
    w = _dock(viewer)
    monkeypatch.setattr(denoise_form, "get_preset", lambda name: short_fit)
    w._preset_box.value = "variational"
    viewer.dims.set_point(0, 2)
    assert w.request().settings.warm_starts is False
    _run_form(qtbot, w)
    assert not notes["error"], notes["error"]
    meta = viewer.layers["denoised (stack)"].metadata["scoredvi"]
    assert meta["warm_start"] is False and meta["info"]["warm_start"] is False and meta["slices_done"] == [[2]]


def _menu_paths(viewer) -> set[str]:
    """Every menu item of the napari window as ``"File > Open Sample > ..."``."""
    paths: set[str] = set()

    def walk(menu, path):
        menu.aboutToShow.emit()  # napari fills some menus when they open
        for action in menu.actions():
            text = action.text().replace("&", "")
            if action.menu() is not None:
                walk(action.menu(), [*path, text])
            elif text:
                paths.add(" > ".join([*path, text]))

    for action in viewer.window._qt_window.menuBar().actions():
        if action.menu() is not None:
            walk(action.menu(), [action.text().replace("&", "")])
    return paths


def test_the_docs_menu_paths_are_napari_s(make_napari_viewer):
    viewer = make_napari_viewer()
    shown = _menu_paths(viewer)
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    written = {m for doc in docs for m in re.findall(r"\*\*((?:File|Plugins) >[^*]+)\*\*", doc.read_text())}
    assert written, "the docs name no menu path"
    wrong = sorted(" ".join(m.split()) for m in written if " ".join(m.split()) not in shown
                   and not any(p.startswith(" ".join(m.split()) + " > ") for p in shown))
    assert not wrong, (wrong, sorted(p for p in shown if "scoredvi" in p.lower()))


# -- found by a cold try of the journeys ---------------------------------------------------------------
def test_a_cancel_before_any_slice_leaves_no_blank_layers_and_late_events_keep_the_end(make_napari_viewer, qtbot,
                                                                                        notes):
    from napari_scoredvi.pipeline.events import SliceDone

    viewer = make_napari_viewer()
    src = viewer.add_image(_stack(1, (256, 256))[0], name="frame")
    w = _dock(viewer)
    w.run(DenoiseRequest(src, DenoiseSettings("balanced", "cpu")))
    w.cancel()
    _wait(qtbot, w)
    assert [layer.name for layer in viewer.layers] == ["frame"]  # the run's blank layers are taken away
    assert w._status.value == "cancelled: no slice was finished"
    w.run(DenoiseRequest(src, FAST))
    _wait(qtbot, w)
    end = w._status.value
    w._on_yielded(SliceDone(0, (), 1, 1))  # an event delivered after the run's end
    assert w._status.value == end


def test_a_shown_map_is_seen_on_top_and_the_status_says_whose_run_it_was(make_napari_viewer, qtbot, notes, tmp_path):
    viewer = make_napari_viewer()
    a = viewer.add_image(_stack(2), name="a")
    b = viewer.add_image(_stack(2, seed=3), name="b")
    w = _dock(viewer)
    viewer.layers.selection.active = a
    _run_form(qtbot, w)
    names = [layer.name for layer in viewer.layers]
    assert names.index("noise variance [ADU²] (a)") > names.index("denoised (a)") > names.index("a")
    done = w._status.value
    viewer.layers.selection.active = b
    assert w._status.value == f"ready; the last run, on 'a': {done}" and w._progress.value == 0
    # a typed output path: the note about the temporary folder goes
    w._scope_box.value = SCOPE_ALL
    assert "temporary folder" in w._output_note.value
    w._output_box.value = tmp_path / "b-results.zarr"
    assert w._output_note.value == ""


def test_an_imagej_tiff_opened_without_its_pixel_sizes_gets_a_note(make_napari_viewer, qtbot, notes, tmp_path):
    import tifffile

    path = tmp_path / "zstack.tif"
    tifffile.imwrite(path, _stack(3), imagej=True, resolution=(1 / 0.3, 1 / 0.3),
                     metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})
    viewer = make_napari_viewer()
    src = viewer.open(str(path), plugin="napari")[0]
    assert tuple(src.scale) == (1.0, 1.0, 1.0)
    w = _dock(viewer)
    w.run(DenoiseRequest(src, FAST, SCOPE_ALL, output=tmp_path / "out.zarr"))
    _wait(qtbot, w)
    assert not notes["error"], notes["error"]
    dropped = [m for m in notes["info"] if "shows no pixel sizes" in m]
    assert len(dropped) == 1 and "z 2 micrometer" in dropped[0] and "layer.scale" in dropped[0], notes["info"]
