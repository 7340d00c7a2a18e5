"""Default output stores: beside the input file, else a temporary folder."""

import pytest

from napari_scoredvi.io import output_paths
from napari_scoredvi.io.output_paths import (
    INPUT_SUFFIXES,
    as_store_path,
    default_output_path,
    input_stem,
    safe_name,
    temporary_folder,
)
from napari_scoredvi.io.read import TIFF_SUFFIXES


def test_input_stem_knows_the_readers_suffixes():
    assert set(TIFF_SUFFIXES) <= set(INPUT_SUFFIXES)
    for name, stem in (("cells.ome.tif", "cells"), ("cells.OME.TIFF", "cells"), ("a.b.tif", "a.b"),
                       ("big.btf", "big"), ("s.ome.zarr", "s"), ("s.zarr", "s"), ("notes.txt", "notes.txt")):
        assert input_stem(name) == stem


def test_default_output_beside_the_file(tmp_path):
    tif = tmp_path / "cells.ome.tif"
    tif.write_bytes(b"")
    assert default_output_path(tif, "layer") == (tmp_path / "cells-denoised.zarr", False)


def test_default_output_beside_a_zarr_group_not_in_it(tmp_path):
    zarr = pytest.importorskip("zarr", minversion="3")
    zarr.open_group(str(tmp_path / "out.zarr"), mode="w").create_group("denoised")
    assert default_output_path(tmp_path / "out.zarr" / "denoised", "x") == (tmp_path / "out-denoised.zarr", False)


def test_default_output_temporary_where_not_writable(tmp_path, monkeypatch):
    assert output_paths.writable(tmp_path)
    monkeypatch.setattr(output_paths, "writable", lambda folder: False)  # chmod does not stop root
    path, temporary = default_output_path(tmp_path / "a.tif", "a layer")
    assert temporary and path == temporary_folder() / "a_layer-denoised.zarr"
    assert default_output_path(tmp_path / "missing" / "a.tif", "b")[1]  # no such folder


def test_default_output_of_an_in_memory_image():
    path, temporary = default_output_path(None, "my/stack:1")
    assert temporary and path.name == "my_stack_1-denoised.zarr" and path.parent.is_dir()
    assert path.parent == temporary_folder()
    assert safe_name("") == "layer"


def test_as_store_path(tmp_path):
    assert as_store_path(tmp_path / "out") == tmp_path / "out.zarr"
    assert as_store_path(tmp_path / "out.zarr") == tmp_path / "out.zarr"
    assert as_store_path("~/x.zarr") == as_store_path("~/x.zarr").expanduser()
    assert not str(as_store_path("~/x")).startswith("~")
