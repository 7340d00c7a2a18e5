"""Bad input gives a clear error; good input is copied, never modified."""

import numpy as np
import pytest

from napari_scoredvi.engine.validate import as_channels_first


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64, np.int8, np.float16])
def test_accepts_numeric_dtypes(dtype):
    img = (np.arange(32 * 40) % 97).reshape(32, 40).astype(dtype)
    out = as_channels_first(img, None)
    assert out.shape == (1, 32, 40) and out.dtype == np.float64
    np.testing.assert_array_equal(out[0], img.astype(np.float64))


def test_channel_axis_moves_to_front_and_input_untouched():
    img = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32)
    before = img.copy()
    out = as_channels_first(img, -1)
    assert out.shape == (3, 20, 24)
    out[:] = 0
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize(
    "image,channel_axis,match",
    [
        (np.zeros((0, 10)), None, "empty"),
        (np.zeros((1, 1)), None, "at least 16x16"),
        (np.zeros((1,)), None, "2D image"),
        (np.zeros((5, 64, 64)), None, "channel_axis"),
        (np.zeros((2, 3, 64, 64)), None, "2D image"),
        (np.zeros((64, 64)), 0, "needs a 3D image"),
        (np.zeros((64, 64, 3)), 5, "channel_axis must be"),
        (np.zeros((64, 64, 40)), 2, "looks like a stack"),
        (np.full((32, 32), np.nan), None, "no finite pixel"),
        (np.full((32, 32), -np.inf), None, r"0 NaN and 1024 Inf.*not noise"),
        (np.where(np.eye(32) > 0, np.nan, 1.0), None, "32 NaN/Inf.*nan_to_num"),
        (np.where(np.eye(32) > 0, np.inf, 1.0), None, "32 NaN/Inf"),
        (np.zeros((32, 32), bool), None, "boolean"),
        (np.zeros((32, 32), complex), None, "unsupported dtype"),
        (np.array([["a"] * 32] * 32), None, "unsupported dtype"),
        (None, None, "None"),
    ],
)
def test_bad_input_has_clear_error(image, channel_axis, match):
    with pytest.raises((ValueError, TypeError), match=match):
        as_channels_first(image, channel_axis)
