"""The napari dock widget: denoise the current slice or every slice of an image layer.

The per-slice work lives in :func:`denoise_slices`, a plain generator that needs no Qt (tested
headlessly); the widget drives it in a napari ``thread_worker`` and updates layers as slices finish.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    create_widget,
)
from napari.utils.notifications import show_error, show_info, show_warning

from . import __version__
from .api import denoise_steps
from .devices import DEVICE_CHOICES, describe_device, resolve_device
from .presets import PRESETS, Preset, get_preset

SCOPE_SLICE = "current 2D slice"
SCOPE_ALL = "all slices"
#: layer properties copied from the source onto the outputs (those that exist on the layer)
COPIED_PROPERTIES = ("scale", "translate", "units", "axis_labels", "affine", "rotate", "shear")


def denoise_slices(
    data,
    indices: Sequence[tuple[int, ...]],
    denoised: np.ndarray,
    variance: np.ndarray,
    preset: str | Preset = "balanced",
    device: str = "auto",
    seed: int = 0,
    lam: float | None = None,
    posterior_std: np.ndarray | None = None,
) -> Generator[dict, None, dict]:
    """Denoise ``data[idx]`` (2D) for each leading index into ``denoised[idx]`` / ``variance[idx]``
    (and ``posterior_std[idx]`` when given). ``lam``: prior weight, None for automatic.

    Reads one slice at a time (``np.asarray(data[idx])``), so dask/zarr data is never loaded whole.
    Yields ``{"kind": "step", ...}`` after every iteration and ``{"kind": "slice", "index": idx, ...}``
    after every finished slice; closing the generator stops within an iteration. Returns
    ``{"done": [indices], "error": None | str, "info": last slice's info}``.
    """
    done: list[tuple[int, ...]] = []
    info: dict = {}
    n = len(indices)
    for i, idx in enumerate(indices):
        try:
            plane = np.asarray(data[idx])
            steps = denoise_steps(plane, preset=preset, device=device, seed=seed, lam=lam)
            try:
                while True:
                    step, total = next(steps)
                    yield {"kind": "step", "slice": i, "n_slices": n, "step": step, "total": total}
            except StopIteration as stop:
                result = stop.value
            finally:
                steps.close()
        except (ValueError, TypeError, RuntimeError) as exc:
            return {"done": done, "error": f"slice {idx}: {exc}", "info": info}
        denoised[idx] = result.denoised
        variance[idx] = result.noise_variance
        if posterior_std is not None:
            posterior_std[idx] = result.posterior_std
        info = result.info
        done.append(idx)
        yield {"kind": "slice", "index": idx, "slice": i, "n_slices": n}
    return {"done": done, "error": None, "info": info}


def _auto_device_text() -> str:
    try:
        return f"auto = {describe_device(resolve_device('auto'))}"
    except Exception as exc:  # noqa: BLE001 - shown to the user, never raised
        return f"auto: {exc}"


class ScoreDVIWidget(Container):
    """Dock widget: pick an image layer, preset, device and scope, then Run (Cancel to stop)."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        #: tests (or scripts) may set a :class:`Preset` here to override the preset combo box
        self.preset_override: Preset | None = None
        self.seed = 0
        self.worker = None
        self.slices_done = 0
        self._layer_box = create_widget(annotation="napari.layers.Image", label="image")
        self._preset_box = ComboBox(label="preset", choices=list(PRESETS), value="fast")
        self._device_box = ComboBox(label="device", choices=list(DEVICE_CHOICES), value="auto")
        self._device_label = Label(value=_auto_device_text())
        self._scope_box = ComboBox(label="scope", choices=[SCOPE_SLICE, SCOPE_ALL], value=SCOPE_SLICE)
        self._lam_box = FloatSpinBox(label="prior weight", value=0.0, min=0.0, max=16.0, step=0.25,
                                     tooltip="lam, the weight of the score prior; 0 = automatic from the noise level")
        self._std_box = CheckBox(text="add posterior std layer", value=False)
        self._run_button = PushButton(text="Run")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self._status = Label(value="")
        self.extend([self._layer_box, self._preset_box, self._device_box, self._device_label, self._scope_box,
                     self._lam_box, self._std_box, self._run_button, self._cancel_button, self._progress, self._status])
        self._run_button.changed.connect(lambda: self.run())
        self._cancel_button.changed.connect(self.cancel)
        # keep the layer list current (also when not docked) and follow the active layer
        for ev in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            ev.connect(self._refresh_layers)
        napari_viewer.layers.selection.events.active.connect(self._follow_active)
        self._refresh_layers()

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

    # -- helpers ---------------------------------------------------------------------------
    def _current_index(self, layer, lead_ndim: int) -> tuple[int, ...]:
        """The leading-axis index of the slice the viewer shows, in the layer's data coordinates."""
        if lead_ndim == 0:
            return ()
        try:
            point = np.asarray(self.viewer.dims.point)[-layer.ndim:]
            coords = np.asarray(layer.world_to_data(point))[:lead_ndim]
        except Exception:  # noqa: BLE001 - fall back to the first slice
            coords = np.zeros(lead_ndim)
        shape = layer.data[0].shape if layer.multiscale else layer.data.shape
        return tuple(int(np.clip(np.round(c), 0, s - 1)) for c, s in zip(coords, shape[:lead_ndim]))

    def _output_layer(self, source, suffix: str, shape, colormap: str, contrast) -> tuple:
        """The output layer named ``"<source> <suffix>"``: reused if its shape matches, else (re)created."""
        name = f"{source.name} {suffix}"
        if name in self.viewer.layers and self.viewer.layers[name].data.shape == shape \
                and isinstance(self.viewer.layers[name].data, np.ndarray):
            layer = self.viewer.layers[name]
            return layer, layer.data
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        arr = np.zeros(shape, np.float32)
        kwargs = {}
        for prop in COPIED_PROPERTIES:
            if hasattr(source, prop):
                kwargs[prop] = getattr(source, prop)
        layer = self.viewer.add_image(arr, name=name, colormap=colormap, contrast_limits=contrast,
                                      blending="additive" if colormap != "gray" else "translucent", **kwargs)
        # keep the outputs beside the source in the layer list
        src_pos = list(self.viewer.layers).index(source)
        out_pos = list(self.viewer.layers).index(layer)
        if out_pos != src_pos + 1:
            self.viewer.layers.move(out_pos, src_pos + 1)
        return layer, arr

    # -- actions ---------------------------------------------------------------------------
    def run(self, layer=None) -> None:
        """Start denoising ``layer`` (default: the one chosen in the widget); errors become notifications."""
        from napari.layers import Image
        from napari.qt.threading import create_worker

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
        if layer.rgb:
            show_error(f"ScoreDVI: RGB layers are not supported by the widget yet ({layer.name!r})")
            return
        data = layer.data
        if layer.multiscale:
            data = layer.data[0]
            show_info(f"ScoreDVI: {layer.name!r} is multiscale; denoising its full-resolution level")
        if data.ndim < 2 or np.dtype(data.dtype).kind not in "uif":
            show_error(f"ScoreDVI: cannot denoise data of shape {data.shape} and dtype {data.dtype}")
            return
        try:
            preset = self.preset_override or get_preset(self._preset_box.value)
            device = self._device_box.value
            resolve_device(device)
        except (ValueError, RuntimeError) as exc:
            show_error(f"ScoreDVI: {exc}")
            return
        lead = data.ndim - 2
        if self._scope_box.value == SCOPE_ALL and lead > 0:
            indices = list(np.ndindex(*data.shape[:lead]))
        else:
            indices = [self._current_index(layer, lead)]
        contrast = tuple(float(c) for c in layer.contrast_limits)
        den_layer, den = self._output_layer(layer, "denoised", tuple(data.shape), "gray", contrast)
        var_layer, var = self._output_layer(layer, "noise variance", tuple(data.shape), "magma", (0.0, 1.0))
        std_layer, std = None, None
        if self._std_box.value:
            std_layer, std = self._output_layer(layer, "posterior std", tuple(data.shape), "viridis", (0.0, 1.0))
        lam = float(self._lam_box.value) or None
        params = {"source": layer.name, "preset": preset.as_dict(), "device": device, "seed": self.seed,
                  "scope": self._scope_box.value, "lam": "auto" if lam is None else lam, "version": __version__}
        outputs = [o for o in (den_layer, var_layer, std_layer) if o is not None]
        for out in outputs:
            out.metadata["scoredvi"] = dict(params, slices_done=[])
        self._layer_box.value = layer  # adding the outputs made one of them active
        self._job = {"layer": layer, "den": den_layer, "var": var_layer, "std": std_layer, "outputs": outputs,
                     "n": len(indices), "var_max": 0.0}
        self.slices_done = 0
        self._progress.max = max(len(indices) * preset.iterations, 1)
        self._progress.value = 0
        self._status.value = f"running on {len(indices)} slice(s)"
        gen = denoise_slices(data, indices, den, var, preset, device, self.seed, lam, std)
        worker = create_worker(lambda: (yield from gen), _start_thread=False)
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.aborted.connect(self._on_aborted)
        worker.errored.connect(lambda exc: show_error(f"ScoreDVI failed: {exc}"))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._run_button.enabled = False
        self._cancel_button.enabled = True
        worker.start()

    def cancel(self) -> None:
        """Stop after the current iteration; finished slices stay in the output layers."""
        if self.worker is not None:
            self.worker.quit()

    # -- worker callbacks (main thread) -----------------------------------------------------
    def _on_yielded(self, event: dict) -> None:
        job = self._job
        if event["kind"] == "step":
            self._progress.value = min(event["slice"] * event["total"] + event["step"], self._progress.max)
            return
        idx = event["index"]
        self.slices_done += 1
        finite = job["var"].data[idx]
        vmax = float(np.nanpercentile(finite, 99.5)) if finite.size else 0.0
        job["var_max"] = max(job["var_max"], vmax)
        if job["var_max"] > 0:
            job["var"].contrast_limits = (0.0, job["var_max"])
        if job["std"] is not None:
            job["std_max"] = max(job.get("std_max", 0.0), float(np.nanpercentile(job["std"].data[idx], 99.5)))
            if job["std_max"] > 0:
                job["std"].contrast_limits = (0.0, job["std_max"])
        for out in job["outputs"]:
            out.metadata["scoredvi"]["slices_done"].append([int(i) for i in idx])
            out.refresh()
        self._status.value = f"{self.slices_done}/{job['n']} slice(s) done"

    def _on_returned(self, result: dict) -> None:
        if result["error"]:
            show_error(f"ScoreDVI: {result['error']} ({len(result['done'])} slice(s) finished before)")
            return
        for out in self._job["outputs"]:
            out.metadata["scoredvi"]["info"] = result["info"]
        self._progress.value = self._progress.max
        show_info(f"ScoreDVI: denoised {len(result['done'])} slice(s) of {self._job['layer'].name!r}")

    def _on_aborted(self) -> None:
        show_info(f"ScoreDVI cancelled: {self.slices_done} of {self._job['n']} slice(s) done (kept)")
        self._status.value = f"cancelled: {self.slices_done}/{self._job['n']} slice(s) done"

    def _on_finished(self) -> None:
        self.worker = None
        self._run_button.enabled = True
        self._cancel_button.enabled = False
