"""The napari dock widget for noise calibration (photon transfer) of the slice the viewer shows.

A thin layer over :func:`napari_scoredvi.calibration.calibrate` (the same function as
``napari-scoredvi calibrate``) and :func:`napari_scoredvi.calibration_plot.draw`, on a matplotlib
canvas embedded in Qt. The Compute button runs the fit in a napari worker thread, which returns a
failure instead of raising it: it is reported once, as a notification, never as a traceback.
The image box proposes a raw noisy frame (:mod:`napari_scoredvi.napari.calibration_input`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, LineEdit, PushButton
from napari.utils.notifications import show_error, show_info

from ..calibration.photon_transfer import Calibration, calibrate
from ..calibration.plot import draw, save_plot
from ..napari.calibration_input import noise_hint, pick_raw_layer
from ..napari.layers import current_index, output_layer_name
from .sizing import compact_combobox, wrap_label

NO_MAP = "none"
#: the plot's size hint (inches at 90 dpi: 320 x 270 px), so docking does not widen napari's window
FIGURE_SIZE = (3.55, 3.0)


def calibrate_or_error(output: bool = False, **kwargs) -> tuple[Calibration | Exception, str | None]:
    """:func:`calibrate` (in the worker thread): its result or its failure, returned, never raised
    (napari would report a raised one a second time and re-raise it in its main thread), and what
    to tell the user when the image does not look like a raw noisy frame (``output``: it is a
    ScoreDVI output; :func:`..napari.calibration_input.noise_hint`)."""
    try:
        result = calibrate(**kwargs)
    except Exception as exc:  # noqa: BLE001 - reported once, as a notification
        return exc, noise_hint(kwargs.get("image"), output, failed=True)
    return result, noise_hint(kwargs["image"], output, failed=False)


class NoiseCalibrationWidget(Container):
    """Pick an image layer (raw camera data, in ADU) and press Compute: noise variance against
    intensity for the slice the viewer shows, the fitted gain and intercept, the noise's lag-1 spatial
    correlation (y, x), and the read noise or offset from whichever of the two is typed in. Optionally
    overlays a ScoreDVI noise-variance layer's curve (binned by the matching "denoised" layer)."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.viewer = napari_viewer
        #: the last calibration computed (None before Compute or after an error)
        self.result: Calibration | None = None
        self.worker = None
        self._title = ""
        self._picked = None  # the layer the image box proposed (not one the user chose)
        self._layer_box = ComboBox(label="image", choices=self._image_layers, nullable=True,
                                   tooltip="raw camera data (ADU) of a sample, noisy: not a ground truth, not denoised")
        self._map_box = ComboBox(label="noise-variance layer", choices=self._map_choices, nullable=False,
                                 tooltip="optional: a ScoreDVI noise-variance output of this image, to compare "
                                         "its curve (binned by the matching denoised layer) with the measurement")
        self._gain_box = LineEdit(label="known gain (ADU/e-)", value="",
                                  tooltip="optional: the camera's gain, to compare with the measured one")
        self._offset_box = LineEdit(label="offset (ADU)", value="",
                                    tooltip="the camera's dark level (data sheet, or a dark frame's mean): gives the "
                                            "read noise")
        self._read_box = LineEdit(label="read noise (e-)", value="",
                                  tooltip="the camera's read noise (data sheet): gives the offset; "
                                          "fill in the offset or the read noise, not both")
        self._compute_button = PushButton(text="Compute")
        self._export_button = PushButton(text="Export JSON + CSV + PNG...", enabled=False)
        self._status = Label(value="")
        wrap_label(self._status)
        for box in (self._layer_box, self._map_box):
            compact_combobox(box)
        self.figure = Figure(figsize=FIGURE_SIZE, dpi=90)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumSize(200, 240)
        self.extend([self._layer_box, self._map_box, self._gain_box, self._offset_box, self._read_box,
                     self._compute_button, self._export_button, self._status])
        self.native.layout().addWidget(self.canvas)
        self._compute_button.changed.connect(self.run)
        self._export_button.changed.connect(self._export_dialog)
        for ev in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            ev.connect(self._refresh_layers)
        self._refresh_layers()

    def _image_layers(self, widget=None) -> list:
        from napari.layers import Image

        return [(ly.name, ly) for ly in self.viewer.layers if isinstance(ly, Image)]

    def _map_choices(self, widget=None) -> list:
        return [(NO_MAP, None)] + self._image_layers()

    def _refresh_layers(self, event=None) -> None:
        """Relist the layers; propose a raw noisy frame unless the user chose a layer that is still there."""
        chosen = self._layer_box.value
        self._layer_box.reset_choices()
        self._map_box.reset_choices()
        layers = [layer for _, layer in self._image_layers()]
        if chosen is None or chosen is self._picked or chosen not in layers:
            self._picked = pick_raw_layer(layers)
            if self._picked is not None:
                self._layer_box.value = self._picked

    # -- reading -----------------------------------------------------------------------------
    def _plane(self, layer) -> tuple[np.ndarray, tuple[int, ...]]:
        """The 2D slice of ``layer`` the viewer shows, and its leading index."""
        data = layer.data[0] if layer.multiscale else layer.data
        if layer.rgb:
            raise ValueError(f"{layer.name!r} is an RGB layer; calibrate one channel at a time (split the "
                             "channels, e.g. layer context menu > Split RGB)")
        if data.ndim < 2:
            raise ValueError(f"{layer.name!r} has shape {data.shape}; need an image with 2 or more dimensions")
        idx = current_index(self.viewer, layer, data.ndim - 2)
        return np.asarray(data[idx]), idx

    def _map_planes(self, image_layer) -> tuple[np.ndarray, np.ndarray, str] | None:
        """(denoised plane, noise-variance plane, note) for the chosen noise-variance layer, or None."""
        var_layer = self._map_box.value
        if var_layer is None:
            return None
        var, _ = self._plane(var_layer)
        source = var_layer.metadata.get("scoredvi", {}).get("source", image_layer.name)
        name = output_layer_name(source, "denoised")
        if name in self.viewer.layers:
            den, _ = self._plane(self.viewer.layers[name])
            return den, var, f"map binned by {name!r}"
        plane, _ = self._plane(image_layer)
        return plane, var, f"no layer {name!r}: map binned by the noisy image (biased at edges)"

    @staticmethod
    def _number(box: LineEdit, what: str) -> float | None:
        text = str(box.value).strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{what} {text!r} is not a number; type a number (e.g. 100) or leave it empty") from None
        if not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number, got {text!r}")
        return value

    # -- actions -----------------------------------------------------------------------------
    def _prepare(self, layer) -> tuple[dict, str, str | None]:
        """calibrate()'s arguments for the shown slice of ``layer``, where it is, and the map note."""
        from napari.layers import Image

        if not isinstance(layer, Image):
            raise ValueError("choose an Image layer with raw camera data")
        kwargs = {"gain_known": self._number(self._gain_box, "known gain"),
                  "offset": self._number(self._offset_box, "offset"),
                  "read_noise_e": self._number(self._read_box, "read noise")}
        if kwargs["offset"] is not None and kwargs["read_noise_e"] is not None:
            raise ValueError("fill in the offset or the read noise, not both: the other follows from the fit")
        kwargs["image"], idx = self._plane(layer)
        kwargs["output"] = "scoredvi" in layer.metadata
        maps = self._map_planes(layer)
        if maps is not None:
            kwargs["denoised"], kwargs["noise_variance"] = maps[0], maps[1]
        where = f"slice {list(idx)}" if idx else "2D image"
        return kwargs, f"{layer.name}, {where}", (maps[2] if maps is not None else None)

    def _fail(self, exc: Exception, hint: str | None = None) -> None:
        """Report a failure once: the status line and one error notification (with ``hint``, the
        likely cause, when the layer does not look like a raw noisy frame)."""
        self.result = None
        self._export_button.enabled = False
        message = f"{exc}" + (f". {hint[0].upper()}{hint[1:]}" if hint else "")
        self._status.value = f"error: {message}"
        show_error(f"Noise calibration: {message}")

    def _done(self, outcome: tuple, title: str, note: str | None) -> None:
        """The worker returned (:func:`calibrate_or_error`): show the result, or report its failure."""
        result, hint = outcome
        if isinstance(result, Exception):
            self._fail(result, hint)
        else:
            self._show(result, title, "\n".join(filter(None, [note, hint and f"warning: {hint}"])) or None)

    def _show(self, result: Calibration, title: str, note: str | None) -> None:
        self.result, self._title = result, title
        self.figure.clear()
        draw(self.figure.add_subplot(), result, title)
        self.figure.tight_layout()
        self.canvas.draw_idle()
        self._status.value = "\n".join(result.summary() + ([note] if note else []))
        self._export_button.enabled = True

    def compute(self, layer=None) -> Calibration | None:
        """Calibrate the shown slice of ``layer`` (default: the chosen one) here, on the calling thread,
        draw it and return the result; errors become notifications (and None)."""
        try:
            kwargs, title, note = self._prepare(self._layer_box.value if layer is None else layer)
        except ValueError as exc:
            self._fail(exc)
            return None
        outcome = calibrate_or_error(**kwargs)
        self._done(outcome, title, note)
        return None if isinstance(outcome[0], Exception) else outcome[0]

    def run(self) -> None:
        """The Compute button: the slice is read here, the fit runs in a napari worker thread (a
        2048 x 2048 slice takes seconds), and the plot is drawn when it returns."""
        from napari.qt.threading import create_worker

        if self.worker is not None:
            return
        try:
            kwargs, title, note = self._prepare(self._layer_box.value)
        except ValueError as exc:
            self._fail(exc)
            return
        worker = create_worker(calibrate_or_error, _start_thread=False, **kwargs)
        worker.returned.connect(lambda outcome: self._done(outcome, title, note))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._compute_button.enabled = False
        self._status.value = "computing..."
        worker.start()

    def _on_finished(self) -> None:
        self.worker = None
        self._compute_button.enabled = True

    def export(self, path: str | Path) -> list[Path]:
        """Write the last result as ``<path>.json``, ``<path>.csv`` and ``<path>.png`` (any suffix of
        ``path`` is replaced); returns the files written."""
        if self.result is None:
            raise ValueError("nothing to export yet: press Compute first")
        base = Path(path)
        base = base.with_suffix("") if base.suffix.lower() in (".json", ".csv", ".png") else base
        return [self.result.write_json(base.with_name(base.name + ".json")),
                self.result.write_csv(base.with_name(base.name + ".csv")),
                save_plot(self.result, base.with_name(base.name + ".png"), self._title)]

    def _export_dialog(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self.native, "Export noise calibration", "calibration.json",
                                              "JSON (*.json)")
        if not path:
            return
        try:
            written = self.export(path)
        except (ValueError, OSError) as exc:
            show_error(f"Noise calibration: could not export ({exc})")
            return
        show_info("Noise calibration: wrote " + ", ".join(p.name for p in written) + f" to {written[0].parent}")
