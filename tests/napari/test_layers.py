"""napari layers in and out of a run, without Qt: the shown slice, a layer as a Volume, default
outputs, the output layers' names, colormaps and contrast."""

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.components import ViewerModel  # noqa: E402
from napari.layers import Image, Labels  # noqa: E402

from conftest import TINY  # noqa: E402
from napari_scoredvi.engine.settings import DenoiseSettings  # noqa: E402
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack  # noqa: E402
from napari_scoredvi.napari.layers import (  # noqa: E402
    MapContrast,
    default_output,
    layer_volume,
    output_layer_kwargs,
    output_layer_name,
    output_names,
    reusable_output,
    shown_index,
)


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
    first = denoise_volume(tmp_path / "in.tif", tmp_path / "first.zarr", DenoiseSettings(TINY, "cpu"))
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
    assert output_layer_name("cells", "noise_variance") == "cells noise variance"
    den = output_layer_kwargs(src, "denoised")
    assert den["name"] == "cells denoised" and den["colormap"] == "gray" and den["blending"] == "translucent"
    assert den["contrast_limits"] == (10.0, 200.0) and tuple(den["scale"]) == (2.0, 0.5, 0.5)
    var = output_layer_kwargs(src, "noise_variance")
    assert var["colormap"] == "magma" and var["blending"] == "additive" and var["contrast_limits"] == (0.0, 1.0)
    assert output_layer_kwargs(src, "posterior_std")["colormap"] == "viridis"
    rgb = Image(np.zeros((32, 40, 3), np.uint8), rgb=True, name="rgb")
    assert output_layer_kwargs(rgb, "denoised", rgb=True)["rgb"] and "colormap" not in output_layer_kwargs(
        rgb, "denoised", rgb=True)
    assert output_layer_kwargs(rgb, "noise_variance", rgb=True)["colormap"] == "magma"


def test_reusable_output():
    layer = Image(np.zeros((3, 32, 32), np.float32))
    assert reusable_output(layer, (3, 32, 32), False)
    assert not reusable_output(layer, (2, 32, 32), False) and not reusable_output(layer, (3, 32, 32), True)
    assert not reusable_output(SimpleNamespace(data=[np.zeros((3, 32, 32))], rgb=False), (3, 32, 32), False)


def test_map_contrast_grows_with_the_slices():
    contrast = MapContrast()
    assert contrast.update("noise_variance", np.full((4, 4), np.nan)) is None  # nothing finite yet
    assert contrast.update("noise_variance", np.arange(1000.0).reshape(40, 25)) == pytest.approx(994.005)
    assert contrast.update("noise_variance", np.zeros((4, 4))) == pytest.approx(994.005)  # never shrinks
    assert contrast.update("posterior_std", np.zeros((4, 4))) is None
