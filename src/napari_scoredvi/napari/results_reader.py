"""The npe2 reader of a results folder (the OME-Zarr store of a stack run, :mod:`..io.store`): it
reopens the folder whole, one image layer per output (denoised, noise variance, posterior std),
with the input's pixel sizes, units and axis names, the look a run gives its layers, and the store's
provenance in ``metadata["scoredvi"]`` (docs/how-to/reopen-results.md). No Qt; the arrays stay on
disk (dask), only one finished slice is read, for the contrast."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .layers import OUTPUT_LAYERS, map_limit, output_layer_name, output_unit, robust_limits

#: what napari's reader contributions return: (data, add_image keyword arguments, layer type)
LayerData = tuple[object, dict, str]
#: how the provenance names an input that was a napari layer (:func:`..pipeline.provenance.run_parameters`)
LAYER_INPUT = "napari layer "


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The reader of ``path`` (a folder, or a list of one) if it is a napari-scoredvi results
    store, else None (also for a store's sub-images, e.g. ``OUTPUT/denoised``, and anything that
    does not open as a Zarr group), so that other readers take it."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str) or not Path(path).is_dir():
        return None
    try:
        _open(path)
    except Exception:  # noqa: BLE001 - not ours, whatever went wrong
        return None
    return read_results


def _open(path: str):
    """The store's zarr group (read-only) and its provenance; raises where it is not a results store."""
    import zarr

    from ..io.store import ATTRS_KEY

    group = zarr.open_group(path, mode="r")
    meta = dict(group.attrs[ATTRS_KEY])
    meta["parameters"]["outputs"]  # noqa: B018 - a results store says what it holds
    return group, meta


def read_results(path: str | list[str]) -> list[LayerData]:
    """One image layer per output of the results store at ``path``, in the store's order."""
    import dask.array as da

    path = path[0] if isinstance(path, list) else path
    group, meta = _open(path)
    params = meta["parameters"]
    source = source_name(params.get("input", ""), path)
    outputs = [name for name in params["outputs"] if name in OUTPUT_LAYERS and f"{name}/0" in group]
    planes = _done_plane(group, params, outputs) if outputs else None
    stand_in = _source(params)
    layers = []
    for output in outputs:
        kwargs = dict(_geometry(group[output].attrs), colormap=OUTPUT_LAYERS[output][1],
                      name=output_layer_name(source, output, output_unit(stand_in, output, ascii=False)))
        if output != "denoised":
            kwargs.update(visible=False, blending="translucent")
        if planes is not None:
            limits = robust_limits(planes[output]) if output == "denoised" else (0.0, map_limit(planes[output]))
            if limits is not None and limits[1] > limits[0]:
                kwargs["contrast_limits"] = limits
        kwargs["metadata"] = {"scoredvi": {
            "store": str(path), "source": source, "output": output, "unit": output_unit(stand_in, output),
            "parameters": params, "status": meta.get("status"), "slices": meta.get("slices", {}),
            "reopened": True}}
        layers.append((da.from_zarr(group[f"{output}/0"]), kwargs, "image"))
    return layers


def source_name(input_: str, store: str) -> str:
    """What the outputs' names call their source: the layer's name for an input that was a napari
    layer (``"napari layer 'cells'"``), else the input file's name without its image suffix, else
    (no input recorded) the store's name without ``-denoised.zarr``."""
    from ..io.output_paths import OUTPUT_SUFFIX, input_stem

    if input_.startswith(LAYER_INPUT):
        try:
            return str(ast.literal_eval(input_[len(LAYER_INPUT):]))
        except (ValueError, SyntaxError):
            return input_[len(LAYER_INPUT):]
    if input_:
        return input_stem(Path(input_).name)
    name = Path(store).name
    return name[: -len(OUTPUT_SUFFIX)] if name.endswith(OUTPUT_SUFFIX) else input_stem(name)


def _source(params: dict) -> SimpleNamespace:
    """A stand-in for the source layer, as much of it as :func:`.layers.intensity_unit` looks at
    (its dtype, RGB or not), so that the outputs' units follow the widget's rule (ADU for integer
    grey data, a.u. otherwise; squared for the noise variance)."""
    data = np.empty(0, np.dtype(params.get("input_dtype", "float32")))
    return SimpleNamespace(metadata={}, data=data, multiscale=False, rgb=bool(params.get("rgb", False)))


def _geometry(attrs) -> dict:
    """``scale``, ``translate``, ``axis_labels`` and ``units`` of an NGFF 0.4 image (its level 0)."""
    multiscale = attrs["multiscales"][0]
    axes = multiscale.get("axes", [])
    kwargs: dict = {}
    for transform in multiscale["datasets"][0].get("coordinateTransformations", []):
        key = {"scale": "scale", "translation": "translate"}.get(transform.get("type"))
        if key and transform.get(transform["type"]) is not None:
            kwargs[key] = [float(v) for v in transform[transform["type"]]]
    if axes and all(isinstance(ax, dict) for ax in axes):
        kwargs["axis_labels"] = [str(ax["name"]).lower() for ax in axes]
        if any(ax.get("unit") for ax in axes):
            kwargs["units"] = [ax.get("unit") or "pixel" for ax in axes]
    return kwargs


def _done_plane(group, params: dict, outputs: list[str]) -> dict | None:
    """Each output's first finished slice (the first whose done flag is 1; only it is read), or
    None when no slice is finished."""
    from ..io.slice_grid import SliceGrid

    done = np.flatnonzero(np.asarray(group["done"][:]) == 1)
    if not done.size:
        return None
    shape = tuple(int(s) for s in group[f"{outputs[0]}/0"].shape)
    channel_axis = params.get("channel_axis")
    grid = SliceGrid(shape, tuple(d for d in range(len(shape) - 2) if d != channel_axis))
    return {name: np.asarray(group[f"{name}/0"][grid.index(int(done[0]))]) for name in outputs}
