"""The napari dock widget: denoise the current slice, a range or every slice of an image layer.

A thin layer over the headless API: one 2D slice goes through :func:`.stack.denoise_slices` into
in-memory layers; more slices go through the batch pipeline (:func:`.batch.prepare_run`,
:meth:`.batch.StackRun.steps`) into an OME-Zarr store on disk, shown as lazy layers that fill in as
slices finish, here or on a dask.distributed cluster. Both run in a napari thread worker.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from .._version import __version__
from ..engine.devices import DEVICE_CHOICES, describe_device, resolve_device
from ..engine.presets import PRESETS, Preset, get_preset
from ..engine.settings import DenoiseSettings
from ..io.slice_grid import SliceGrid
from ..napari import remembered
from ..napari.layers import current_index
from ..pipeline.events import SliceDone, SliceStep
from ..pipeline.slices import denoise_slices, planned_iterations

SCOPE_SLICE = "current 2D slice"
SCOPE_ALL = "all slices"
SCOPE_RANGE = "range of slices"
RUN_HERE = "this computer"
RUN_CLUSTER = "dask cluster"
#: layer properties copied from the source onto the outputs (those that exist on the layer)
COPIED_PROPERTIES = ("scale", "translate", "units", "axis_labels", "affine", "rotate", "shear")
#: output name in the store -> (layer name suffix, colormap)
LAYERS = {"denoised": ("denoised", "gray"), "noise_variance": ("noise variance", "magma"),
          "posterior_std": ("posterior std", "viridis")}
CLOSE_WAIT_MS = 10_000  # how long closing the widget waits for a running slice to stop


class ClosingGeneratorWorker(GeneratorWorker):
    """napari's generator worker, but a quit (Cancel, or napari closing) closes the generator in the
    worker thread, so its cleanup (store status, cluster tasks) runs at once and off the UI thread."""

    def work(self):
        try:
            return super().work()
        finally:
            self._gen.close()


def _auto_device_text() -> str:
    try:
        return f"auto = {describe_device(resolve_device('auto'))}"
    except Exception as exc:  # noqa: BLE001 - shown to the user, never raised
        return f"auto: {exc}"


def default_output(layer) -> tuple[Path, bool]:
    """Where a layer's outputs go by default: ``<file>-denoised.zarr`` beside a file-backed input in
    a folder we can write to, else a temporary folder deleted when napari closes. Returns (path,
    temporary?)."""
    src = getattr(getattr(layer, "source", None), "path", None)
    if src:
        from ..io.store import is_store

        p = Path(src)
        while is_store(p.parent):  # an image inside a Zarr group (e.g. OUT.zarr/denoised): beside the group
            p = p.parent
        name = p.name
        for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr", ".zarr", ".tiff", ".tif"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
        folder = p.parent
        if folder.is_dir() and _writable(folder):
            return folder / f"{name}-denoised.zarr", False
    return _temp_folder() / f"{_safe(layer.name)}-denoised.zarr", True


_TEMP: list[Path] = []


def _temp_folder() -> Path:
    if not _TEMP:
        _TEMP.append(Path(tempfile.mkdtemp(prefix="napari-scoredvi-")))
        atexit.register(shutil.rmtree, _TEMP[0], ignore_errors=True)
    return _TEMP[0]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "layer"


def _writable(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def ask_existing_output(path: Path) -> str:
    """Ask what to do with an existing output store: ``"resume"``, ``"replace"`` or ``"cancel"``."""
    from qtpy.QtWidgets import QMessageBox

    box = QMessageBox()
    box.setIcon(QMessageBox.Question)
    box.setWindowTitle("ScoreDVI: output exists")
    box.setText(f"The output {str(path)!r} already exists.")
    box.setInformativeText("Resume keeps its finished slices and does the rest (same layer and settings only). "
                           "Replace deletes it and starts again.")
    resume = box.addButton("Resume", QMessageBox.AcceptRole)
    replace = box.addButton("Replace", QMessageBox.DestructiveRole)
    box.addButton(QMessageBox.Cancel)
    box.setDefaultButton(resume)
    box.exec_()
    return {resume: "resume", replace: "replace"}.get(box.clickedButton(), "cancel")


class ScoreDVIWidget(Container):
    """Dock widget: pick an image layer, preset, device and scope, then Run (Cancel to stop)."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        #: tests (or scripts) may set a :class:`Preset` here to override the preset combo box
        self.preset_override: Preset | None = None
        #: asked when the output store exists; tests replace it (see :func:`ask_existing_output`)
        self.ask_existing = ask_existing_output
        self.seed = 0
        self.worker = None
        self.slices_done = 0
        self._job: dict = {}
        self._closed = False
        self._output_auto: str | None = None  # the output path we filled in (not typed by the user)
        memory = remembered.load()
        # choices from this viewer's layers (not napari's lookup of the viewer around the widget):
        # the widget then works with any viewer it is given, including a ViewerModel in tests
        self._layer_box = ComboBox(label="image", choices=self._image_layers)
        self._preset_box = ComboBox(label="preset", choices=list(PRESETS), value="fast")
        self._device_box = ComboBox(label="device", choices=list(DEVICE_CHOICES), value="auto")
        self._device_label = Label(value=_auto_device_text())
        self._scope_box = ComboBox(label="scope", choices=[SCOPE_SLICE, SCOPE_ALL, SCOPE_RANGE], value=SCOPE_SLICE)
        self._first_box = SpinBox(label="from slice", value=0, min=0, max=100000, visible=False,
                                  tooltip="first index along the stack's first axis (inclusive)")
        self._last_box = SpinBox(label="to slice", value=0, min=0, max=100000, visible=False,
                                 tooltip="last index along the stack's first axis (inclusive)")
        self._output_box = FileEdit(label="output", mode="w", filter="*.zarr", visible=False,
                                    tooltip="OME-Zarr folder for the outputs of a stack (empty: beside the input "
                                            "file, or a temporary folder)")
        self._output_note = Label(value="", visible=False)
        self._run_on_box = ComboBox(label="run on", choices=[RUN_HERE, RUN_CLUSTER],
                                    value=memory.get("run_on", RUN_HERE) if memory.get("run_on") in
                                    (RUN_HERE, RUN_CLUSTER) else RUN_HERE)
        self._scheduler_box = LineEdit(label="scheduler", value=str(memory.get("scheduler", "")),
                                       tooltip="address of a dask.distributed scheduler, e.g. tcp://gpu-box:8786")
        self._scheduler_box.native.setPlaceholderText("tcp://host:8786")
        self._warm_box = CheckBox(text="warm-start each slice from the previous one", value=True,
                                  tooltip="stacks: much faster; each slice's fit starts from its neighbour's")
        self._lam_box = FloatSpinBox(label="prior weight", value=0.0, min=0.0, max=16.0, step=0.25,
                                     tooltip="lam, the weight of the score prior; auto (0) = from the noise level")
        self._lam_box.native.setSpecialValueText("auto")  # shown at the minimum, 0, which means automatic
        self._std_box = CheckBox(text="add posterior std layer", value=False)
        self._run_button = PushButton(text="Run")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self._status = Label(value="")
        self.extend([self._layer_box, self._preset_box, self._device_box, self._device_label, self._scope_box,
                     self._first_box, self._last_box, self._output_box, self._output_note, self._run_on_box,
                     self._scheduler_box, self._warm_box, self._lam_box, self._std_box, self._run_button,
                     self._cancel_button, self._progress, self._status])
        self._scope_box.changed.connect(self._show_scope)
        self._run_on_box.changed.connect(self._show_scope)
        self._layer_box.changed.connect(self._layer_changed)
        self._run_button.changed.connect(lambda: self.run())
        self._cancel_button.changed.connect(self.cancel)
        # keep the layer list current (also when not docked) and follow the active layer
        napari_viewer.layers.events.inserted.connect(self._refresh_layers)
        napari_viewer.layers.events.removed.connect(self._layer_removed)
        napari_viewer.layers.selection.events.active.connect(self._follow_active)
        self.native.destroyed.connect(self._on_destroyed)
        self._refresh_layers()
        self._show_scope()

    # -- the form ------------------------------------------------------------------------------
    def _show_scope(self, event=None) -> None:
        scope = self._scope_box.value
        self._first_box.visible = self._last_box.visible = scope == SCOPE_RANGE
        many = scope != SCOPE_SLICE
        self._output_box.visible = self._run_on_box.visible = many
        self._output_note.visible = many and bool(self._output_note.value)
        self._scheduler_box.visible = many and self._run_on_box.value == RUN_CLUSTER
        if many:
            self._suggest_output()

    def _image_layers(self, widget=None) -> list[tuple[str, object]]:
        from napari.layers import Image

        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _refresh_layers(self, event=None) -> None:
        self._layer_box.reset_choices()
        self._follow_active()

    def _follow_active(self, event=None) -> None:
        from napari.layers import Image

        active = self.viewer.layers.selection.active
        if "scoredvi" in getattr(active, "metadata", {}):  # never propose our own outputs
            return
        if isinstance(active, Image) and active in self._layer_box.choices and self.worker is None:
            self._layer_box.value = active

    def _layer_changed(self, event=None) -> None:
        if self._output_box.line_edit.value.strip() in ("", self._output_auto):  # a new layer, a new default
            self._output_box.line_edit.value = ""
        self._output_auto = None
        if self._scope_box.value != SCOPE_SLICE:
            self._suggest_output()

    def _suggest_output(self) -> None:
        """Fill the output box with the chosen layer's default, unless the user typed a path."""
        layer = self._layer_box.value
        typed = self._output_box.line_edit.value.strip()
        if layer is None or (typed and typed != self._output_auto):
            return
        path, temporary = default_output(layer)
        self._output_auto = str(path)
        self._output_box.value = path
        self._output_note.value = ("temporary folder: deleted when napari closes; pick a folder to keep the "
                                   "results") if temporary else ""
        self._output_note.visible = temporary

    def _settings(self) -> DenoiseSettings:
        preset = self.preset_override or get_preset(self._preset_box.value)
        lam = float(self._lam_box.value) or None
        return DenoiseSettings(preset, self._device_box.value, self.seed, lam, bool(self._warm_box.value))

    def _slice_numbers(self, layer, grid: SliceGrid) -> list[int]:
        """Slice numbers (of ``grid``, the leading axes) that the chosen scope covers."""
        if not grid.grid_axes:
            return [0]
        scope = self._scope_box.value
        if scope == SCOPE_ALL:
            return list(range(grid.count))
        if scope == SCOPE_RANGE:
            first, last = int(self._first_box.value), int(self._last_box.value)
            n0 = grid.grid_shape[0]
            if not (0 <= first <= last < n0):
                raise ValueError(f"slice range {first}-{last} is outside the stack's first axis "
                                 f"(0-{n0 - 1}); set 'from slice' <= 'to slice' inside it")
            inner = grid.count // n0
            return list(range(first * inner, (last + 1) * inner))
        return [grid.number(current_index(self.viewer, layer, len(grid.grid_axes)))]

    # -- actions ---------------------------------------------------------------------------
    def run(self, layer=None) -> None:
        """Start denoising ``layer`` (default: the one chosen in the widget); errors become notifications."""
        from napari.layers import Image

        if self.worker is not None:
            show_warning("ScoreDVI is already running; press Cancel first")
            return
        layer = self._layer_box.value if layer is None else layer
        if layer is None:
            show_error("ScoreDVI: no image layer selected")
            return
        if not isinstance(layer, Image):
            show_error(f"ScoreDVI works on Image layers; {layer.name!r} is a {type(layer).__name__} layer")
            return
        data = layer.data
        if layer.multiscale:
            data = layer.data[0]
            show_info(f"ScoreDVI: {layer.name!r} is multiscale; denoising its full-resolution level")
        rgb = bool(layer.rgb)
        if data.ndim < 2 + rgb or np.dtype(data.dtype).kind not in "uif":
            show_error(f"ScoreDVI: cannot denoise data of shape {data.shape} and dtype {data.dtype}")
            return
        cluster = self._scope_box.value != SCOPE_SLICE and self._run_on_box.value == RUN_CLUSTER
        try:
            settings = self._settings()
            if not cluster:  # on a cluster the device is chosen on each worker
                resolve_device(settings.device)
            grid = SliceGrid.leading(data.shape, data.ndim - 2 - rgb)
            numbers = self._slice_numbers(layer, grid)
        except (ValueError, RuntimeError) as exc:
            show_error(f"ScoreDVI: {exc}")
            return
        on_disk = len(numbers) > 1 and not rgb
        if len(numbers) > 1 and rgb:
            show_info("ScoreDVI: RGB stacks are denoised into memory (the OME-Zarr output holds grey stacks)")
        if on_disk:
            self._run_to_store(layer, data, numbers, settings, cluster)
        else:
            self._run_in_memory(layer, data, grid, numbers, settings, rgb)

    def _run_in_memory(self, layer, data, grid: SliceGrid, numbers: list[int], settings: DenoiseSettings,
                       rgb: bool) -> None:
        shape = tuple(data.shape)
        map_shape = shape[:-1] if rgb else shape  # RGB: one variance / std map for the three channels
        names = ["denoised", "noise_variance"] + (["posterior_std"] if self._std_box.value else [])
        layers, arrays = {}, {}
        for name in names:
            out_shape = shape if name == "denoised" else map_shape
            layers[name], arrays[name] = self._memory_layer(layer, name, out_shape, rgb and name == "denoised")
        gen = denoise_slices(data, grid, numbers, arrays, settings, rgb=rgb)
        self._start(layer, layers, gen, settings, numbers, arrays=arrays)

    def _run_to_store(self, layer, data, numbers: list[int], settings: DenoiseSettings, cluster: bool) -> None:
        from ..io.store import store_exists
        from ..pipeline.run import prepare_run

        scheduler = None
        if cluster:
            scheduler = self._scheduler_box.value.strip()
            if not scheduler:
                show_error("ScoreDVI: type the dask scheduler's address (e.g. tcp://gpu-box:8786), or run on "
                           "this computer")
                return
            try:
                import distributed  # noqa: F401
            except ImportError:
                show_error("ScoreDVI: running on a dask cluster needs dask.distributed: "
                           "pip install 'napari-scoredvi[cluster]', then restart napari")
                return
            remembered.remember(run_on=RUN_CLUSTER, scheduler=scheduler)
        else:
            remembered.remember(run_on=RUN_HERE)
        self._suggest_output()
        out = Path(self._output_box.value).expanduser()
        if not out.name.endswith(".zarr"):
            out = out.with_name(out.name + ".zarr")
        resume = overwrite = False
        if store_exists(out):
            choice = self.ask_existing(out)
            if choice == "cancel":
                self._status.value = "not started: the output exists"
                return
            resume, overwrite = choice == "resume", choice == "replace"
        try:
            volume = self._layer_volume(layer, data)
            run = prepare_run(volume, out, settings, posterior_std=bool(self._std_box.value), resume=resume,
                              overwrite=overwrite, numbers=numbers)
        except (ValueError, OSError) as exc:
            show_error(f"ScoreDVI: {exc}")
            return
        if not run.todo:
            show_info(f"ScoreDVI: every asked slice is already done in {str(out)!r}")
        layers = {name: self._store_layer(layer, name, run.store) for name in run.store.outputs}
        self._start(layer, layers, run.steps(scheduler), settings, run.todo, store=run.store,
                    done_before=len(numbers) - len(run.todo), total=len(numbers))

    def _layer_volume(self, layer, data):
        """The layer as a Volume: its data, read slice by slice; axes, pixel sizes and units from the
        file it came from when that file holds the same array (workers may then read it by path)."""
        from ..io.read import axes_from_labels, ngff_unit, open_volume, volume_from_array

        path = getattr(getattr(layer, "source", None), "path", None)
        if path:
            try:
                vol = open_volume(path)
                if tuple(vol.array.shape) == tuple(data.shape):
                    return volume_from_array(data, vol.axes, vol.scale, vol.units, str(path))
            except (ValueError, OSError):
                pass
        axes = axes_from_labels(getattr(layer, "axis_labels", None), data.ndim)
        units = {}
        for letter, unit in zip(axes, getattr(layer, "units", ()) or ()):
            name = ngff_unit(str(unit))
            if name:
                units[letter] = name
        scale = list(np.asarray(layer.scale, float)[-data.ndim:])
        return volume_from_array(data, axes, scale, units, name=layer.name)

    def _start(self, layer, layers: dict, gen, settings: DenoiseSettings, numbers: list[int], arrays=None,
               store=None, done_before: int = 0, total: int | None = None) -> None:
        params = {"source": layer.name, "preset": settings.preset.as_dict(), "device": settings.device,
                  "seed": settings.seed, "scope": self._scope_box.value,
                  "lam": "auto" if settings.lam is None else settings.lam, "warm_start": settings.warm_start,
                  "version": __version__}
        if store is not None:
            params["store"] = str(store.path)
        for out in layers.values():
            out.metadata["scoredvi"] = dict(params, slices_done=[])
        self._layer_box.value = layer  # adding the outputs made one of them active
        n = len(numbers)
        self._job = {"layer": layer, "layers": layers, "arrays": arrays, "store": store, "n": total or n,
                     "limits": {}, "steps": 0}
        self.slices_done = done_before
        iterations = planned_iterations(numbers, settings)
        self._progress.max = max(iterations, 1)
        self._progress.value = 0
        self._status.value = f"running on {n} slice(s)" + (f" ({done_before} done before)" if done_before else "")

        def work():
            try:
                outcome = yield from gen
            except Exception as exc:  # noqa: BLE001 - a notification, never a traceback in napari
                return {"error": str(exc) or type(exc).__name__, "info": None}
            if outcome is None:  # a run into a store
                return {"info": None}
            info = outcome.info.as_dict() if outcome.info is not None else None
            if outcome.failed is not None:
                where = f"slice {outcome.failed.position}: " if outcome.failed.position else ""
                return {"error": f"{where}{outcome.failed.error}", "info": info}
            return {"info": info}

        # napari's own progress bar (activity dock) counts the worker's yields: steps plus slices
        worker = create_worker(work, _start_thread=False, _worker_class=ClosingGeneratorWorker,
                               _progress={"total": iterations + n, "desc": f"ScoreDVI {layer.name}"})
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.aborted.connect(self._on_aborted)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._run_button.enabled = False
        self._cancel_button.enabled = True
        worker.start()

    def cancel(self) -> None:
        """Stop after the current iteration; finished slices stay (in the layers, and on disk)."""
        if self.worker is not None:
            self.worker.quit()

    # -- output layers ---------------------------------------------------------------------
    def _add_output(self, source, name: str, data, rgb: bool = False, **kwargs):
        """Add (or replace) the output layer ``"<source> <suffix>"`` beside the source."""
        suffix, colormap = LAYERS[name]
        layer_name = f"{source.name} {suffix}"
        if layer_name in self.viewer.layers:
            self.viewer.layers.remove(layer_name)
        for prop in COPIED_PROPERTIES:
            if hasattr(source, prop):
                kwargs[prop] = getattr(source, prop)
        if rgb:
            kwargs["rgb"] = True
        else:
            kwargs["colormap"] = colormap
        contrast = tuple(float(c) for c in source.contrast_limits) if name == "denoised" else (0.0, 1.0)
        layer = self.viewer.add_image(data, name=layer_name, contrast_limits=contrast,
                                      blending="additive" if colormap != "gray" else "translucent", **kwargs)
        # keep the outputs beside the source in the layer list
        src_pos = list(self.viewer.layers).index(source)
        out_pos = list(self.viewer.layers).index(layer)
        if out_pos != src_pos + 1:
            self.viewer.layers.move(out_pos, src_pos + 1)
        return layer

    def _memory_layer(self, source, name: str, shape, rgb: bool = False) -> tuple:
        """An in-memory output layer, reused (and its array) if it already has this shape."""
        suffix = LAYERS[name][0]
        existing = self.viewer.layers[f"{source.name} {suffix}"] if f"{source.name} {suffix}" in self.viewer.layers \
            else None
        if existing is not None and isinstance(existing.data, np.ndarray) and existing.data.shape == shape \
                and existing.rgb == rgb:
            return existing, existing.data
        arr = np.zeros(shape, np.float32)  # pages not yet written take no memory
        return self._add_output(source, name, arr, rgb), arr

    def _store_layer(self, source, name: str, store):
        """A lazy layer over output ``name`` of the store: read slice by slice, not cached, so it shows
        each slice as soon as it is written (NaN, blank, before)."""
        import dask.array as da

        return self._add_output(source, name, da.from_zarr(store.array(name)), cache=False)

    # -- worker callbacks (main thread) -----------------------------------------------------
    def _on_yielded(self, event: dict) -> None:
        if self._closed:
            return
        job = self._job
        if isinstance(event, SliceStep):
            job["steps"] += 1
            self._progress.value = min(job["steps"], self._progress.max)
            return
        if not isinstance(event, SliceDone):
            return
        idx = tuple(event.position)
        self.slices_done += 1
        for name, layer in job["layers"].items():
            if layer not in self.viewer.layers:  # the user removed it: the run goes on without it
                continue
            if name != "denoised":
                self._update_limits(name, layer, idx)
            layer.metadata["scoredvi"]["slices_done"].append([int(i) for i in idx])
            layer.refresh()
        self._status.value = f"{self.slices_done}/{job['n']} slice(s) done"

    def _update_limits(self, name: str, layer, idx: tuple) -> None:
        """Stretch a map layer's contrast to the 99.5th percentile seen so far."""
        job = self._job
        if job["arrays"] is not None:
            plane = job["arrays"][name][idx]
        else:
            plane = job["store"].array(name)[idx]
        finite = np.asarray(plane)
        finite = finite[np.isfinite(finite)]
        vmax = float(np.percentile(finite, 99.5)) if finite.size else 0.0
        job["limits"][name] = max(job["limits"].get(name, 0.0), vmax)
        if job["limits"][name] > 0:
            layer.contrast_limits = (0.0, job["limits"][name])

    def _on_returned(self, result) -> None:
        if self._closed:
            return
        job = self._job
        if isinstance(result, dict) and result.get("error"):
            show_error(f"ScoreDVI: {result['error']} ({self.slices_done} slice(s) finished before)")
            self._status.value = f"failed: {self.slices_done}/{job['n']} slice(s) done"
            return
        if self.worker is not None and self.worker.abort_requested:
            return  # _on_aborted says it
        info = result.get("info") if isinstance(result, dict) else None
        for out in job["layers"].values():
            if info is not None:
                out.metadata["scoredvi"]["info"] = info
        self._progress.value = self._progress.max
        where = f" into {str(job['store'].path)!r}" if job["store"] is not None else ""
        show_info(f"ScoreDVI: denoised {self.slices_done} slice(s) of {job['layer'].name!r}{where}")

    def _on_errored(self, exc: Exception) -> None:
        if not self._closed:
            show_error(f"ScoreDVI failed: {exc}")

    def _on_aborted(self) -> None:
        if self._closed:
            return
        kept = " (kept on disk: Run again to resume)" if self._job.get("store") is not None else " (kept)"
        show_info(f"ScoreDVI cancelled: {self.slices_done} of {self._job['n']} slice(s) done{kept}")
        self._status.value = f"cancelled: {self.slices_done}/{self._job['n']} slice(s) done"

    def _on_finished(self) -> None:
        self.worker = None
        if self._closed:
            return
        self._run_button.enabled = True
        self._cancel_button.enabled = False

    # -- closing -----------------------------------------------------------------------------
    def _layer_removed(self, event=None) -> None:
        """Removing the source layer of a run stops it (finished slices are kept)."""
        removed = getattr(event, "value", None)
        if self.worker is not None and removed is not None and removed is self._job.get("layer"):
            show_info(f"ScoreDVI: {removed.name!r} was removed; stopping its run")
            self.cancel()
        self._refresh_layers()

    def _on_destroyed(self, *args) -> None:
        """The widget (or napari) is closing: stop the run cleanly and wait for its current slice."""
        self._closed = True
        worker = self.worker
        if worker is not None:
            worker.quit()
            worker.await_workers(CLOSE_WAIT_MS)
        for ev, cb in ((self.viewer.layers.events.inserted, self._refresh_layers),
                       (self.viewer.layers.events.removed, self._layer_removed),
                       (self.viewer.layers.selection.events.active, self._follow_active)):
            try:
                ev.disconnect(cb)
            except Exception:  # noqa: BLE001 - already disconnected
                pass
