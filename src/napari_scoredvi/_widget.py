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
    SpinBox,
)
from napari.utils.notifications import show_error, show_info, show_warning

from . import __version__
from ._layer_slice import current_index
from .devices import DEVICE_CHOICES, describe_device, resolve_device
from .presets import PRESETS, Preset, get_preset
from .stack import SliceError, denoise_stack_steps, planned_iterations

SCOPE_SLICE = "current 2D slice"
SCOPE_ALL = "all slices"
SCOPE_RANGE = "range of slices"
#: layer properties copied from the source onto the outputs (those that exist on the layer)
COPIED_PROPERTIES = ("scale", "translate", "units", "axis_labels", "affine", "rotate", "shear")


def denoise_slices(
    data,
    lead_shape: tuple[int, ...],
    numbers: Sequence[int],
    denoised: np.ndarray,
    variance: np.ndarray,
    preset: str | Preset = "balanced",
    device: str = "auto",
    seed: int = 0,
    lam: float | None = None,
    posterior_std: np.ndarray | None = None,
    rgb: bool = False,
    warm_start: bool = True,
) -> Generator[dict, None, dict]:
    """Denoise the 2D slices ``numbers`` (flat slice numbers over the leading axes ``lead_shape``) of
    ``data`` into ``denoised`` / ``variance`` (and ``posterior_std`` when given), through the same
    per-slice loop as the batch pipeline (:func:`~napari_scoredvi.stack.denoise_stack_steps`).

    RGB(A) data (``rgb=True``, channels last) is denoised jointly over R, G, B (alpha is copied);
    its variance and std outputs have no channel axis (the mean over R, G, B). Reads one slice at a
    time (``np.asarray(data[idx])``), so dask/zarr data is never loaded whole. Yields the stack
    loop's events with ``"index"`` (the slice's leading index) added; closing the generator stops
    within an iteration. Returns ``{"done": [indices], "error": None | str, "info": last info}``.
    """
    done: list[tuple[int, ...]] = []
    info: dict = {}

    def index(k: int) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(k, lead_shape)) if lead_shape else ()

    def read(k: int) -> np.ndarray:
        plane = np.asarray(data[index(k)])
        return plane[..., :3] if rgb else plane

    def write(k: int, result) -> None:
        idx = index(k)
        if rgb:
            denoised[idx + (Ellipsis, slice(0, 3))] = result.denoised
            if denoised.shape[-1] == 4:  # alpha is not an intensity: keep it
                denoised[idx + (Ellipsis, 3)] = np.asarray(data[idx])[..., 3]
            variance[idx] = result.noise_variance.mean(-1)
            if posterior_std is not None:
                posterior_std[idx] = np.sqrt(np.mean(result.posterior_std**2, axis=-1))
        else:
            denoised[idx] = result.denoised
            variance[idx] = result.noise_variance
            if posterior_std is not None:
                posterior_std[idx] = result.posterior_std

    loop = denoise_stack_steps(read, numbers, write, channel_axis=2 if rgb else None, preset=preset,
                               device=device, seed=seed, lam=lam, warm_start=warm_start,
                               posterior_std=posterior_std is not None)
    try:
        while True:
            event = next(loop)
            event["index"] = index(event["slice"])
            if event["kind"] == "slice":
                done.append(event["index"])
                info = event["info"]
            yield event
    except StopIteration:
        pass
    except SliceError as exc:
        where = f"slice {index(exc.number)}: " if lead_shape else ""
        return {"done": done, "error": f"{where}{exc.__cause__}", "info": info}
    finally:
        loop.close()
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
                     self._first_box, self._last_box, self._warm_box, self._lam_box, self._std_box,
                     self._run_button, self._cancel_button, self._progress, self._status])
        self._scope_box.changed.connect(self._show_range)
        self._run_button.changed.connect(lambda: self.run())
        self._cancel_button.changed.connect(self.cancel)
        # keep the layer list current (also when not docked) and follow the active layer
        for ev in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            ev.connect(self._refresh_layers)
        napari_viewer.layers.selection.events.active.connect(self._follow_active)
        self._refresh_layers()

    def _show_range(self, event=None) -> None:
        ranged = self._scope_box.value == SCOPE_RANGE
        self._first_box.visible = self._last_box.visible = ranged

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

    # -- helpers ---------------------------------------------------------------------------
    def _current_index(self, layer, lead_ndim: int) -> tuple[int, ...]:
        """The leading-axis index of the slice the viewer shows, in the layer's data coordinates."""
        return current_index(self.viewer, layer, lead_ndim)

    def _output_layer(self, source, suffix: str, shape, colormap: str, contrast, rgb: bool = False) -> tuple:
        """The output layer named ``"<source> <suffix>"``: reused if its shape matches, else (re)created."""
        name = f"{source.name} {suffix}"
        if name in self.viewer.layers and self.viewer.layers[name].data.shape == shape \
                and isinstance(self.viewer.layers[name].data, np.ndarray) and self.viewer.layers[name].rgb == rgb:
            layer = self.viewer.layers[name]
            return layer, layer.data
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        arr = np.zeros(shape, np.float32)
        kwargs = {}
        for prop in COPIED_PROPERTIES:
            if hasattr(source, prop):
                kwargs[prop] = getattr(source, prop)
        if rgb:
            kwargs["rgb"] = True
        else:
            kwargs["colormap"] = colormap
        layer = self.viewer.add_image(arr, name=name, contrast_limits=contrast,
                                      blending="additive" if colormap != "gray" else "translucent", **kwargs)
        # keep the outputs beside the source in the layer list
        src_pos = list(self.viewer.layers).index(source)
        out_pos = list(self.viewer.layers).index(layer)
        if out_pos != src_pos + 1:
            self.viewer.layers.move(out_pos, src_pos + 1)
        return layer, arr

    def _slice_numbers(self, layer, lead_shape: tuple[int, ...]) -> list[int]:
        """Flat slice numbers (over ``lead_shape``) that the chosen scope covers."""
        if not lead_shape:
            return [0]
        scope = self._scope_box.value
        if scope == SCOPE_ALL:
            return list(range(int(np.prod(lead_shape))))
        if scope == SCOPE_RANGE:
            first, last = int(self._first_box.value), int(self._last_box.value)
            if not (0 <= first <= last < lead_shape[0]):
                raise ValueError(f"slice range {first}-{last} is outside the stack's first axis "
                                 f"(0-{lead_shape[0] - 1}); set 'from slice' <= 'to slice' inside it")
            inner = int(np.prod(lead_shape[1:]))
            return list(range(first * inner, (last + 1) * inner))
        return [int(np.ravel_multi_index(self._current_index(layer, len(lead_shape)), lead_shape))]

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
        data = layer.data
        if layer.multiscale:
            data = layer.data[0]
            show_info(f"ScoreDVI: {layer.name!r} is multiscale; denoising its full-resolution level")
        rgb = bool(layer.rgb)
        if data.ndim < 2 + rgb or np.dtype(data.dtype).kind not in "uif":
            show_error(f"ScoreDVI: cannot denoise data of shape {data.shape} and dtype {data.dtype}")
            return
        try:
            preset = self.preset_override or get_preset(self._preset_box.value)
            device = self._device_box.value
            resolve_device(device)
        except (ValueError, RuntimeError) as exc:
            show_error(f"ScoreDVI: {exc}")
            return
        lead_shape = tuple(int(n) for n in data.shape[: data.ndim - 2 - rgb])
        try:
            numbers = self._slice_numbers(layer, lead_shape)
        except ValueError as exc:
            show_error(f"ScoreDVI: {exc}")
            return
        single = self._scope_box.value == SCOPE_SLICE or not lead_shape
        warm = self._warm_box.value and not single
        contrast = tuple(float(c) for c in layer.contrast_limits)
        shape = tuple(data.shape)
        map_shape = shape[:-1] if rgb else shape  # RGB: one variance / std map for the three channels
        den_layer, den = self._output_layer(layer, "denoised", shape, "gray", contrast, rgb=rgb)
        var_layer, var = self._output_layer(layer, "noise variance", map_shape, "magma", (0.0, 1.0))
        std_layer, std = None, None
        if self._std_box.value:
            std_layer, std = self._output_layer(layer, "posterior std", map_shape, "viridis", (0.0, 1.0))
        lam = float(self._lam_box.value) or None
        params = {"source": layer.name, "preset": preset.as_dict(), "device": device, "seed": self.seed,
                  "scope": self._scope_box.value, "lam": "auto" if lam is None else lam, "warm_start": warm,
                  "version": __version__}
        outputs = [o for o in (den_layer, var_layer, std_layer) if o is not None]
        for out in outputs:
            out.metadata["scoredvi"] = dict(params, slices_done=[])
        self._layer_box.value = layer  # adding the outputs made one of them active
        self._job = {"layer": layer, "den": den_layer, "var": var_layer, "std": std_layer, "outputs": outputs,
                     "n": len(numbers), "var_max": 0.0}
        self.slices_done = 0
        total = planned_iterations(numbers, preset, warm)
        self._progress.max = max(total, 1)
        self._progress.value = 0
        self._status.value = f"running on {len(numbers)} slice(s)"
        gen = denoise_slices(data, lead_shape, numbers, den, var, preset, device, self.seed, lam, std, rgb, warm)
        # napari's own progress bar (activity dock) counts the worker's yields: steps plus slices
        worker = create_worker(lambda: (yield from gen), _start_thread=False,
                               _progress={"total": total + len(numbers), "desc": f"ScoreDVI {layer.name}"})
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
            job["steps"] = job.get("steps", 0) + 1
            self._progress.value = min(job["steps"], self._progress.max)
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
