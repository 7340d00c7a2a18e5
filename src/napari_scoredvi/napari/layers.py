"""napari layers in and out of a run, without Qt: which slice of a layer the viewer shows, a layer
as a :class:`~napari_scoredvi.io.read.Volume`, its default output store, and the output layers'
names, shapes, colormaps and contrast (shared by the dock widgets; no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: output name (in a run and its store) -> (layer name suffix, colormap)
OUTPUT_LAYERS = {"denoised": ("denoised", "gray"), "noise_variance": ("noise variance", "magma"),
                 "posterior_std": ("posterior std", "viridis")}
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


def output_layer_name(source_name: str, output: str) -> str:
    """``"<source> denoised"``, ``"<source> noise variance"``, ``"<source> posterior std"``."""
    return f"{source_name} {OUTPUT_LAYERS[output][0]}"


def output_shape(output: str, shape: tuple[int, ...], rgb: bool) -> tuple[int, ...]:
    """An in-memory output's shape: the source's; an RGB source's maps have no channel axis."""
    return tuple(shape[:-1]) if rgb and output != "denoised" else tuple(shape)


def output_layer_kwargs(source, output: str, rgb: bool = False) -> dict:
    """``viewer.add_image`` arguments (besides the data) for output ``output`` of ``source``: its
    name, the source's geometry, colormap (or RGB for an RGB source's denoised layer), blending and
    first contrast (the source's for denoised, 0-1 for a map until its slices come in)."""
    colormap = OUTPUT_LAYERS[output][1]
    kwargs = {prop: getattr(source, prop) for prop in COPIED_PROPERTIES if hasattr(source, prop)}
    if rgb and output == "denoised":
        kwargs["rgb"] = True
    else:
        kwargs["colormap"] = colormap
    contrast = tuple(float(c) for c in source.contrast_limits) if output == "denoised" else (0.0, 1.0)
    return dict(kwargs, name=output_layer_name(source.name, output), contrast_limits=contrast,
                blending="additive" if colormap != "gray" else "translucent")


def reusable_output(layer, shape: tuple[int, ...], rgb: bool) -> bool:
    """Whether an existing in-memory output layer can take a new run's slices (same shape, same RGB)."""
    return isinstance(layer.data, np.ndarray) and layer.data.shape == tuple(shape) and bool(layer.rgb) == rgb


class MapContrast:
    """The upper contrast limit of map outputs (noise variance, posterior std): the largest
    :data:`MAP_PERCENTILE` percentile of their finished slices so far."""

    def __init__(self) -> None:
        self.limits: dict[str, float] = {}

    def update(self, output: str, plane) -> float | None:
        """Take a finished slice of ``output``; returns its new upper limit (None while it is 0)."""
        values = np.asarray(plane)
        values = values[np.isfinite(values)]
        top = float(np.percentile(values, MAP_PERCENTILE)) if values.size else 0.0
        self.limits[output] = max(self.limits.get(output, 0.0), top)
        return self.limits[output] if self.limits[output] > 0 else None
