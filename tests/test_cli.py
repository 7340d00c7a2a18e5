import errno
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

from napari_scoredvi.cli import main


def test_demo_writes_outputs_and_reports(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "out"), "--size", "48", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "preset 'fast'" in printed and "prior passes" in printed  # the default preset, and its unit of work
    assert "PSNR vs clean" in printed and "took" in printed and "prior weight" not in printed  # no fit, no lam
    for name in ("noisy", "clean", "denoised", "noise_variance", "posterior_std"):
        data = tifffile.imread(tmp_path / "out" / f"{name}.tif")
        assert data.shape == (48, 48)
    assert tifffile.imread(tmp_path / "out" / "noisy.tif").dtype == np.uint16
    assert not list((tmp_path / "out").glob("*.part"))


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "napari_scoredvi.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("napari-scoredvi ")
    cmd = [sys.executable, "-m", "napari_scoredvi.cli", "demo", "--help"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0 and "--preset" in out.stdout


def test_absent_cuda_is_a_clean_error(tmp_path, capsys, monkeypatch):
    """On every machine: torch is made to see no GPU, so --device cuda must fail cleanly, before any fit."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(["demo", str(tmp_path), "--device", "cuda", "--size", "32"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("napari-scoredvi: error: device 'cuda' was requested but torch sees no CUDA GPU"), err
    assert "Traceback" not in err and not list(tmp_path.glob("*.tif"))


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_demo_on_cuda_reports_the_gpu(tmp_path, capsys):
    assert main(["demo", str(tmp_path), "--device", "cuda", "--size", "32", "--preset", "fast"]) == 0
    assert "device: cuda" in capsys.readouterr().out
    assert tifffile.imread(tmp_path / "denoised.tif").shape == (32, 32)


HELP_WITHOUT_TORCH = """
import sys
from napari_scoredvi.cli import main
for argv in (["--help"], ["denoise", "--help"], ["demo", "--help"]):
    try:
        main(argv)
    except SystemExit:
        pass
heavy = sorted(m for m in ("torch", "dask", "zarr", "tifffile", "napari", "tqdm") if m in sys.modules)
print("heavy:", heavy, file=sys.stderr)
sys.exit(1 if heavy else 0)
"""


def test_help_loads_no_heavy_modules():
    """--help parses arguments without importing torch (seconds on a cold disk) or the readers."""
    out = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--preset" in out.stdout and "--axes" in out.stdout


def _stack(shape=(2, 32, 32), fill=None) -> np.ndarray:
    data = np.random.default_rng(0).uniform(100, 200, shape).astype(np.float32)
    if fill is not None:
        data[...] = fill
    return data


def _nan(tmp_path):
    data = _stack()
    data[0, 3, 4] = np.nan
    tifffile.imwrite(tmp_path / "in.tif", data)


def _truncated(tmp_path):
    tifffile.imwrite(tmp_path / "full.tif", _stack().astype(np.uint16))
    whole = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "in.tif").write_bytes(whole[: len(whole) - 1500])  # cut into slice 1 and its page


def _not_zarr_output(tmp_path):
    tifffile.imwrite(tmp_path / "in.tif", _stack())
    (tmp_path / "out.zarr").mkdir()
    (tmp_path / "out.zarr" / "notes.txt").write_text("precious")


def _existing_store(tmp_path):
    """An output store made with the fast preset (as a run that has just started makes it)."""
    from napari_scoredvi.engine.settings import DenoiseSettings
    from napari_scoredvi.io.read import open_volume
    from napari_scoredvi.pipeline.run import prepare_run

    tifffile.imwrite(tmp_path / "in.tif", _stack())
    prepare_run(open_volume(tmp_path / "in.tif", "ZYX"), tmp_path / "out.zarr", DenoiseSettings("fast", "cpu"))


def _read_only(tmp_path, monkeypatch):
    import zarr

    tifffile.imwrite(tmp_path / "in.tif", _stack())

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(zarr, "open_group", refuse)  # as on a read-only mount (root ignores chmod)


BAD_INPUTS = {
    "nan": (_nan, [], r"slice Z=0: image contains 1 NaN/Inf pixel\(s\).*; replace them \(e.g. with numpy.nan_to_num"),
    "all-inf": (lambda p: tifffile.imwrite(p / "in.tif", _stack(fill=np.inf)), [],
                r"slice Z=0: image has no finite pixel \(0 NaN and 1024 Inf of 1024\); .*check the file"),
    "1x1": (lambda p: tifffile.imwrite(p / "in.tif", np.ones((1, 1), np.uint16)), [],
            r"image is 1x1 pixels; ScoreDVI needs at least 16x16 \(check the axes"),
    "truncated": (_truncated, ["--axes", "ZYX"], r"is damaged, probably truncated .*; copy or export it again"),
    "not-zarr": (_not_zarr_output, [], r"is not a Zarr store.*; choose another output path"),
    "not-zarr-resume": (_not_zarr_output, ["--resume"], r"is not a Zarr store.*; choose another output path"),
    "not-zarr-overwrite": (_not_zarr_output, ["--overwrite"], r"is not a Zarr store.*; choose another output path"),
    "exists": (_existing_store, ["--axes", "ZYX"],
               r"out\.zarr' already exists; resume it to finish an interrupted run \(--resume\), or replace it "
               r"\(--overwrite\)$"),
    "resume-other-settings": (_existing_store, ["--axes", "ZYX", "--resume"],
                              r"cannot resume into .*: it was made with different .*preset.*; use the same input and "
                              r"settings, or replace it \(--overwrite\) to start again$"),
    "read-only": (_read_only, [], r"cannot create the output .* \(Read-only file system\); choose an output path"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_error_line_before_any_output(tmp_path, monkeypatch, capsys, case):
    """Each bad input ends in `napari-scoredvi: error: <what>; <what to do>`, status 2, found before
    any output exists (so before any fit), the tifffile warnings of a damaged file said once."""
    import re

    make, flags, message = BAD_INPUTS[case]
    make(tmp_path, monkeypatch) if case == "read-only" else make(tmp_path)
    out = tmp_path / "out.zarr"
    before = sorted(p.name for p in out.iterdir()) if out.exists() else None
    # balanced: not the preset of the existing store (fast), so a resume has a setting that differs
    rc = main(["denoise", str(tmp_path / "in.tif"), str(out), "--preset", "balanced", "--device", "cpu", *flags])
    err = capsys.readouterr().err
    assert rc == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("napari-scoredvi: error: ") and re.search(message, last), err
    assert "Traceback" not in err and "slice(s) of" not in err and "%|" not in err  # no run started
    assert (sorted(p.name for p in out.iterdir()) if out.exists() else None) == before  # nothing made or deleted
    if case == "truncated":
        assert err.count("invalid page offset") == 1 and err.count("napari-scoredvi:") == 1, err


def test_plain_3d_tiff_is_a_z_stack_with_a_note_and_progress_per_prior_pass(tmp_path, capsys):
    import zarr

    tifffile.imwrite(tmp_path / "in.tif", _stack().astype(np.uint16))  # no axis metadata
    out = tmp_path / "out.zarr"
    assert main(["denoise", str(tmp_path / "in.tif"), str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.count("napari-scoredvi: note: ") == 1
    assert "treating dimension 0 (2 entries) as a stack of 2D frames (Z); pass --axes TYX if it is time" in err
    parameters = zarr.open_group(str(out), mode="r").attrs["napari_scoredvi"]["parameters"]
    assert parameters["axes"] == "ZYX" and parameters["preset"]["name"] == "fast"  # the default preset
    # the bar moves within a slice and names its unit: the first prior pass of each slice at least is shown
    assert "z=0: prior pass 1/" in err and "z=1: prior pass 1/" in err, err
    # four dimensions still have to be named
    tifffile.imwrite(tmp_path / "4d.tif", _stack((2, 2, 32, 32)), photometric="minisblack")
    assert main(["denoise", str(tmp_path / "4d.tif"), str(tmp_path / "o4.zarr")]) == 2
    assert "does not say what its axes are; pass them, e.g. --axes ZYX" in capsys.readouterr().err


@pytest.mark.parametrize("correlated", [False, True])
def test_denoise_notes_spatially_correlated_noise(tmp_path, capsys, correlated):
    from napari_scoredvi.engine.uncertainty import correlated_normal

    yy, xx = np.mgrid[0:192, 0:192]
    clean = 100 + 80 * np.exp(-((yy - 96) ** 2 + (xx - 80) ** 2) / 2000.0)
    lag = (0.6, 0.6) if correlated else (0.0, 0.0)
    frames = [clean + 3 * np.sqrt(clean) * correlated_normal(clean.shape, lag, torch.Generator().manual_seed(s),
                                                             dtype=torch.float64).numpy() for s in range(2)]
    tifffile.imwrite(tmp_path / "in.tif", np.stack(frames).astype(np.uint16), metadata={"axes": "ZYX"})
    args = ["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.zarr"), "--preset", "fast", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert ("note: the noise of 2 slice(s) is spatially correlated (mean lag-1 0." in out) == correlated, out


def test_context_is_recorded_and_checked(tmp_path, capsys):
    import zarr

    from napari_scoredvi.engine.settings import DEFAULT_CONTEXT

    tifffile.imwrite(tmp_path / "tz.tif", _stack((2, 3, 32, 32)).astype(np.uint16), imagej=True,
                     metadata={"axes": "TZYX"})

    def params(out):
        return zarr.open_group(str(out), mode="r").attrs["napari_scoredvi"]["parameters"]

    assert main(["denoise", str(tmp_path / "tz.tif"), str(tmp_path / "a.zarr"), "--device", "cpu"]) == 0
    assert params(tmp_path / "a.zarr")["context"] == DEFAULT_CONTEXT
    assert params(tmp_path / "a.zarr")["context_axis"] == "Z"  # the default: the axis next to Y, X
    assert main(["denoise", str(tmp_path / "tz.tif"), str(tmp_path / "b.zarr"), "--device", "cpu",
                 "--context", "1", "--context-axis", "t"]) == 0
    assert (params(tmp_path / "b.zarr")["context"], params(tmp_path / "b.zarr")["context_axis"]) == (1, "T")
    assert main(["denoise", str(tmp_path / "tz.tif"), str(tmp_path / "c.zarr"), "--device", "cpu",
                 "--context", "0"]) == 0
    assert "context" not in params(tmp_path / "c.zarr")  # slice by slice, as stores made before context were
    capsys.readouterr()
    # a resume with another context: refused, saying what differs
    assert main(["denoise", str(tmp_path / "tz.tif"), str(tmp_path / "b.zarr"), "--device", "cpu", "--resume"]) == 2
    assert "different context" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "tz.tif"), str(tmp_path / "d.zarr"), "--context-axis", "X"]) == 2
    assert "the context axis must be one of the stack's axes T, Z" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "tz.tif"), str(tmp_path / "e.zarr"), "--preset", "variational",
                 "--context", "2"]) == 2
    assert "--context and --context-axis apply to --preset fast and balanced" in capsys.readouterr().err
