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
#: the percentiles of the denoised image's finished slices that its contrast spans (99.5 % of pixels)
DENOISED_PERCENTILES = (0.25, 99.75)


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


def dropped_scale_note(layer) -> str:
    """A note when a layer shows no pixel sizes but the file it was opened from has them (napari's
    builtin reader drops OME-Zarr's and ImageJ TIFF's): the results on disk keep the file's; ``""``
    otherwise."""
    from ..io.read import open_volume

    path = source_path(layer)
    if not path or not Path(path).exists() or not np.allclose(np.asarray(layer.scale, float), 1.0):
        return ""
    try:
        vol = open_volume(path)
    except (ValueError, OSError):
        return ""
    if tuple(vol.array.shape) != tuple(full_resolution(layer).shape) or np.allclose(vol.scale, 1.0):
        return ""
    sizes = ", ".join(f"{a.lower()} {v:g}{' ' + vol.units[a] if a in vol.units else ''}"
                      for a, v in zip(vol.axes, vol.scale) if v != 1.0)
    if Path(path).is_dir():
        fix = "open the folder with napari-ome-zarr (File > Open Folder..., then choose napari-ome-zarr)"
    else:
        fix = "set the layer's scale (e.g. layer.scale in napari's console) or open it with a reader that keeps them"
    return (f"{layer.name!r} shows no pixel sizes, but its file has them ({sizes}): the reader that opened it "
            f"dropped them. The results on disk keep the file's; to see the image and its results at their size, "
            f"{fix}")


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
    name, the source's geometry, and a look taken from the source. The denoised layer takes the
    source's colormap, gamma, blending, opacity and visibility (a channel of a multichannel image
    stays its colour, additively blended) and, until its slices come in, its contrast; an RGB
    source's denoised layer is RGB. The maps (noise variance, posterior std) have their own colormap
    and 0-1 contrast until their slices come in, and are added hidden: shown on top they would hide
    or, additively blended, tint the denoised image (the user shows them with the layer's eye)."""
    kwargs = {prop: getattr(source, prop) for prop in COPIED_PROPERTIES if hasattr(source, prop)}
    kwargs["name"] = source_layer_name(source, output)
    blending = str(getattr(source, "blending", "translucent"))
    if output == "denoised":
        if rgb:
            kwargs["rgb"] = True
        else:
            kwargs["colormap"] = getattr(source, "colormap", OUTPUT_LAYERS[output][1])
            kwargs["gamma"] = float(getattr(source, "gamma", 1.0))
        contrast = tuple(float(c) for c in source.contrast_limits)
        return dict(kwargs, contrast_limits=contrast, blending=blending,
                    opacity=float(getattr(source, "opacity", 1.0)), visible=bool(getattr(source, "visible", True)))
    return dict(kwargs, colormap=OUTPUT_LAYERS[output][1], contrast_limits=(0.0, 1.0),
                blending="additive" if blending == "additive" else "translucent", visible=False)


def layer_key(layer) -> int:
    """A key that stays the same for a layer: napari hands plugins each layer in a proxy made anew each
    time (``is`` and ``id`` of two proxies of one layer differ; ``==`` compares the layers)."""
    return id(getattr(layer, "__wrapped__", layer))


def is_output(layer) -> bool:
    """Whether ``layer`` is an output of ours (a run's, or a results folder reopened)."""
    return "scoredvi" in (getattr(layer, "metadata", None) or {})


def robust_limits(values) -> tuple[float, float] | None:
    """Contrast limits of an image from its finite values: the :data:`DENOISED_PERCENTILES`
    percentiles (a few extreme pixels do not dim the rest); None when there are none, or one value."""
    values = np.asarray(values)
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    lo, hi = (float(v) for v in np.percentile(values, DENOISED_PERCENTILES))
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    return (lo, hi) if hi > lo else None


def map_limit(values) -> float:
    """The upper contrast limit of a map (noise variance, posterior std) from its finite values: its
    :data:`MAP_PERCENTILE` percentile (0 when there are none)."""
    values = np.asarray(values)
    values = values[np.isfinite(values)]
    return float(np.percentile(values, MAP_PERCENTILE)) if values.size else 0.0


def show_selected_colorbar(viewer) -> None:
    """One colour bar at a time, labelled: the selected output layer's (not an RGB one), with its
    name (what it is, its unit and its source) in the viewer's text overlay above it; none when the
    selected layer is no output of ours. Other output layers' colour bars are hidden."""
    active = viewer.layers.selection.active
    selected = getattr(active, "name", None)  # by name: a plugin's viewer proxy wraps each layer anew
    for layer in viewer.layers:
        colorbar = getattr(layer, "colorbar", None)
        if is_output(layer) and colorbar is not None and hasattr(colorbar, "visible"):
            colorbar.visible = layer.name == selected and not getattr(layer, "rgb", False)
    overlay = text_overlay(viewer)
    if overlay is None:
        return
    shown = is_output(active) and not getattr(active, "rgb", False)
    if shown:
        overlay.text, overlay.position, overlay.visible = active.name, "top_right", True
    elif overlay.visible and overlay.text in _OUTPUT_LABELS.get(id(viewer), set()):
        overlay.visible = False  # ours: hidden with its colour bar; a text the user set is left alone
    if shown:
        _OUTPUT_LABELS.setdefault(id(viewer), set()).add(active.name)


def text_overlay(viewer):
    """The viewer's text overlay (``viewer.canvas.overlays["text"]`` from napari 0.9, ``viewer.text_overlay``
    before); None where there is none."""
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    if overlays is not None and "text" in overlays:
        return overlays["text"]
    return getattr(viewer, "text_overlay", None)


#: the colour-bar labels put in each viewer's text overlay (by id(viewer)), told apart from the user's
_OUTPUT_LABELS: dict[int, set[str]] = {}


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
    variance, posterior std) 0 to the largest :func:`map_limit` of a slice; for the denoised image
    the widest :func:`robust_limits` of a slice (not the noisy source's limits, which would make it
    look dim, nor its extreme pixels)."""

    def __init__(self) -> None:
        self.limits: dict[str, float] = {}
        self.ranges: dict[str, tuple[float, float]] = {}

    def update(self, output: str, plane) -> float | None:
        """Take a finished slice of map ``output``; returns its new upper limit (None while it is 0)."""
        self.limits[output] = max(self.limits.get(output, 0.0), map_limit(plane))
        return self.limits[output] if self.limits[output] > 0 else None

    def update_range(self, output: str, plane) -> tuple[float, float] | None:
        """Take a finished slice of ``output`` (the denoised image); returns its new (low, high) limits
        (None while there is none)."""
        limits = robust_limits(plane)
        if limits is not None:
            old = self.ranges.get(output, limits)
            self.ranges[output] = (min(limits[0], old[0]), max(limits[1], old[1]))
        return self.ranges.get(output)
