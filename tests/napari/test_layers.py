"""napari layers in and out of a run, without Qt: the shown slice, a layer as a Volume, default
outputs, the output layers' names, colormaps and contrast."""

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.components import ViewerModel  # noqa: E402
from napari.layers import Image, Labels  # noqa: E402

from napari_scoredvi.engine.settings import DenoiseSettings  # noqa: E402
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack  # noqa: E402
from napari_scoredvi.napari.layers import (  # noqa: E402
    MapContrast,
    default_output,
    grid_enabled,
    intensity_unit,
    layer_volume,
    lead_axes,
    memory_output,
    output_layer_kwargs,
    output_layer_name,
    output_names,
    output_unit,
    reusable_output,
    shown_index,
)
from napari_scoredvi.napari.partial import PartialStack  # noqa: E402


@pytest.fixture
def viewer():
    from npe2 import PluginManager

    PluginManager.instance().discover()  # readers (napari's own, napari-ome-zarr)
    return ViewerModel()


def test_shown_index(viewer):
    stack = viewer.add_image(np.zeros((3, 4, 32, 32), np.float32), name="tz")
    viewer.dims.set_current_step(0, 2)
    viewer.dims.set_current_step(1, 3)
    assert shown_index(viewer, stack) == (2, 3)
    rgb = viewer.add_image(np.zeros((2, 32, 40, 3), np.uint8), rgb=True)  # its leading axis is the viewer's z
    assert shown_index(viewer, rgb) == (1,)  # z 3, clipped into its 2 planes
    assert shown_index(viewer, Image(np.zeros((32, 32)))) == ()
    assert shown_index(viewer, Labels(np.zeros((3, 32, 32), np.int32))) == ()


def test_volume_of_an_in_memory_layer():
    layer = Image(np.zeros((2, 3, 32, 32), np.uint16), name="tl", scale=(5.0, 2.0, 0.5, 0.5),
                  axis_labels=("time", "z", "y", "x"), units=("s", "um", "um", "um"))
    vol = layer_volume(layer)
    assert vol.axes == "TZYX" and vol.scale == [5.0, 2.0, 0.5, 0.5] and vol.name == "tl" and not vol.source
    assert vol.units == {"T": "second", "Z": "micrometer", "Y": "micrometer", "X": "micrometer"}
    assert layer_volume(Image(np.zeros((2, 3, 32, 32), np.uint16))).axes == "TZYX"  # unlabelled: by dimensions


def test_volume_and_default_output_of_a_file_layer(viewer, tmp_path):
    import tifffile

    noisy, _ = noisy_fluorescence_stack(2, (32, 32), seed=4)
    tif = tmp_path / "cells.ome.tif"
    tifffile.imwrite(tif, noisy, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25})
    filed = viewer.open(str(tif), plugin="napari")[0]
    vol = layer_volume(filed)
    assert vol.source == str(tif) and vol.axes == "ZYX" and vol.scale[-2:] == [0.25, 0.25]
    assert default_output(filed) == (tmp_path / "cells-denoised.zarr", False)
    path, temporary = default_output(viewer.add_image(noisy, name="in memory"))
    assert temporary and path.name == "in_memory-denoised.zarr" and path.parent.is_dir()


def test_ome_zarr_layer_from_napari_ome_zarr(viewer, tmp_path):
    """A (multiscale) OME-Zarr layer opened by napari-ome-zarr: its file's axes and pixel sizes and its
    path in the Volume, the default output beside the store (not in it), and the store's scale in napari."""
    pytest.importorskip("napari_ome_zarr")
    pytest.importorskip("zarr", minversion="3")
    import tifffile

    from napari_scoredvi.pipeline.run import denoise_volume

    noisy, _ = noisy_fluorescence_stack(2, (32, 32), seed=10)
    tifffile.imwrite(tmp_path / "in.tif", noisy, imagej=True, resolution=(4.0, 4.0), metadata={"axes": "ZYX",
                                                                                              "spacing": 2.0})
    first = denoise_volume(tmp_path / "in.tif", tmp_path / "first.zarr", DenoiseSettings("fast", "cpu"))
    layers = viewer.open(str(first / "denoised"), plugin="napari-ome-zarr")
    assert len(layers) == 1
    layer = layers[0]
    np.testing.assert_allclose(layer.scale, [2.0, 0.25, 0.25])
    level0 = layer.data[0] if layer.multiscale else layer.data
    assert tuple(level0.shape) == noisy.shape and np.isfinite(np.asarray(level0)).all()
    assert default_output(layer) == (tmp_path / "first-denoised.zarr", False)
    vol = layer_volume(layer, level0)
    assert vol.source == str(first / "denoised") and vol.axes == "ZYX" and vol.scale == [2.0, 0.25, 0.25]


def test_output_layer_kwargs():
    src = Image(np.zeros((3, 32, 32), np.uint16), name="cells", scale=(2.0, 0.5, 0.5), translate=(1.0, 0, 3.0),
                contrast_limits=(10, 200))
    assert output_names(False) == ["denoised", "noise_variance"]
    assert output_names(True)[-1] == "posterior_std"
    # what each output is comes first, so names cut short in the layer list still differ
    assert output_layer_name("cells", "noise_variance") == "noise variance (cells)"
    assert output_layer_name("cells", "noise_variance", "ADU²") == "noise variance [ADU²] (cells)"
    den = output_layer_kwargs(src, "denoised")
    assert den["name"] == "denoised (cells)" and den["colormap"].name == "gray" and den["blending"] == "translucent"
    assert den["visible"] and den["opacity"] == 1.0
    # a placeholder until the first slice is done; then the denoised data's own range (test_outputs.py)
    assert den["contrast_limits"] == (10.0, 200.0) and tuple(den["scale"]) == (2.0, 0.5, 0.5)
    var = output_layer_kwargs(src, "noise_variance")
    # the maps: their own colormap, hidden (shown on top they would hide the denoised image)
    assert var["colormap"] == "magma" and var["blending"] == "translucent" and var["contrast_limits"] == (0.0, 1.0)
    assert var["name"] == "noise variance [ADU²] (cells)" and var["visible"] is False
    # a channel of a multichannel image: its colour, blending, gamma and visibility carry over
    green = Image(np.zeros((3, 32, 32), np.uint16), name="c1", colormap="green", blending="additive", gamma=0.7,
                  opacity=0.8, visible=False)
    den = output_layer_kwargs(green, "denoised")
    assert den["colormap"].name == "green" and den["blending"] == "additive" and den["gamma"] == pytest.approx(0.7)
    assert den["opacity"] == pytest.approx(0.8) and den["visible"] is False
    assert output_layer_kwargs(green, "noise_variance")["blending"] == "additive"
    std = output_layer_kwargs(src, "posterior_std")
    assert std["colormap"] == "viridis" and std["name"] == "posterior std [ADU] (cells)"
    rgb = Image(np.zeros((32, 40, 3), np.uint8), rgb=True, name="rgb")
    assert output_layer_kwargs(rgb, "denoised", rgb=True)["rgb"] and "colormap" not in output_layer_kwargs(
        rgb, "denoised", rgb=True)
    assert output_layer_kwargs(rgb, "noise_variance", rgb=True)["colormap"] == "magma"


def test_units_of_the_outputs():
    """Integer data are camera counts (ADU); float data have arbitrary units unless the layer says."""
    counts = Image(np.zeros((32, 32), np.uint16))
    assert intensity_unit(counts) == "ADU"
    assert [output_unit(counts, o) for o in output_names(True)] == ["ADU", "ADU^2", "ADU"]
    assert output_unit(counts, "noise_variance", ascii=False) == "ADU²"
    floats = Image(np.zeros((32, 32), np.float32))
    assert intensity_unit(floats) == "a.u." and output_unit(floats, "noise_variance") == "a.u.^2"
    assert intensity_unit(Image(np.zeros((32, 32, 3), np.uint8), rgb=True)) == "a.u."
    electrons = Image(np.zeros((32, 32), np.float32), metadata={"unit": "e-"})
    assert output_unit(electrons, "noise_variance") == "e-^2"


def test_lead_axes_and_grid():
    assert lead_axes(Image(np.zeros((3, 4, 32, 32))), 2) == "TZ"
    assert lead_axes(Image(np.zeros((3, 32, 32)), axis_labels=("time", "y", "x")), 1) == "T"
    assert lead_axes(Image(np.zeros((32, 32))), 0) == ""
    viewer = ViewerModel()
    assert not grid_enabled(viewer)
    viewer.canvas.grid.enabled = True
    assert grid_enabled(viewer)


def test_memory_outputs_are_not_computed_until_written():
    """A new in-memory output reads NaN ("not computed", blank in napari) until a slice is written."""
    one = memory_output((32, 32), 0)
    assert isinstance(one, np.ndarray) and one.dtype == np.float32 and np.isnan(one).all()
    stack = memory_output((5, 32, 32), 1)
    assert isinstance(stack, PartialStack) and stack.shape == (5, 32, 32) and stack.dtype == np.float32
    assert np.isnan(stack[0]).all() and np.isnan(np.asarray(stack)).all()
    stack[(2, slice(None), slice(None))] = np.full((32, 32), 7.0)  # as the pipeline writes a slice
    assert stack.written.tolist() == [False, False, True, False, False]
    assert (stack[2] == 7).all() and np.isnan(stack[1]).all()
    col = stack[:, 3, 4]
    assert np.isnan(col[[0, 1, 3, 4]]).all() and col[2] == 7 and col.dtype == np.float32
    assert stack[2, 0, 0] == 7 and np.isnan(stack[0, 0, 0])
    assert np.isnan(stack[..., 0, 0][0]) and stack[..., 0, 0][2] == 7
    full = np.asarray(stack)
    assert full.shape == (5, 32, 32) and np.isfinite(full).sum() == 32 * 32
    rgb = memory_output((2, 8, 8, 4), 1)  # an RGB stack's denoised output: written channel by channel
    rgb[(1, slice(None), slice(None), slice(0, 3))] = 1.0
    rgb[(1, slice(None), slice(None), 3)] = 255.0
    assert rgb.written.tolist() == [False, True] and (rgb[1, ..., 3] == 255).all()


def test_an_unwritten_stack_takes_no_memory():
    """A 200 x 2048 x 2048 float32 output (3.2 GiB) with one slice written costs about one slice of
    resident memory, also shown in a napari layer: the unwritten pages are never touched (measured:
    50 MiB, one written slice and the 16 MiB planes napari shows; ``np.full(shape, np.nan)`` would
    be 3.2 GiB)."""
    import os

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    if not os.path.exists("/proc/self/statm"):
        pytest.skip("needs Linux's /proc to read the resident memory")
    viewer = ViewerModel()
    before = rss_mb()
    stack = memory_output((200, 2048, 2048), 1)
    layer = viewer.add_image(stack, contrast_limits=(0.0, 1.0), cache=False)
    stack[(7, slice(None), slice(None))] = np.ones((2048, 2048), np.float32)
    for z in (0, 7, 150):  # shown one after the other, as a user scrolls
        viewer.dims.set_current_step(0, z)
        layer.refresh()
    grown = rss_mb() - before
    assert stack.nbytes == 200 * 2048 * 2048 * 4 and grown < 400, f"{grown:.0f} MiB"


def test_reusable_output():
    layer = Image(np.zeros((3, 32, 32), np.float32))
    assert reusable_output(layer, (3, 32, 32), False)
    assert reusable_output(Image(PartialStack((3, 32, 32), 1)), (3, 32, 32), False)
    assert not reusable_output(layer, (2, 32, 32), False) and not reusable_output(layer, (3, 32, 32), True)
    assert not reusable_output(SimpleNamespace(data=[np.zeros((3, 32, 32))], rgb=False), (3, 32, 32), False)


def test_map_contrast_grows_with_the_slices():
    contrast = MapContrast()
    assert contrast.update("noise_variance", np.full((4, 4), np.nan)) is None  # nothing finite yet
    assert contrast.update("noise_variance", np.arange(1000.0).reshape(40, 25)) == pytest.approx(994.005)
    assert contrast.update("noise_variance", np.zeros((4, 4))) == pytest.approx(994.005)  # never shrinks
    assert contrast.update("posterior_std", np.zeros((4, 4))) is None


def test_denoised_contrast_is_its_own_robust_range():
    contrast = MapContrast()
    assert contrast.update_range("denoised", np.full((4, 4), np.nan)) is None
    rng = np.random.default_rng(0)
    plane = rng.uniform(100.0, 140.0, (200, 200))
    plane[0, :20] = 157.0  # a few extreme pixels do not stretch the contrast
    plane[1, 0] = np.nan
    lo, hi = contrast.update_range("denoised", plane)
    assert 100.0 <= lo < 100.5 and 139.5 < hi <= 140.0
    assert contrast.update_range("denoised", plane + 10.0)[1] > 149.5  # grows, never shrinks
    assert contrast.update_range("denoised", plane - 50.0) == (pytest.approx(lo - 50.0, abs=0.3),
                                                             pytest.approx(hi + 10.0, abs=0.3))
