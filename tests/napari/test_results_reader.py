"""The reader of a results folder (napari_scoredvi.napari.results_reader), without a viewer: which
paths it takes, and the layers it gives for a store (names, geometry, look, provenance, lazy data)."""

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

import napari_scoredvi
from napari_scoredvi.engine.settings import DenoiseSettings
from napari_scoredvi.io.read import volume_from_array
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack
from napari_scoredvi.napari.layers import map_limit, robust_limits
from napari_scoredvi.napari.results_reader import get_reader, source_name
from napari_scoredvi.pipeline.run import prepare_run

SCALE = [2.0, 0.5, 0.5]
UNITS = {"Z": "micrometer", "Y": "micrometer", "X": "micrometer"}
FAST = DenoiseSettings("fast", "cpu")


def make_store(path, stack=None, run: bool = True, **kwargs):
    """A results store at ``path`` of a 3 x 32 x 32 stack (ZYX, micrometres), its slices run or not."""
    stack = noisy_fluorescence_stack(3, (32, 32), seed=1)[0] if stack is None else stack
    source = kwargs.pop("source", "")
    volume = volume_from_array(stack, "ZYX", SCALE, UNITS, source=source, name="" if source else "cells")
    prepared = prepare_run(volume, path, FAST, **kwargs)
    if run:
        list(prepared.steps())
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Every slice done, from a napari layer called 'cells', no posterior std."""
    return make_store(tmp_path_factory.mktemp("full") / "cells-denoised.zarr")


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """Only slice 1 done, from a file 'cells.ome.tif', with the posterior std."""
    folder = tmp_path_factory.mktemp("partial")
    tif = folder / "cells.ome.tif"
    tif.write_bytes(b"")  # only its name is recorded; the run reads the array
    return make_store(folder / "out.zarr", source=str(tif), posterior_std=True, numbers=[1])


def layers(path):
    reader = get_reader(str(path))
    assert reader is not None
    return reader(str(path))


def test_only_a_results_store_is_taken(tmp_path, store):
    (tmp_path / "folder").mkdir()
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=2).create_group("denoised")
    (tmp_path / "image.zarr").write_bytes(b"not a folder")
    for path in (tmp_path / "folder", tmp_path / "plain.zarr", store / "denoised", store / "denoised" / "0",
                 tmp_path / "image.zarr", tmp_path / "missing.zarr", store / "done"):
        assert get_reader(str(path)) is None, path
        assert get_reader([str(path)]) is None, path
    assert get_reader(str(store)) is not None and get_reader([str(store)]) is not None
    assert get_reader([str(store), str(store)]) is None


def test_a_store_reopens_as_its_layers(store):
    out = layers(store)
    assert [kind for _, _, kind in out] == ["image", "image"]
    (den, den_kw, _), (var, var_kw, _) = out
    assert den_kw["name"] == "denoised (cells)" and var_kw["name"] == "noise variance [ADU²] (cells)"
    for data, kw in ((den, den_kw), (var, var_kw)):
        assert isinstance(data, da.Array) and data.shape == (3, 32, 32) and data.dtype == np.float32
        assert kw["scale"] == SCALE and kw["units"] == ["micrometer"] * 3 and kw["axis_labels"] == ["z", "y", "x"]
    assert den_kw["colormap"] == "gray" and den_kw.get("visible", True)
    assert var_kw["colormap"] == "magma" and var_kw["visible"] is False and var_kw["blending"] == "translucent"
    # contrast from the first finished slice (slice 0) only
    saved = zarr.open_group(str(store), mode="r")
    assert den_kw["contrast_limits"] == robust_limits(saved["denoised/0"][0])
    assert var_kw["contrast_limits"] == (0.0, map_limit(saved["noise_variance/0"][0]))
    meta = den_kw["metadata"]["scoredvi"]
    assert meta["store"] == str(store) and meta["source"] == "cells" and meta["unit"] == "ADU"
    assert meta["reopened"] is True and meta["status"] == "complete"
    assert meta["parameters"]["input"] == "napari layer 'cells'" and sorted(meta["slices"]) == ["0", "1", "2"]
    assert var_kw["metadata"]["scoredvi"]["unit"] == "ADU^2"
    np.testing.assert_array_equal(np.asarray(den), saved["denoised/0"][:])


def test_a_partial_store_with_posterior_std_from_a_file(partial):
    out = layers(partial)
    names = [kw["name"] for _, kw, _ in out]
    assert names == ["denoised (cells)", "noise variance [ADU²] (cells)", "posterior std [ADU] (cells)"]
    std_kw = out[2][1]
    assert std_kw["colormap"] == "viridis" and std_kw["visible"] is False and std_kw["blending"] == "translucent"
    assert std_kw["metadata"]["scoredvi"]["unit"] == "ADU" and std_kw["metadata"]["scoredvi"]["status"] == "partial"
    saved = zarr.open_group(str(partial), mode="r")
    assert out[0][1]["contrast_limits"] == robust_limits(saved["denoised/0"][1])  # slice 0 is not done (NaN)
    assert std_kw["contrast_limits"] == (0.0, map_limit(saved["posterior_std/0"][1]))
    assert all(isinstance(data, da.Array) and kw["scale"] == SCALE for data, kw, _ in out)


def test_a_float_store_with_no_slice_done(tmp_path):
    stack = noisy_fluorescence_stack(3, (32, 32), seed=1)[0].astype(np.float32)
    out = layers(make_store(tmp_path / "cells-denoised.zarr", stack, run=False))
    assert [kw["name"] for _, kw, _ in out] == ["denoised (cells)", "noise variance [a.u.²] (cells)"]
    assert all("contrast_limits" not in kw for _, kw, _ in out)
    assert [kw["metadata"]["scoredvi"]["unit"] for _, kw, _ in out] == ["a.u.", "a.u.^2"]


def test_source_names():
    assert source_name("napari layer 'cells'", "/d/x.zarr") == "cells"
    assert source_name('napari layer "it\'s"', "/d/x.zarr") == "it's"
    assert source_name("/data/b2.ome.tif", "/d/x.zarr") == "b2"
    assert source_name("/data/b2.ome.zarr", "/d/x.zarr") == "b2"
    assert source_name("", "/d/b2-denoised.zarr") == "b2"


def test_npe2_lists_the_reader_for_a_store(store):
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_file(Path(napari_scoredvi.__file__).parent / "napari.yaml")
    assert [r.command for r in manifest.contributions.readers] == ["napari-scoredvi.read_results"]
    pm = npe2.PluginManager.instance()
    pm.discover()
    readers = {r.plugin_name: r.command for r in pm.iter_compatible_readers([str(store)])}
    assert readers.get("napari-scoredvi") == "napari-scoredvi.read_results"
