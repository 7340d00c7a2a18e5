"""What the denoise dock widget is asked to do, and the decisions made before a run starts, without Qt.

A :class:`DenoiseRequest` is the widget's form as one frozen value (the layer, the settings, the
scope, the output store, where to run). :func:`plan_run` checks it and works out the slices it
covers (:func:`slice_numbers`) and whether they go into memory or into an output store
(:attr:`RunPlan.to_store`); :func:`prepare_store_run` opens that store (asking first when it
exists). Errors are ValueError (RuntimeError for an absent device) whose message the widget shows.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.settings import DenoiseSettings
from ..engine.validate import check_dtype
from ..io.errors import ArgumentRemedy
from ..io.slice_grid import SliceGrid
from ..pipeline.events import SliceDone, SliceStep
from ..pipeline.provenance import layer_provenance
from ..pipeline.slices import SlicesOutcome, denoise_slices
from .layers import (
    default_output,
    dropped_scale_note,
    full_resolution,
    layer_volume,
    output_names,
    output_shape,
)

SCOPE_SLICE = "current 2D slice"
SCOPE_ALL = "all slices"
SCOPE_RANGE = "range of slices"
SCOPES = (SCOPE_SLICE, SCOPE_ALL, SCOPE_RANGE)
RUN_HERE = "this computer"
RUN_CLUSTER = "dask cluster"
RUN_CHOICES = (RUN_HERE, RUN_CLUSTER)
#: what the widget's user does to set a library argument that an error names (:mod:`..io.errors`): the
#: answers of the dialog that a run into an existing output asks (:func:`.._qt.dialogs.ask_existing_output`)
WIDGET_WORDS = {"resume": "Run again and choose Resume", "overwrite": "Run again and choose Replace"}
#: the same for a run of part of a stack into the store whose layers show the stack's results
UPDATE_WORDS = {"overwrite": "run all slices and choose Replace"}


@dataclass(frozen=True)
class DenoiseRequest:
    """Denoise (part of) an image layer.

    layer: the napari layer (checked by :func:`plan_run`). settings: preset, device, seed, prior
    weight, warm starts. scope: one of :data:`SCOPES`; ``first``..``last`` (inclusive) are the
    indices on the first leading axis for :data:`SCOPE_RANGE`; ``shown`` is the leading index of the
    slice the viewer shows, for :data:`SCOPE_SLICE`. output: the OME-Zarr store of a stack (None: the
    layer's default, :func:`.layers.default_output`). run_on: one of :data:`RUN_CHOICES`; scheduler:
    the dask scheduler's address for :data:`RUN_CLUSTER`. posterior_std: also the posterior std.
    update_store: the run goes into ``output`` even for one slice: the store whose layers show this
    stack's results, which it adds to (slices already done there are kept; same settings only).
    """

    layer: object
    settings: DenoiseSettings = field(default_factory=DenoiseSettings)
    scope: str = SCOPE_SLICE
    first: int = 0
    last: int = 0
    output: Path | None = None
    run_on: str = RUN_HERE
    scheduler: str = ""
    posterior_std: bool = False
    shown: tuple[int, ...] = ()
    update_store: bool = False

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(map(repr, SCOPES))}, got {self.scope!r}")
        if self.run_on not in RUN_CHOICES:
            raise ValueError(f"run_on must be one of {', '.join(map(repr, RUN_CHOICES))}, got {self.run_on!r}")
        for name, value in (("first", int(self.first)), ("last", int(self.last)),
                            ("scheduler", str(self.scheduler or "").strip()),
                            ("posterior_std", bool(self.posterior_std)),
                            ("update_store", bool(self.update_store)),
                            ("shown", tuple(int(i) for i in self.shown)),
                            ("output", Path(self.output) if self.output not in (None, "") else None)):
            object.__setattr__(self, name, value)

    @property
    def on_cluster(self) -> bool:
        """The slices of a stack go to a dask cluster (a single slice always runs here)."""
        return self.scope != SCOPE_SLICE and self.run_on == RUN_CLUSTER

    def remembered_choice(self) -> dict:
        """What the widget remembers between sessions after a stack run starts (``napari.remembered``)."""
        return {"run_on": RUN_CLUSTER, "scheduler": self.scheduler} if self.on_cluster else {"run_on": RUN_HERE}

    def provenance(self, n_slices: int, store=None) -> dict:
        """A new ``metadata["scoredvi"]`` for one of the run's output layers."""
        return layer_provenance(self.layer.name, self.settings, self.scope, n_slices, store)


@dataclass(frozen=True)
class RunPlan:
    """A checked request: the layer's full-resolution ``data``, its slice ``grid`` (the leading axes),
    the slice ``numbers`` to denoise and whether it is RGB."""

    request: DenoiseRequest
    data: object
    grid: SliceGrid
    numbers: tuple[int, ...]
    rgb: bool

    @property
    def to_store(self) -> bool:
        """More than one grey slice goes into an OME-Zarr store (and one, into the store that shows
        its stack, :attr:`DenoiseRequest.update_store`); one slice, or RGB, into memory."""
        return (len(self.numbers) > 1 or self.request.update_store) and not self.rgb

    def memory_shapes(self) -> dict[str, tuple[int, ...]]:
        """Output name -> shape of its in-memory array (an RGB source's maps have no channel axis)."""
        shape = tuple(int(s) for s in self.data.shape)
        return {name: output_shape(name, shape, self.rgb) for name in output_names(self.request.posterior_std)}

    def memory_steps(self, outputs: dict) -> Generator[SliceStep | SliceDone, None, SlicesOutcome]:
        """The run into in-memory ``outputs`` (name -> array of :meth:`memory_shapes`)."""
        return denoise_slices(self.data, self.grid, list(self.numbers), outputs, self.request.settings, rgb=self.rgb)


def check_data(data, rgb: bool) -> None:
    """A layer's array must have Y, X (and RGB's channels) and an integer or float dtype."""
    message = f"cannot denoise data of shape {data.shape} and dtype {{dtype}}"
    if data.ndim < 2 + rgb:
        raise ValueError(message.replace("{dtype}", str(data.dtype)))
    check_dtype(data.dtype, message)


def slice_numbers(grid: SliceGrid, scope: str, first: int = 0, last: int = 0,
                  shown: tuple[int, ...] = ()) -> list[int]:
    """The slice numbers of ``grid`` (the leading axes) that ``scope`` covers: the shown slice
    (``shown``: its leading index; missing axes count as 0), all, or those whose first leading index
    lies in ``first``..``last``. A 2D image has one slice, 0."""
    if not grid.grid_axes:
        return [0]
    if scope == SCOPE_ALL:
        return list(range(grid.count))
    if scope == SCOPE_RANGE:
        n0 = grid.grid_shape[0]
        if first > last:
            raise ValueError(f"the range starts after it ends ({first} > {last}); set its 'from' at or below its 'to'")
        if not (0 <= first <= last < n0):
            raise ValueError(f"slice range {first}-{last} is outside the stack's first axis "
                             f"(0-{n0 - 1}); set the range's 'from' and 'to' inside it")
        inner = grid.count // n0
        return list(range(first * inner, (last + 1) * inner))
    position = (tuple(shown) + (0,) * len(grid.grid_axes))[: len(grid.grid_axes)]
    return [grid.number(tuple(min(max(int(i), 0), s - 1) for i, s in zip(position, grid.grid_shape)))]


def plan_run(request: DenoiseRequest, note: Callable[[str], object] = lambda message: None) -> RunPlan:
    """Check ``request`` and plan its run. ``note`` is told what the user should know but is no error
    (a multiscale layer's full resolution is used; an RGB stack goes into memory). Raises ValueError
    for a missing or non-image layer, unusable data or a slice range outside the stack, and
    ValueError/RuntimeError for a device that does not exist here (not checked for a cluster run)."""
    from napari.layers import Image

    layer = request.layer
    if layer is None:
        raise ValueError("no image layer selected")
    if not isinstance(layer, Image):
        raise ValueError(f"{layer.name!r} is a {type(layer).__name__} layer; ScoreDVI works on Image layers")
    data = full_resolution(layer)
    if layer.multiscale:
        note(f"{layer.name!r} is multiscale; denoising its full-resolution level")
    dropped = dropped_scale_note(layer)
    if dropped:
        note(dropped)
    rgb = bool(layer.rgb)
    check_data(data, rgb)
    if not request.on_cluster:  # on a cluster the device is chosen on each worker
        from ..engine.devices import resolve_device

        resolve_device(request.settings.device)
    grid = SliceGrid.leading(data.shape, data.ndim - 2 - rgb)
    numbers = slice_numbers(grid, request.scope, request.first, request.last, request.shown)
    if len(numbers) > 1 and rgb:
        note("RGB stacks are denoised into memory (the OME-Zarr output holds grey stacks)")
    return RunPlan(request, data, grid, tuple(numbers), rgb)


def check_cluster(request: DenoiseRequest) -> None:
    """A cluster run needs the scheduler's address and dask.distributed (ValueError saying what to do)."""
    if not request.scheduler:
        raise ValueError("type the dask scheduler's address (e.g. tcp://gpu-box:8786), or run on this computer")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ValueError("running on a dask cluster needs dask.distributed: pip install 'napari-scoredvi[cluster]', "
                         "then restart napari") from None


def store_path(request: DenoiseRequest) -> Path:
    """The output store of a stack run: the request's output (``.zarr`` added), else the layer's default."""
    from ..io.output_paths import as_store_path

    return as_store_path(request.output if request.output is not None else default_output(request.layer)[0])


def store_owner(path: Path, volume) -> str | None:
    """Whose results the existing output store at ``path`` holds, when not those of ``volume``: None
    for a store made from the same input (file, or layer name; same shape and dtype), else that input
    (a file path or ``"napari layer 'NAME'"``). ValueError for a folder that is no output of ours
    (the widget never offers to delete it)."""
    from ..io.store import open_store
    from ..pipeline.provenance import input_name

    try:
        params = open_store(path, writable=False).meta.get("parameters", {})
    except ValueError:
        raise ValueError(f"the output {str(path)!r} exists and is not a napari-scoredvi results folder; pick "
                         "another output path (nothing was changed)") from None
    own = {"input": input_name(volume), "input_shape": [int(s) for s in volume.array.shape],
           "input_dtype": str(volume.array.dtype)}
    if all(params.get(key) == value for key, value in own.items()):
        return None
    return str(params.get("input") or "another image")


def prepare_store_run(plan: RunPlan, ask: Callable[[Path, str | None], str]):
    """Open the output store of a stack run (:func:`..pipeline.run.prepare_run`) for the slices of
    ``plan``. Where the store exists, ``ask(path, owner)`` says ``"resume"``, ``"replace"`` or
    ``"cancel"``; ``owner`` (:func:`store_owner`) is None for a store of this layer, else the input
    whose results it holds, which are never resumed (only replaced: deleted). A run that updates the
    store showing its stack (:attr:`DenoiseRequest.update_store`) resumes it without asking. Returns
    the :class:`..pipeline.run.StackRun`, or None when cancelled (nothing touched). Raises ValueError
    or OSError (e.g. a resume with other settings, a store that another run holds), worded for the
    widget's user."""
    from ..io.store import store_exists
    from ..pipeline.run import prepare_run

    request = plan.request
    out = store_path(request)
    volume = layer_volume(request.layer, plan.data)
    choice = None
    if store_exists(out):
        owner = store_owner(out, volume)
        choice = "resume" if request.update_store and owner is None else ask(out, owner)
        if choice == "cancel":
            return None
        if choice == "resume" and owner is not None:
            raise ValueError(f"{str(out)!r} holds the results of {owner}; they cannot be resumed for "
                             f"{request.layer.name!r}: replace them or pick another output path")
    try:
        return prepare_run(volume, out, request.settings, posterior_std=request.posterior_std,
                           resume=choice == "resume", overwrite=choice == "replace", numbers=plan.numbers)
    except ArgumentRemedy as exc:
        words = UPDATE_WORDS if request.update_store else WIDGET_WORDS
        raise exc.reworded(lambda arg: words.get(arg.name, str(arg))) from exc
