"""napari sample data: a synthetic noisy fluorescence stack and its clean ground truth."""

from __future__ import annotations

from ..io.synthetic import noisy_fluorescence_stack


def make_sample_data() -> list[tuple]:
    """Two image layers: the clean float32 ground truth (hidden) and, on top, the noisy uint16 stack (5 x 256 x 256)."""
    noisy, clean = noisy_fluorescence_stack(n_slices=5, shape=(256, 256), seed=0)
    return [
        (clean, {"name": "clean ground truth", "visible": False, "axis_labels": ("z", "y", "x")}, "image"),
        (noisy, {"name": "noisy fluorescence stack", "axis_labels": ("z", "y", "x")}, "image"),
    ]
