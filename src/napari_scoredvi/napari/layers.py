"""napari layers in and out of a run, without Qt: which slice of a layer the viewer shows, a layer
as a :class:`~napari_scoredvi.io.read.Volume`, its default output store, and the output layers'
names, shapes, colormaps and contrast (shared by the dock widgets; no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: output name (in a run and its store) -> (layer name prefix, colormap, power of the source's unit)
OUTPUT_LAYERS = {"denoised": ("denoised", "gray", 1), "noise_variance": ("noise variance", "magma", 2),
                 "posterior_std": ("posterior std", "viridis", 1)}
#: the intensity unit of integer data (raw camera counts) and of float data (no known unit)
INTEGER_UNIT, FLOAT_UNIT = "ADU", "a.u."
#: layer properties copied from the source onto the outputs (those that exist on the layer)
COPIED_PROPERTIES = ("scale", "translate", "units", "axis_labels", "affine", "rotate", "shear")
#: the percentile of a map's finished slices that its contrast reaches
MAP_PERCENTILE = 99.5


def current_index(viewer, layer, lead_ndim: int) -> tuple[int, ...]:
    """The leading-axis index (all axes before the last two, ``lead_ndim`` of them) of the slice the
    viewer shows, in the layer's data coordinates; the first slice where it cannot be worked out."""
    if lead_ndim == 0:
        return ()
    try:
        point = np.asarray(viewer.dims.point)[-layer.ndim:]
        coords = np.asarray(layer.world_to_data(point))[:lead_ndim]
    except Exception:  # noqa: BLE001 - fall back to the first slice
        coords = np.zeros(lead_ndim)
    shape = layer.data[0].shape if layer.multiscale else layer.data.shape
    return tuple(int(np.clip(np.round(c), 0, s - 1)) for c, s in zip(coords, shape[:lead_ndim]))


def full_resolution(layer):
    """The layer's array at full resolution (level 0 of a multiscale layer)."""
    return layer.data[0] if layer.multiscale else layer.data


def shown_index(viewer, layer) -> tuple[int, ...]:
    """The leading index of the 2D plane of an Image ``layer`` that the viewer shows (all axes but
    Y, X and RGB's channels); () for a 2D image or anything that is not an image."""
    from napari.layers import Image

    if not isinstance(layer, Image):
        return ()
    lead = full_resolution(layer).ndim - 2 - bool(layer.rgb)
    return current_index(viewer, layer, lead) if lead > 0 else ()


def lead_axes(layer, lead: int) -> str:
    """Letters of the layer's ``lead`` leading axes (e.g. ``"Z"``, ``"TZ"``), from its ``axis_labels``
    or, where those do not say, by the number of axes (ZYX, TZYX, TCZYX); ``"?"`` per axis beyond."""
    from ..io.read import axes_from_labels

    if lead <= 0:
        return ""
    try:
        return axes_from_labels(getattr(layer, "axis_labels", None), lead + 2)[:lead]
    except ValueError:
        return "?" * lead


def source_path(layer) -> str | None:
    """The file or folder the layer was opened from, if any."""
    path = getattr(getattr(layer, "source", None), "path", None)
    return str(path) if path else None


def default_output(layer) -> tuple[Path, bool]:
    """Where a layer's outputs go by default (:func:`..io.output_paths.default_output_path`):
    (path, temporary?)."""
    from ..io.output_paths import default_output_path

    return default_output_path(source_path(layer), layer.name)


def layer_volume(layer, data=None):
    """The layer (``data``: its full-resolution array) as a Volume, read slice by slice: axes, pixel
    sizes and units from the file it came from when that file holds the same array (cluster workers
    may then read it by path), else from the layer (``axis_labels``, ``scale``, ``units``)."""
    from ..io.read import axes_from_labels, ngff_unit, open_volume, volume_from_array

    data = full_resolution(layer) if data is None else data
    path = source_path(layer)
    if path:
        try:
            vol = open_volume(path)
            if tuple(vol.array.shape) == tuple(data.shape):
                return volume_from_array(data, vol.axes, vol.scale, vol.units, path)
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


# -- output layers -------------------------------------------------------------------------------
def output_names(posterior_std: bool) -> list[str]:
    """The outputs of a run, in the order their layers are added."""
    return ["denoised", "noise_variance"] + (["posterior_std"] if posterior_std else [])


def intensity_unit(source) -> str:
    """The unit of a layer's values: ``metadata["unit"]`` (or ``"intensity_unit"``) where the layer
    has one, else :data:`INTEGER_UNIT` ("ADU") for integer grey data (camera counts), else
    :data:`FLOAT_UNIT` ("a.u."; also for RGB, whose values are display levels, not counts)."""
    metadata = getattr(source, "metadata", None) or {}
    for key in ("intensity_unit", "unit"):
        if isinstance(metadata.get(key), str) and metadata[key].strip():
            return metadata[key].strip()
    dtype = np.dtype(getattr(full_resolution(source), "dtype", np.float32))
    return INTEGER_UNIT if np.issubdtype(dtype, np.integer) and not getattr(source, "rgb", False) else FLOAT_UNIT


def output_unit(source, output: str, ascii: bool = True) -> str:
    """The unit of output ``output`` of ``source``: the source's unit for denoised and posterior std,
    its square for the noise variance (``"ADU^2"``; ``ascii=False``: ``"ADU²"``)."""
    unit = intensity_unit(source)
    if OUTPUT_LAYERS[output][2] == 1:
        return unit
    return f"{unit}^2" if ascii else f"{unit}\u00b2"


def output_layer_name(source_name: str, output: str, unit: str | None = None) -> str:
    """The name of an output layer: what it is first, so the layer list's cut-off names still tell
    the outputs apart, then the source in brackets: ``"denoised (<source>)"``,
    ``"noise variance [ADU²] (<source>)"`` (``unit``, as in :func:`output_unit`, for the maps)."""
    what = OUTPUT_LAYERS[output][0]
    if unit and output != "denoised":
        what = f"{what} [{unit}]"
    return f"{what} ({source_name})"


def source_layer_name(source, output: str) -> str:
    """:func:`output_layer_name` for the layer ``source`` (with its unit)."""
    return output_layer_name(source.name, output, output_unit(source, output, ascii=False))


def output_shape(output: str, shape: tuple[int, ...], rgb: bool) -> tuple[int, ...]:
    """An in-memory output's shape: the source's; an RGB source's maps have no channel axis."""
    return tuple(shape[:-1]) if rgb and output != "denoised" else tuple(shape)


def output_layer_kwargs(source, output: str, rgb: bool = False) -> dict:
    """``viewer.add_image`` arguments (besides the data) for output ``output`` of ``source``: its
    name, the source's geometry, colormap (or RGB for an RGB source's denoised layer), blending and
    first contrast (the source's for denoised, 0-1 for a map, until its slices come in)."""
    colormap = OUTPUT_LAYERS[output][1]
    kwargs = {prop: getattr(source, prop) for prop in COPIED_PROPERTIES if hasattr(source, prop)}
    if rgb and output == "denoised":
        kwargs["rgb"] = True
    else:
        kwargs["colormap"] = colormap
    contrast = tuple(float(c) for c in source.contrast_limits) if output == "denoised" else (0.0, 1.0)
    return dict(kwargs, name=source_layer_name(source, output), contrast_limits=contrast,
                blending="additive" if colormap != "gray" else "translucent")


def show_colorbar(layer) -> None:
    """Show the layer's colour bar in the canvas (napari >= 0.5; nothing on older napari)."""
    colorbar = getattr(layer, "colorbar", None)
    if colorbar is not None and hasattr(colorbar, "visible"):
        colorbar.visible = True


def memory_output(shape: tuple[int, ...], lead: int):
    """A new in-memory output of ``shape`` (``lead`` leading axes) where nothing is computed yet (NaN,
    shown blank): a numpy array for one 2D image, a :class:`.partial.PartialStack` for a stack (its
    slices take memory only once written)."""
    from .partial import PartialStack

    return PartialStack(shape, lead) if lead > 0 else np.full(shape, np.nan, np.float32)


def reusable_output(layer, shape: tuple[int, ...], rgb: bool) -> bool:
    """Whether an existing in-memory output layer can take a new run's slices (same shape, same RGB)."""
    from .partial import PartialStack

    return (isinstance(layer.data, (np.ndarray, PartialStack)) and layer.data.shape == tuple(shape)
            and bool(layer.rgb) == rgb)


def grid_enabled(viewer) -> bool:
    """Whether the viewer shows its layers side by side (grid mode; ``viewer.canvas.grid`` from napari
    0.9, ``viewer.grid`` before)."""
    grid = getattr(getattr(viewer, "canvas", None), "grid", None) or getattr(viewer, "grid", None)
    return bool(getattr(grid, "enabled", False))


class MapContrast:
    """The contrast of the outputs, from their own finished slices so far: for the maps (noise
    variance, posterior std) 0 to the largest :data:`MAP_PERCENTILE` percentile of a slice; for the
    denoised image the smallest to the largest finished value (not the noisy source's limits, which
    would make it look dim)."""

    def __init__(self) -> None:
        self.limits: dict[str, float] = {}
        self.ranges: dict[str, tuple[float, float]] = {}

    def update(self, output: str, plane) -> float | None:
        """Take a finished slice of map ``output``; returns its new upper limit (None while it is 0)."""
        values = np.asarray(plane)
        values = values[np.isfinite(values)]
        top = float(np.percentile(values, MAP_PERCENTILE)) if values.size else 0.0
        self.limits[output] = max(self.limits.get(output, 0.0), top)
        return self.limits[output] if self.limits[output] > 0 else None

    def update_range(self, output: str, plane) -> tuple[float, float] | None:
        """Take a finished slice of ``output`` (the denoised image); returns its new (low, high) limits,
        the range of its finite values so far (None while there is none, or it is one value)."""
        values = np.asarray(plane)
        values = values[np.isfinite(values)]
        if values.size:
            lo, hi = float(values.min()), float(values.max())
            old = self.ranges.get(output, (lo, hi))
            self.ranges[output] = (min(lo, old[0]), max(hi, old[1]))
        lo, hi = self.ranges.get(output, (0.0, 0.0))
        return (lo, hi) if hi > lo else None
