"""The napari dock widget: denoise the current slice, a range or every slice of an image layer.

Qt glue only: the form (:mod:`.denoise_form`, read as a
:class:`~napari_scoredvi.napari.request.DenoiseRequest`), the worker, the output layers and the
notifications. What a request means (the slices, memory or store, the checks) is decided in
:mod:`napari_scoredvi.napari.request`; one 2D slice goes into in-memory layers, more slices through
the batch pipeline into an OME-Zarr store shown as lazy layers that fill in as slices finish, here
or on a dask.distributed cluster.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from magicgui.widgets import Label, ProgressBar, PushButton
from napari.qt.threading import create_worker
from napari.utils import progress as activity
from napari.utils.notifications import show_error, show_info, show_warning

from ..napari import remembered
from ..napari.layers import (
    OUTPUT_LAYERS,
    grid_enabled,
    layer_key,
    lead_axes,
    memory_output,
    output_layer_kwargs,
    output_unit,
    reusable_output,
    show_selected_colorbar,
    source_layer_name,
)
from ..napari.outputs import ActiveRun, RunEnd, run_to_end
from ..napari.partial import PartialStack
from ..napari.request import (
    RUN_CLUSTER,
    RUN_HERE,
    SCOPE_ALL,
    SCOPE_RANGE,
    SCOPE_SLICE,
    DenoiseRequest,
    RunPlan,
    check_cluster,
    plan_run,
    prepare_store_run,
)
from ..pipeline.events import SliceDone, SliceStep
from ..pipeline.progress import RunProgress
from ..pipeline.slices import planned_fits
from .denoise_form import DenoiseForm
from .dialogs import ask_existing_output
from .sizing import wrap_label
from .workers import ClosingGeneratorWorker

__all__ = ["RUN_CLUSTER", "RUN_HERE", "SCOPE_ALL", "SCOPE_RANGE", "SCOPE_SLICE", "ScoreDVIWidget"]

CLOSE_WAIT_MS = 10_000  # how long closing the widget waits for a running slice to stop
BAR_STEPS = 1000  # the progress bars count thousandths of the run's work


class ScoreDVIWidget(DenoiseForm):
    """Dock widget: pick an image layer, preset, device and scope (:class:`.denoise_form.DenoiseForm`),
    then Run (Cancel to stop)."""

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        #: asked when the output store exists; tests replace it (see :func:`.dialogs.ask_existing_output`)
        self.ask_existing = ask_existing_output
        self.worker = None
        #: the run started last (None before the first)
        self.active: ActiveRun | None = None
        self._closed = False
        self._added = False  # a run added output layers (the grid view is then reset)
        self._run_button = PushButton(text="Run")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", value=0, min=0, max=BAR_STEPS)
        self._activity = None  # napari's progress bar of the run (activity dock)
        self._status = Label(value="")
        wrap_label(self._status)  # a long status never widens the dock
        self._run_button.tooltip = "denoise the chosen image (scope) with the preset"
        self._cancel_button.tooltip = "stop within about 2 s; finished slices are kept"
        self._progress.tooltip = "the share of the run's work done (prior passes or fit steps)"
        self._status.tooltip = "the state of the last action"
        self._noted: set[tuple[int, str]] = set()  # (id(layer), note) already shown: one note per layer
        self._end_text: str | None = None  # the status line said at the end of the last run
        self._new_layers: list = []  # the output layers the last run added (not reused)
        self.extend([self._run_button, self._cancel_button, self._progress, self._status])
        self._run_button.changed.connect(lambda: self.run())
        self._cancel_button.changed.connect(self.cancel)
        napari_viewer.layers.events.removed.connect(self._layer_removed)
        napari_viewer.layers.selection.events.active.connect(self._selection_changed)
        self.native.destroyed.connect(self._on_destroyed)

    @property
    def running(self) -> bool:
        return getattr(self, "worker", None) is not None  # None also while the form is being made

    @property
    def slices_done(self) -> int:
        """Slices of the last run finished so far (with those done before it, on a resume)."""
        return self.active.progress.slices_done if self.active is not None else 0

    # -- actions ---------------------------------------------------------------------------
    def run(self, request: DenoiseRequest | None = None) -> None:
        """Start ``request`` (default: :meth:`request`, the form); errors become notifications and
        the status line."""
        if self.worker is not None:
            show_warning("ScoreDVI is already running; press Cancel first")
            return
        self._new_layers = []
        try:
            request = self.request() if request is None else request
            request = self._into_shown_store(request)
            plan = plan_run(request, note=lambda message: self._note_once(request.layer, message))
        except (ValueError, RuntimeError) as exc:
            self._not_started(str(exc))
            return
        if plan.to_store:
            self._run_to_store(plan)
            return
        src, lead, total = request.layer, len(plan.grid.grid_axes), len(plan.numbers)
        layers, arrays = {}, {}
        for name, shape in plan.memory_shapes().items():
            layers[name], arrays[name] = self._memory_layer(src, name, shape, plan.rgb, lead,
                                                            self._provenance(request, name, total))
        denoised = arrays["denoised"]
        computed = (lambda: denoised.written) if isinstance(denoised, PartialStack) else None
        self._start(plan, layers, plan.memory_steps(arrays), list(plan.numbers), arrays, computed=computed)

    def _not_started(self, message: str) -> None:
        show_error(f"ScoreDVI: {message}")
        self._status.value = f"not started: {message}"
        self._progress.value = 0

    def _note_once(self, layer, message: str) -> None:
        """A note about ``layer`` (e.g. it is multiscale), shown the first time only."""
        key = (layer_key(layer), message)
        if key not in self._noted:
            self._noted.add(key)
            show_info(f"ScoreDVI: {message}")

    def _into_shown_store(self, request: DenoiseRequest) -> DenoiseRequest:
        """A run of the current slice of a stack whose results in view come from a store goes into that
        store (which keeps them) rather than into new layers that would replace them; its posterior std
        follows the store's. (A range or all slices name their output: an existing one is asked about.)"""
        from ..io.store import open_store

        name = source_layer_name(request.layer, "denoised") if request.layer is not None else None
        if request.scope != SCOPE_SLICE or name not in self.viewer.layers:
            return request
        shown = self.viewer.layers[name].metadata.get("scoredvi", {}).get("store")
        if not shown:
            return request
        try:
            outputs = open_store(Path(shown), writable=False).outputs
        except (ValueError, OSError):  # gone from disk: a run like any other
            return request
        with_std = "posterior_std" in outputs
        if request.posterior_std and not with_std:
            raise ValueError(f"the results of {request.layer.name!r} in view ({shown!r}) have no posterior std: "
                             "untick 'add posterior std layer' to add slices to them, or run all slices to "
                             "replace them")
        return replace(request, output=Path(shown), update_store=True, posterior_std=with_std)

    def _run_to_store(self, plan: RunPlan) -> None:
        request = plan.request
        try:
            if request.on_cluster:
                check_cluster(request)
            remembered.remember(**request.remembered_choice())
            run = prepare_store_run(plan, self.ask_existing)
        except (ValueError, OSError) as exc:
            self._not_started(str(exc))
            return
        if run is None:
            self._status.value = "not started: the output exists and was kept (Run again to resume or replace it, " \
                                 "or pick another output path)"
            self._progress.value = 0
            return
        if not run.todo:
            show_info(f"ScoreDVI: every asked slice is already done in {str(run.path)!r}")
        total = len(plan.numbers)
        layers = {name: self._store_layer(request.layer, name, run.store, self._provenance(request, name, total,
                                                                                            run.store))
                  for name in run.store.outputs}
        steps = run.steps(request.scheduler if request.on_cluster else None)
        grid_shape = plan.grid.grid_shape
        self._start(plan, layers, steps, run.todo, run.store.arrays(), run.store,
                    computed=lambda: run.store.done().reshape(grid_shape))

    @staticmethod
    def _provenance(request: DenoiseRequest, name: str, total: int, store=None) -> dict:
        """A new ``metadata["scoredvi"]`` for output ``name`` of the run."""
        return dict(request.provenance(total, store), unit=output_unit(request.layer, name))

    def _start(self, plan: RunPlan, layers: dict, steps, todo: list[int], outputs, store=None,
               computed=None) -> None:
        request, total = plan.request, len(plan.numbers)
        self._hide_other_outputs(request.layer, layers)
        self._order_outputs(request.layer)
        self.viewer.layers.selection.active = request.layer  # the source stays active, not the last output
        self._layer_box.value = request.layer
        if self._added and grid_enabled(self.viewer):
            self.viewer.reset_view()  # grid mode: show the new panels whole
        self._added = False
        progress = RunProgress(total, total - len(todo), planned_fits(todo, request.settings))
        axes = lead_axes(request.layer, len(plan.grid.grid_axes))
        self.active = ActiveRun(request.layer, layers, outputs, progress, store, computed=computed, axes=axes)
        self._end_text = None
        self._progress.value = 0
        before = progress.slices_before
        self._status.value = f"running on {len(todo)} slice(s)" + (f" ({before} done before)" if before else "")
        # napari's own progress bar (activity dock), moved with ours: the worker's yields are not equal
        # shares of the work
        self._activity = activity(total=BAR_STEPS, desc=f"ScoreDVI {request.layer.name}")
        worker = create_worker(run_to_end, steps, _start_thread=False, _worker_class=ClosingGeneratorWorker)
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
        """Stop after the current prior pass or fit step; finished slices stay (in the layers, and on disk)."""
        if self.worker is not None:
            self.worker.quit()

    # -- output layers ---------------------------------------------------------------------
    def _add_output(self, source, name: str, data, metadata: dict, rgb: bool = False, **extra):
        """Add (or replace) output ``name``'s layer, just above the source in the layer list, with its
        ``metadata`` from the start (so the image chooser never proposes it)."""
        kwargs = output_layer_kwargs(source, name, rgb)
        if kwargs["name"] in self.viewer.layers:
            self.viewer.layers.remove(kwargs["name"])
        layer = self.viewer.add_image(data, **kwargs, metadata={"scoredvi": metadata}, **extra)
        self._added = True
        self._new_layers.append(layer)
        return layer

    def _order_outputs(self, source) -> None:
        """The source's outputs just above it in the layer list: denoised first, the maps above it (so a
        map shown with its eye is seen on top of the denoised image)."""
        at = list(self.viewer.layers).index(source) + 1
        for name in OUTPUT_LAYERS:
            layer_name = source_layer_name(source, name)
            if layer_name in self.viewer.layers:
                position = list(self.viewer.layers).index(self.viewer.layers[layer_name])
                if position != at:  # from below the source it lands just above it too
                    self.viewer.layers.move(position, at)
                at = list(self.viewer.layers).index(self.viewer.layers[layer_name]) + 1

    def _memory_layer(self, source, name: str, shape, rgb: bool, lead: int, metadata: dict) -> tuple:
        """An in-memory output layer, reused (and its array) if it already has this shape; a new one is
        NaN (blank, "not computed") until its slices are written (:func:`.layers.memory_output`). A
        reused layer's metadata keeps the slices done before and the earlier runs' provenance."""
        layer_name = source_layer_name(source, name)
        existing = self.viewer.layers[layer_name] if layer_name in self.viewer.layers else None
        if existing is not None and reusable_output(existing, shape, rgb and name == "denoised"):
            old = dict(existing.metadata.get("scoredvi", {}))
            earlier = old.pop("earlier_runs", [])
            metadata["slices_done"] = list(old.get("slices_done", []))
            metadata["earlier_runs"] = [*earlier, old]
            existing.metadata["scoredvi"] = metadata
            return existing, existing.data
        arr = memory_output(shape, lead)
        return self._add_output(source, name, arr, metadata, rgb, cache=False), arr

    def _store_layer(self, source, name: str, store, metadata: dict):
        """A lazy layer over output ``name`` of the store: read slice by slice, not cached, so it shows
        each slice as soon as it is written (NaN, blank, before); the layer already showing that store
        is kept (with the user's contrast and visibility)."""
        import dask.array as da

        layer_name = source_layer_name(source, name)
        existing = self.viewer.layers[layer_name] if layer_name in self.viewer.layers else None
        if existing is not None and existing.metadata.get("scoredvi", {}).get("store") == str(store.path):
            old = existing.metadata["scoredvi"]
            metadata["slices_done"] = list(old.get("slices_done", []))
            existing.metadata["scoredvi"] = metadata
            return existing
        return self._add_output(source, name, da.from_zarr(store.array(name)), metadata, cache=False)

    def _hide_other_outputs(self, source, layers: dict) -> None:
        """Outputs of ``source`` from an earlier run that this run does not make (a posterior std not
        asked for now) are hidden: never left on top of this run's results."""
        for name in OUTPUT_LAYERS:
            layer_name = source_layer_name(source, name)
            if name not in layers and layer_name in self.viewer.layers:
                self.viewer.layers[layer_name].visible = False

    def _selection_changed(self, event=None) -> None:
        show_selected_colorbar(self.viewer)

    def _layer_changed(self, event=None) -> None:
        super()._layer_changed(event)
        run, end = getattr(self, "active", None), getattr(self, "_end_text", None)  # None while the form is made
        if run is not None and end and not self.running and self._layer_box.value != run.source:
            # the bar and the status line spoke of the last run, on another layer: say whose
            self._progress.value = 0
            self._status.value = f"ready; the last run, on {run.source.name!r}: {end}"

    # -- worker callbacks (main thread) -----------------------------------------------------
    def _on_yielded(self, event) -> None:
        if self._closed:
            return
        progress = self.active.progress
        progress.record(event)
        if isinstance(event, SliceStep):
            self._show_fraction(progress.fraction())
        elif isinstance(event, SliceDone):
            self.active.slice_done(event, shown=lambda layer: layer in self.viewer.layers)
        else:
            return
        if self._end_text is None:  # a late event (delivered after the run's end) keeps the end's words
            self._status.value = progress.status()

    def _say_end(self, text: str) -> None:
        """The status line at the end of a run (said again when the worker finishes)."""
        self._end_text = text
        self._status.value = text

    def _on_returned(self, end: RunEnd) -> None:
        if self._closed:
            return
        run = self.active
        done, total = run.progress.slices_done, run.progress.slices_total
        if end.error:
            show_error(f"ScoreDVI: {end.error} ({done} slice(s) finished before)")
            self._say_end(self._with_coverage(f"failed: {done}/{total} slice(s) done"))
            return
        if self.worker is not None and self.worker.abort_requested:
            return  # _on_aborted says it
        run.finished(end)
        self._show_fraction(1.0)
        note = f"; {end.noise_note}" if end.noise_note else ""
        self._say_end(self._with_coverage(run.progress.status() + note))
        where = f" into {str(run.store.path)!r}" if run.store is not None else ""
        now = done - run.progress.slices_before  # by this run (those done before were said at its start)
        if now:
            show_info(f"ScoreDVI: denoised {now} slice(s) of {run.source.name!r}{where}{note}")

    def _on_errored(self, exc: Exception) -> None:
        if not self._closed:
            show_error(f"ScoreDVI failed: {exc}")
            self._say_end(self._with_coverage(f"failed: {exc}"))

    def _on_aborted(self) -> None:
        if self._closed:
            return
        progress = self.active.progress
        done, total = self.slices_done, progress.slices_total
        now = done - progress.slices_before  # finished by this run
        if now == 0:
            told = "no slice was finished" + (f" ({done} of {total} were done before, kept)" if done else "")
        else:
            where = " on disk: Run again to resume" if self.active.store is not None else ""
            told = f"{done} of {total} slice{'s' if total != 1 else ''} done (kept{where})"
        show_info(f"ScoreDVI cancelled: {told}")
        if now == 0:
            self._remove_unfilled()
        self._say_end(self._with_coverage(f"cancelled: {told}"))

    def _with_coverage(self, text: str) -> str:
        """``text`` and which slices of the outputs hold results, when not all of them do."""
        coverage = self.active.coverage() if self.active is not None else ""
        return f"{text}; {coverage}" if coverage else text

    def _show_fraction(self, fraction: float) -> None:
        value = round(BAR_STEPS * fraction)
        self._progress.value = value
        if self._activity is not None:
            self._activity.update(value - self._activity.n)

    def _on_finished(self) -> None:
        self.worker = None
        if self._activity is not None:
            self._activity.close()
            self._activity = None
        if self._closed:
            return
        self._run_button.enabled = True
        self._cancel_button.enabled = False
        if self._end_text is not None:
            self._status.value = self._end_text

    def _remove_unfilled(self) -> None:
        """A run into memory that ended before any slice was written takes away the layers it added
        (blank): nothing the user had."""
        run = self.active
        if run.store is not None or not self._new_layers:
            return
        for layer in self._new_layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        run.computed = None
        self._new_layers = []

    # -- closing -----------------------------------------------------------------------------
    def _layer_removed(self, event=None) -> None:
        """Removing the source layer of a run stops it (finished slices are kept); once it is gone the
        status line and the bar no longer speak of its run."""
        removed = getattr(event, "value", None)
        if removed is not None:
            self.forget_layer(removed)
            if self.active is not None and removed == self.active.source:
                if self.worker is not None:
                    show_info(f"ScoreDVI: {removed.name!r} was removed; stopping its run")
                    self.cancel()
                else:
                    self._status.value = f"{removed.name!r} was removed"
                    self._progress.value = 0
        self.refresh_layers()

    def _on_destroyed(self, *args) -> None:
        """The widget (or napari) is closing: stop the run cleanly and wait for its current slice."""
        self._closed = True
        worker = self.worker
        if worker is not None:
            worker.quit()
            worker.await_workers(CLOSE_WAIT_MS)
        self.disconnect_viewer()
        for ev, cb in ((self.viewer.layers.events.removed, self._layer_removed),
                       (self.viewer.layers.selection.events.active, self._selection_changed)):
            try:
                ev.disconnect(cb)
            except Exception:  # noqa: BLE001 - already disconnected
                pass
