"""The form of the denoise dock widget: its controls, which follow the viewer's layers, and the
form read as a :class:`~napari_scoredvi.napari.request.DenoiseRequest` (:meth:`DenoiseForm.request`).
The widget (:mod:`.denoise_widget`) adds Run, Cancel and the progress below it."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, SpinBox

from ..engine.devices import DEVICE_CHOICES, describe_device, resolve_device
from ..engine.presets import DEFAULT_PRESET, PRESETS, get_preset
from ..engine.settings import DenoiseSettings
from ..napari import remembered
from ..napari.layers import default_output, shown_index
from ..napari.request import (
    RUN_CHOICES,
    RUN_CLUSTER,
    RUN_HERE,
    SCOPE_RANGE,
    SCOPE_SLICE,
    SCOPES,
    DenoiseRequest,
)
from .sizing import compact_combobox, wrap_label

TEMPORARY_NOTE = "temporary folder: deleted when napari closes; pick a folder to keep the results"
#: shown instead of the fit's controls (warm starts, prior weight) for a preset without a fit
NO_FIT_NOTE = "{preset} denoises every slice on its own: warm starts and the prior weight are for variational only"


def auto_device_text() -> str:
    """What ``auto`` means on this machine, e.g. ``auto = cpu (2 threads)``."""
    try:
        return f"auto = {describe_device(resolve_device('auto'))}"
    except Exception as exc:  # noqa: BLE001 - shown to the user, never raised
        return f"auto: {exc}"


class DenoiseForm(Container):
    """The controls: image layer (following the active layer, never an output), preset, device,
    scope, slice range, output store, where to run, posterior std, and for the variational preset
    warm starts and the prior weight (hidden for the prior ensemble, with a line saying why)."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.seed = 0
        self._output_auto: str | None = None  # the output path we filled in (not typed by the user)
        memory = remembered.load()
        # choices from this viewer's layers (not napari's lookup of the viewer around the widget):
        # the widget then works with any viewer it is given, including a ViewerModel in tests
        self._layer_box = ComboBox(label="image", choices=self._image_layers)
        self._preset_box = ComboBox(label="preset", choices=list(PRESETS), value=DEFAULT_PRESET)
        self._device_box = ComboBox(label="device", choices=list(DEVICE_CHOICES), value="auto")
        self._device_label = Label(value=auto_device_text())
        self._scope_box = ComboBox(label="scope", choices=list(SCOPES), value=SCOPE_SLICE)
        self._first_box = SpinBox(label="from slice", value=0, min=0, max=100000, visible=False,
                                  tooltip="first index along the stack's first axis (inclusive)")
        self._last_box = SpinBox(label="to slice", value=0, min=0, max=100000, visible=False,
                                 tooltip="last index along the stack's first axis (inclusive)")
        self._output_box = FileEdit(label="output", mode="w", filter="*.zarr", visible=False,
                                    tooltip="OME-Zarr folder for the outputs of a stack (empty: beside the input "
                                            "file, or a temporary folder)")
        self._output_note = Label(value="", visible=False)
        run_on = memory.get("run_on")
        self._run_on_box = ComboBox(label="run on", choices=list(RUN_CHOICES),
                                    value=run_on if run_on in RUN_CHOICES else RUN_HERE)
        self._scheduler_box = LineEdit(label="scheduler", value=str(memory.get("scheduler", "")),
                                       tooltip="address of a dask.distributed scheduler, e.g. tcp://gpu-box:8786")
        self._scheduler_box.native.setPlaceholderText("tcp://host:8786")
        self._warm_box = CheckBox(text="warm-start each slice from the previous one", value=True,
                                  tooltip="stacks: each slice's fit starts from its neighbour's and runs "
                                          "fewer steps")
        self._lam_box = FloatSpinBox(label="prior weight", value=0.0, min=0.0, max=16.0, step=0.25,
                                     tooltip="lam, the weight of the score prior in the fit (higher = smoother); "
                                             "auto (0) = from the noise level")
        self._lam_box.native.setSpecialValueText("auto")  # shown at the minimum, 0, which means automatic
        self._fit_note = Label(value="")
        wrap_label(self._fit_note)
        self._std_box = CheckBox(text="add posterior std layer", value=False)
        compact_combobox(self._layer_box)  # long layer names do not widen the dock
        wrap_label(self._output_note)
        self.extend([self._layer_box, self._preset_box, self._device_box, self._device_label, self._scope_box,
                     self._first_box, self._last_box, self._output_box, self._output_note, self._run_on_box,
                     self._scheduler_box, self._warm_box, self._lam_box, self._fit_note, self._std_box])
        self._preset_box.changed.connect(self._show_scope)
        self._scope_box.changed.connect(self._show_scope)
        self._run_on_box.changed.connect(self._show_scope)
        self._layer_box.changed.connect(self._layer_changed)
        # keep the layer list current (also when not docked) and follow the active layer
        napari_viewer.layers.events.inserted.connect(self.refresh_layers)
        napari_viewer.layers.selection.events.active.connect(self._follow_active)
        self.refresh_layers()
        self._show_scope()

    @property
    def running(self) -> bool:
        """While a run goes on the layer box does not follow the active layer (the widget says when)."""
        return False

    def request(self, layer=None) -> DenoiseRequest:
        """The form as a request (``layer``: instead of the chosen one); a stack's empty output box
        is filled with the layer's default first."""
        layer = self._layer_box.value if layer is None else layer
        if self._scope_box.value != SCOPE_SLICE:
            self._suggest_output()
        typed = self._output_box.line_edit.value.strip()
        preset = get_preset(self._preset_box.value)
        fit = preset.kind == "variational"  # the fit's controls count only where they are shown
        settings = DenoiseSettings(preset, self._device_box.value, self.seed,
                                   float(self._lam_box.value) or None if fit else None,
                                   bool(self._warm_box.value) if fit else True)
        return DenoiseRequest(layer, settings, self._scope_box.value, int(self._first_box.value),
                              int(self._last_box.value), Path(typed) if typed else None, self._run_on_box.value,
                              self._scheduler_box.value, bool(self._std_box.value), shown_index(self.viewer, layer))

    def refresh_layers(self, event=None) -> None:
        """Relist the image layers (and follow the active one)."""
        self._layer_box.reset_choices()
        self._follow_active()

    def disconnect_viewer(self) -> None:
        """Stop following the viewer's layers (the widget is closing)."""
        for ev, cb in ((self.viewer.layers.events.inserted, self.refresh_layers),
                       (self.viewer.layers.selection.events.active, self._follow_active)):
            try:
                ev.disconnect(cb)
            except Exception:  # noqa: BLE001 - already disconnected
                pass

    def _show_scope(self, event=None) -> None:
        scope = self._scope_box.value
        self._first_box.visible = self._last_box.visible = scope == SCOPE_RANGE
        many = scope != SCOPE_SLICE
        fit = get_preset(self._preset_box.value).kind == "variational"
        self._output_box.visible = self._run_on_box.visible = many
        # a single slice has no neighbour to start from: the warm-start choice concerns stacks only
        self._warm_box.visible = fit and many
        self._lam_box.visible = fit
        self._fit_note.value = "" if fit else NO_FIT_NOTE.format(preset=self._preset_box.value)
        self._fit_note.visible = not fit
        self._output_note.visible = many and bool(self._output_note.value)
        self._scheduler_box.visible = many and self._run_on_box.value == RUN_CLUSTER
        if many:
            self._suggest_output()

    def _image_layers(self, widget=None) -> list[tuple[str, object]]:
        from napari.layers import Image

        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _follow_active(self, event=None) -> None:
        from napari.layers import Image

        active = self.viewer.layers.selection.active
        if "scoredvi" in getattr(active, "metadata", {}):  # never propose our own outputs
            return
        if isinstance(active, Image) and active in self._layer_box.choices and not self.running:
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
        self._output_note.value = TEMPORARY_NOTE if temporary else ""
        self._output_note.visible = temporary
