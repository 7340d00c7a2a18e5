"""What the command line says about its inputs: plain TIFFs like plain Zarr arrays, a missing input at
once, an empty Zarr group, the demo's folder; and the device's description."""

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
import zarr

from napari_scoredvi.cli import main
from napari_scoredvi.engine.settings import DenoiseSettings
from napari_scoredvi.io.read import open_volume
from napari_scoredvi.pipeline.run import prepare_run

NOTE = ("does not say what its axes are: treating dimension 0 (3 entries) as a stack of 2D frames (Z); "
        "pass --axes TYX if it is time, or --axes CYX for channels")


def _three_planes() -> np.ndarray:
    return np.random.default_rng(0).integers(100, 200, (3, 32, 32)).astype(np.uint16)


def _denoise(inp, out, *flags) -> int:
    return main(["denoise", str(inp), str(out), "--preset", "fast", "--device", "cpu", *flags])


def test_plain_tiff_of_three_planes_is_a_z_stack_like_a_zarr_array(tmp_path, monkeypatch, capsys, caplog):
    """tifffile (and other writers) tag a 3 x Y x X stack as RGB planes; without OME/ImageJ metadata
    that says nothing about the axes, so it gets the Zarr array's note and default (ZYX), not CYX."""
    from napari_scoredvi.pipeline import run

    data = _three_planes()
    tifffile.imwrite(tmp_path / "in.tif", data)  # tagged RGB, planar: tifffile's default for this shape
    assert tifffile.TiffFile(tmp_path / "in.tif").series[0].axes == "SYX"
    seen = []

    def stop(volume, *args, **kwargs):  # the command line's volume, without the fit
        seen.append(volume.axes)
        raise ValueError("stopped by the test")

    monkeypatch.setattr(run, "prepare_run", stop)
    assert _denoise(tmp_path / "in.tif", tmp_path / "out.zarr") == 2
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("napari-scoredvi: note: ")]
    assert notes == [f"napari-scoredvi: note: {str(tmp_path / 'in.tif')!r} {NOTE}"], err
    assert seen == ["ZYX"]
    # the same data as a Zarr array: the same note and axes
    zarr.create_array(str(tmp_path / "in.zarr"), data=data)
    caplog.clear()
    assert open_volume(tmp_path / "in.zarr").axes == "ZYX"
    library_words = NOTE.replace("--axes TYX", "axes='TYX'").replace("--axes CYX", "axes='CYX'")
    assert [r.getMessage() for r in caplog.records] == [f"{str(tmp_path / 'in.zarr')!r} {library_words}"]
    # --axes still says what they are, and ImageJ metadata is still believed
    caplog.clear()
    assert open_volume(tmp_path / "in.tif", "CYX").axes == "CYX"
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True, metadata={"axes": "CYX"})
    assert open_volume(tmp_path / "ij.tif").axes == "CYX"
    assert not caplog.records


def test_five_dimensions_without_metadata_name_a_five_letter_example(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "5d.tif", np.ones((2, 2, 2, 32, 32), np.uint16), photometric="minisblack")
    assert _denoise(tmp_path / "5d.tif", tmp_path / "o.zarr") == 2
    err = capsys.readouterr().err
    assert "does not say what its axes are" in err and "--axes TZCYX" in err
    assert not (tmp_path / "o.zarr").exists()


FAST_ERRORS = """
import os, sys
from napari_scoredvi.cli import main
os.chdir(sys.argv[1])
codes = [main(["denoise", "missing.tif", "out.zarr"]), main(["calibrate", "missing.tif"]),
         main(["demo", "full"])]
heavy = sorted(m for m in ("torch", "dask", "zarr", "tifffile", "napari", "tqdm") if m in sys.modules)
print("codes:", codes, "heavy:", heavy, file=sys.stderr)
sys.exit(0 if codes == [2, 2, 2] and not heavy else 1)
"""


def test_missing_input_and_full_demo_folder_are_reported_before_heavy_imports(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "denoised.tif").write_bytes(b"earlier results")
    out = subprocess.run([sys.executable, "-c", FAST_ERRORS, str(tmp_path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("napari-scoredvi: error: ")]
    assert errors[:2] == [f"napari-scoredvi: error: input 'missing.tif' does not exist (looked in {tmp_path}); "
                          "check the path"] * 2
    assert "is not empty (1 entry: denoised.tif); pass --overwrite" in errors[2]
    assert not (tmp_path / "out.zarr").exists()
    assert (tmp_path / "full" / "denoised.tif").read_bytes() == b"earlier results"


def test_demo_overwrite_replaces_only_its_files(tmp_path, monkeypatch, capsys):
    """(tests/test_cli.py runs the real demo; here the fit is skipped.)"""
    from napari_scoredvi.engine import api

    def fake_denoise(image, **kwargs):
        info = SimpleNamespace(device="cpu (1 thread)", iterations=0, lam=1.0, noise_std=1.0, seconds=0.0)
        as_float = image.astype(np.float32)
        return SimpleNamespace(denoised=as_float, noise_variance=as_float, posterior_std=as_float, info=info)

    monkeypatch.setattr(api, "denoise", fake_denoise)
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    args = ["demo", str(folder), "--size", "32", "--device", "cpu"]
    assert main(args) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert main([*args, "--overwrite"]) == 0
    assert (folder / "notes.txt").read_text() == "mine" and tifffile.imread(folder / "denoised.tif").shape == (32, 32)
    (tmp_path / "file").write_text("")
    assert main(["demo", str(tmp_path / "file"), "--overwrite"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_demo_help_says_why_its_preset_is_fast(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: fast" in text and "balanced" in text and "--overwrite" in text


@pytest.mark.parametrize("fmt", [2, 3])
def test_empty_zarr_group_says_it_is_empty(tmp_path, capsys, fmt):
    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w", zarr_format=fmt)
    assert _denoise(tmp_path / "empty.zarr", tmp_path / "o.zarr") == 2
    err = capsys.readouterr().err
    assert "is an empty Zarr group: it holds no arrays or images" in err and "multiscales" not in err, err
    assert not (tmp_path / "o.zarr").exists()


def test_group_of_images_points_to_an_image(tmp_path, capsys):
    """An output store given as the input: its images are denoised/ and noise_variance/, not done."""
    tifffile.imwrite(tmp_path / "in.tif", _three_planes(), photometric="minisblack", metadata={"axes": "ZYX"})
    prepare_run(open_volume(tmp_path / "in.tif", "ZYX"), tmp_path / "first.zarr", DenoiseSettings("fast", "cpu"))
    assert _denoise(tmp_path / "first.zarr", tmp_path / "second.zarr") == 2
    err = capsys.readouterr().err
    assert "point to one of its images instead, e.g. " in err and "first.zarr/denoised'" in err, err


@pytest.mark.parametrize("preset", ["fast", "balanced"])
def test_no_warm_start_is_refused_for_a_preset_without_a_fit(tmp_path, capsys, preset):
    tifffile.imwrite(tmp_path / "in.tif", _three_planes(), metadata={"axes": "ZYX"})
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.zarr"), "--preset", preset,
                 "--no-warm-start"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"napari-scoredvi: --no-warm-start applies to --preset variational only: {preset} "
                           "fits nothing to start from; leave the option out"), err
    assert not (tmp_path / "out.zarr").exists()


def test_denoise_defaults_to_fast_and_passes_no_warm_start_to_the_fit(tmp_path, monkeypatch):
    """What the command line hands the pipeline (the run itself is stopped: a variational fit takes minutes)."""
    from napari_scoredvi.pipeline import run

    tifffile.imwrite(tmp_path / "in.tif", _three_planes(), metadata={"axes": "ZYX"})
    seen = []

    def stop(inp, out, settings, **kwargs):
        seen.append(settings)
        raise ValueError("stopped by the test")

    monkeypatch.setattr(run, "denoise_volume", stop)
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.zarr")]) == 2
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.zarr"), "--preset", "variational",
                 "--no-warm-start"]) == 2
    default, cold = seen
    assert default.preset.name == "fast" and not default.warm_starts and default.lam is None
    assert cold.preset.name == "variational" and not cold.warm_start
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.zarr"), "--preset", "variational"]) == 2
    assert seen[-1].warm_starts  # the fit warm-starts unless told not to


def test_cpu_description_counts_threads_in_the_right_number(monkeypatch):
    import torch

    from napari_scoredvi.engine.devices import describe_device

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert describe_device(torch.device("cpu")) == "cpu (1 thread)"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert describe_device(torch.device("cpu")) == "cpu (4 threads)"
