"""Which 2D slice of a napari layer the viewer shows (shared by the dock widgets; no torch)."""

from __future__ import annotations

import numpy as np


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
