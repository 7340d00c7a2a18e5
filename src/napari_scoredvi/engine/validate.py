"""Checking the user's image and bringing it to the engine's layout: float64, (C, H, W)."""

from __future__ import annotations

import numpy as np

MIN_SIDE = 16  # smaller images carry too few pixels to estimate noise or fit the posterior
#: numpy dtype kinds the package accepts as intensities: unsigned and signed integers, floats
NUMERIC_KINDS = "uif"


def check_dtype(dtype, message: str = "the image has dtype {dtype}; need an integer or float image",
                error: type[Exception] = ValueError, boolean: str | None = None) -> np.dtype:
    """The package's one dtype check (engine, file reading, calibration, napari): integer and float
    dtypes pass and are returned as a ``numpy.dtype``; anything else (bool, complex, strings,
    objects) raises ``error`` with ``message``, where ``{dtype}`` stands for the dtype. boolean: the
    message for a boolean dtype (e.g. a mask), if it should say something else."""
    dtype = np.dtype(dtype)
    if dtype.kind in NUMERIC_KINDS:
        return dtype
    text = boolean if boolean is not None and dtype.kind == "b" else message
    raise error(text.replace("{dtype}", str(dtype)))


def as_channels_first(image, channel_axis: int | None, rgb: bool = False) -> np.ndarray:
    """Validate ``image`` and return it as a new float64 array of shape (C, H, W).

    ``image`` is (H, W), or 3-D with the channel axis given by ``channel_axis`` (with ``rgb``: 3
    entries, R, G, B).
    Raises ``TypeError``/``ValueError`` whose message says what is wrong and what to do.
    The caller's array is never modified.
    """
    if image is None:
        raise TypeError("image is None: pass a 2D numpy array (H, W) or a 3D array with channel_axis")
    try:
        arr = np.asarray(image)
    except Exception as exc:  # e.g. a ragged list
        raise TypeError(f"image could not be read as an array ({exc}); pass a numpy array") from exc
    check_dtype(arr.dtype, "unsupported dtype {dtype}: pass an integer or floating-point image "
                "(uint8, uint16, int32, float32, float64, ...)", TypeError,
                boolean="image is boolean (a mask?): ScoreDVI denoises intensity images; convert to a numeric dtype")
    if arr.size == 0:
        raise ValueError(f"image is empty (shape {arr.shape}); nothing to denoise")
    if channel_axis is None:
        if arr.ndim != 2:
            hint = (
                " For a multichannel or RGB image pass channel_axis=<its axis>;"
                " for a stack (z/t) denoise each 2D slice (the napari widget and the command line do this)."
                if arr.ndim in (3, 4, 5)
                else ""
            )
            raise ValueError(f"expected a 2D image (H, W) but got shape {arr.shape}.{hint}")
        arr = arr[None]
    else:
        if arr.ndim != 3:
            raise ValueError(
                f"channel_axis={channel_axis} needs a 3D image (channels plus H and W), got shape {arr.shape}"
            )
        if not isinstance(channel_axis, (int, np.integer)) or not -3 <= channel_axis < 3:
            raise ValueError(f"channel_axis must be an integer in [-3, 2] for a 3D image, got {channel_axis!r}")
        arr = np.moveaxis(arr, int(channel_axis), 0)
        if arr.shape[0] > 16:
            raise ValueError(
                f"channel axis {channel_axis} has {arr.shape[0]} entries, which looks like a stack, not channels "
                f"(shape {np.asarray(image).shape}); denoise the slices one by one or pick the right channel_axis"
            )
    if rgb and arr.shape[0] != 3:
        raise ValueError(
            f"rgb=True needs a channel axis of 3 entries (R, G, B), got shape {np.asarray(image).shape} with "
            f"channel_axis={channel_axis}; drop the alpha channel (image[..., :3]) or pass rgb=False"
        )
    h, w = arr.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise ValueError(
            f"image is {h}x{w} pixels; ScoreDVI needs at least {MIN_SIDE}x{MIN_SIDE} "
            "(check the axes: the last two dimensions are taken as Y and X)"
        )
    out = arr.astype(np.float64)  # always a copy: the input is never touched
    bad = ~np.isfinite(out)
    if bad.all():  # nothing to repair: the data itself is missing or overflowed
        n_nan = int(np.isnan(out).sum())
        raise ValueError(
            f"image has no finite pixel ({n_nan} NaN and {out.size - n_nan} Inf of {out.size}); "
            "this is not noise that can be repaired: check the file or the conversion that wrote it "
            "(e.g. an overflow to float16, or the wrong series or channel)"
        )
    if bad.any():
        raise ValueError(
            f"image contains {int(bad.sum())} NaN/Inf pixel(s) out of {out.size}; "
            "replace them (e.g. with numpy.nan_to_num or the local median) before denoising"
        )
    return out
