"""The form of the denoise dock widget: its controls, which follow the viewer's layers, and the
form read as a :class:`~napari_scoredvi.napari.request.DenoiseRequest` (:meth:`DenoiseForm.request`).
The widget (:mod:`.denoise_widget`) adds Run, Cancel and the progress below it."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, SpinBox

from ..engine.devices import DEVICE_CHOICES, describe_device, resolve_device
from ..engine.presets import DEFAULT_PRESET, PRESETS, get_preset
from ..engine.settings import DEFAULT_CONTEXT, MAX_CONTEXT, DenoiseSettings
from ..napari import remembered
from ..napari.layers import default_output, full_resolution, is_output, layer_key, lead_axes, shown_index
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
NO_FIT_NOTE = "{preset} fits nothing: warm starts and the prior weight are for variational only"
#: what an index along a stack's first axis counts, by axis letter (the range's labels)
AXIS_WORDS = {"Z": "z-slice", "T": "time point", "C": "channel"}


def auto_device_text() -> str:
    """What ``auto`` means on this machine, e.g. ``auto = cpu (2 threads)``."""
    try:
        return f"auto = {describe_device(resolve_device('auto'))}"
    except Exception as exc:  # noqa: BLE001 - shown to the user, never raised
        return f"auto: {exc}"


class DenoiseForm(Container):
    """The controls: image layer (following the active layer, never an output), preset, device,
    scope, slice range, output store, where to run, posterior std, and for the variational preset
    warm starts and the prior weight (hidden for the prior ensemble, with a line saying why).
    Every control has a tooltip; an output path typed for one layer is never carried to another."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.seed = 0
        self._output_auto: str | None = None  # the output path we filled in (not typed by the user)
        self._typed_outputs: dict[int, str] = {}  # id(layer) -> the output path the user typed for it
        self._output_layer = None  # the layer the output box's path is for
        memory = remembered.load()
        # choices from this viewer's layers (not napari's lookup of the viewer around the widget):
        # the widget then works with any viewer it is given, including a ViewerModel in tests
        self._layer_box = ComboBox(label="image", choices=self._image_layers,
                                   tooltip="the image layer to denoise (follows the selected layer; the outputs "
                                           "of a run are never proposed)")
        self._preset_box = ComboBox(label="preset", choices=list(PRESETS), value=DEFAULT_PRESET,
                                    tooltip="fast: one pass of the prior denoisers (seconds); balanced: 8 flipped "
                                            "and rotated views averaged (slower, a little better); variational: "
                                            "ScoreDVI's fit as published (minutes per slice)")
        self._device_box = ComboBox(label="device", choices=list(DEVICE_CHOICES), value="auto",
                                    tooltip="where the networks run: auto picks a CUDA or Apple GPU when torch "
                                            "sees one, else the CPU")
        self._device_label = Label(value=auto_device_text(), tooltip="what 'auto' means on this computer")
        self._scope_box = ComboBox(label="scope", choices=list(SCOPES), value=SCOPE_SLICE,
                                   tooltip="current 2D slice: the plane the viewer shows (into memory, seconds); "
                                           "all slices or a range: the stack into an OME-Zarr folder on disk, "
                                           "shown as it fills in")
        self._first_box = SpinBox(label="from slice", value=0, min=0, max=100000, visible=False)
        self._last_box = SpinBox(label="to slice", value=0, min=0, max=100000, visible=False)
        self._output_box = FileEdit(label="output", mode="w", filter="*.zarr", visible=False,
                                    tooltip="the OME-Zarr folder a stack's outputs are written to: filled in beside "
                                            "the input file (or a temporary folder, as the line below then says); "
                                            "a path typed here is for this image only")
        self._output_note = Label(value="", visible=False)
        run_on = memory.get("run_on")
        self._run_on_box = ComboBox(label="run on", choices=list(RUN_CHOICES),
                                    value=run_on if run_on in RUN_CHOICES else RUN_HERE,
                                    tooltip="this computer, or the workers of a dask.distributed cluster (one "
                                            "task per slice; the results come back into the same folder)")
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
        self._context_box = SpinBox(label="neighbours", value=DEFAULT_CONTEXT, min=0, max=MAX_CONTEXT,
                                    tooltip="stacks: how many neighbouring slices on each side (along the stack's "
                                            "last axis before Y, X: z, or t of a time-lapse) are read with each "
                                            "slice; where they agree with it they lower its noise. 0 = every slice "
                                            "on its own")
        self._std_box = CheckBox(text="add posterior std layer", value=False,
                                 tooltip="also a map of each pixel's uncertainty (posterior standard deviation, "
                                         "in the image's units); costs one more pass")
        compact_combobox(self._layer_box)  # long layer names do not widen the dock
        wrap_label(self._output_note)
        self.extend([self._layer_box, self._preset_box, self._device_box, self._device_label, self._scope_box,
                     self._first_box, self._last_box, self._output_box, self._output_note, self._run_on_box,
                     self._scheduler_box, self._context_box, self._warm_box, self._lam_box, self._fit_note,
                     self._std_box])
        self._preset_box.changed.connect(self._show_scope)
        self._scope_box.changed.connect(self._show_scope)
        self._run_on_box.changed.connect(self._show_scope)
        self._layer_box.changed.connect(self._layer_changed)
        self._output_box.changed.connect(self._output_typed)
        # keep the layer list current (also when not docked) and follow the active layer
        napari_viewer.layers.events.inserted.connect(self.refresh_layers)
        napari_viewer.layers.selection.events.active.connect(self._follow_active)
        self.refresh_layers()
        self._label_range()
        self._show_scope()

    @property
    def running(self) -> bool:
        """While a run goes on the layer box does not follow the active layer (the widget says when)."""
        return False

    def request(self, layer=None) -> DenoiseRequest:
        """The form as a request (``layer``: instead of the chosen one); a stack's empty output box
        is filled with the layer's default first."""
        layer = self._layer_box.value if layer is None else layer
        many = self._scope_box.value != SCOPE_SLICE
        if many:
            self._suggest_output()
        typed = self._output_box.line_edit.value.strip()
        preset = get_preset(self._preset_box.value)
        fit = preset.kind == "variational"  # the fit's controls count only where they are shown
        # one slice has no neighbour to start from: no warm start, whatever the (hidden) box says
        settings = DenoiseSettings(preset, self._device_box.value, self.seed,
                                   float(self._lam_box.value) or None if fit else None,
                                   bool(self._warm_box.value) and many if fit else True,
                                   context=0 if fit else int(self._context_box.value))
        return DenoiseRequest(layer, settings, self._scope_box.value, int(self._first_box.value),
                              int(self._last_box.value), Path(typed) if typed else None, self._run_on_box.value,
                              self._scheduler_box.value, bool(self._std_box.value), shown_index(self.viewer, layer))

    def refresh_layers(self, event=None) -> None:
        """Relist the image layers (and follow the active one)."""
        self._layer_box.reset_choices()
        self._follow_active()

    def forget_layer(self, layer) -> None:
        """``layer`` was removed: forget the output path typed for it."""
        self._typed_outputs.pop(layer_key(layer), None)
        if self._output_layer == layer:
            self._output_layer = None

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
        self._context_box.visible = not fit and self._stack_layer()
        self._fit_note.value = "" if fit else NO_FIT_NOTE.format(preset=self._preset_box.value)
        self._fit_note.visible = not fit
        self._output_note.visible = many and bool(self._output_note.value)
        self._scheduler_box.visible = many and self._run_on_box.value == RUN_CLUSTER
        if many:
            self._suggest_output()

    def _stack_layer(self) -> bool:
        """Whether the chosen layer has slices besides Y, X (and RGB's colours): neighbours to read."""
        layer = self._layer_box.value
        if layer is None:
            return False
        return full_resolution(layer).ndim - 2 - bool(getattr(layer, "rgb", False)) > 0

    def _label_range(self) -> None:
        """Name what the range counts: the stack's first axis (``from z-slice``; ``from time point`` on
        a T x Z stack, whose every time point covers all its z-slices)."""
        layer = self._layer_box.value
        word, inner = "slice", ""
        if layer is not None:
            data = full_resolution(layer)
            lead = data.ndim - 2 - bool(getattr(layer, "rgb", False))
            axes = lead_axes(layer, lead)
            if axes:
                word = AXIS_WORDS.get(axes[0], f"{axes[0].lower()} index")
                if lead > 1:
                    rest = " x ".join(f"{int(n)} {AXIS_WORDS.get(a, a.lower())}s"
                                      for a, n in zip(axes[1:], data.shape[1:lead]))
                    inner = f"; each {word} covers its {rest}"
        for box, end in ((self._first_box, "first"), (self._last_box, "last")):
            box.label = f"{'from' if end == 'first' else 'to'} {word}"
            box.tooltip = f"{end} index along the stack's first axis ({word}s, from 0; inclusive){inner}"

    def _image_layers(self, widget=None) -> list[tuple[str, object]]:
        from napari.layers import Image

        layers = self.viewer.layers
        return [(layer.name, layer) for layer in layers if isinstance(layer, Image) and not is_output(layer)]

    def _follow_active(self, event=None) -> None:
        from napari.layers import Image

        active = self.viewer.layers.selection.active
        if is_output(active):  # never propose our own outputs
            return
        if isinstance(active, Image) and active in self._layer_box.choices and not self.running:
            self._layer_box.value = active

    def _layer_changed(self, event=None) -> None:
        """Another layer: its own output path (the one typed for it, else its default), never the last
        layer's; the range's labels for its axes."""
        typed = self._output_box.line_edit.value.strip()
        if self._output_layer is not None and typed and typed != self._output_auto:
            self._typed_outputs[layer_key(self._output_layer)] = typed
        layer = self._layer_box.value
        self._output_layer = layer
        self._output_box.line_edit.value = self._typed_outputs.get(layer_key(layer), "") if layer is not None else ""
        self._output_auto = None
        self._label_range()
        self._show_scope()  # fills a stack's output box with this layer's default, too

    def _output_typed(self, event=None) -> None:
        """The temporary-folder note is for the filled-in default only: gone once a path is typed."""
        if self._output_box.line_edit.value.strip() != (self._output_auto or ""):
            self._output_note.visible = False
            self._output_note.value = ""

    def _suggest_output(self) -> None:
        """Fill the output box with the chosen layer's default, unless the user typed a path for it."""
        layer = self._layer_box.value
        typed = self._output_box.line_edit.value.strip()
        if layer is None or (typed and typed != self._output_auto):
            return
        path, temporary = default_output(layer)
        self._output_auto = str(path)
        self._output_box.value = path
        self._output_note.value = TEMPORARY_NOTE if temporary else ""
        self._output_note.visible = temporary
